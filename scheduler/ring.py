"""Virtual rings over the chiplet mesh: the fixed successor of rule R1.

A slice visits every chiplet of its ring exactly once (R3), so the ring is a single cycle
through all chiplets.  On a mesh with an even number of rows or columns the ring is a
Hamiltonian cycle of mesh links (every forward is one D2D hop); on an odd x odd mesh no
such cycle exists, and one ring edge passes through intermediate routers (XY routed,
without occupying their slots): two hops on 3x3.
"""

from __future__ import annotations

__all__ = ["mesh_ring", "ring_order", "successors_from_order", "hop_distance", "coords"]


def coords(chiplet: int, cols: int) -> tuple[int, int]:
    return divmod(chiplet, cols)


def hop_distance(a: int, b: int, cols: int) -> int:
    (ra, ca), (rb, cb) = coords(a, cols), coords(b, cols)
    return abs(ra - rb) + abs(ca - cb)


def ring_order(rows: int, cols: int) -> list[int]:
    """Chiplets in ring order, starting at chiplet 0 (the top-left corner).

    2x2 gives (0,0) -> (0,1) -> (1,1) -> (1,0), as in the paper.  The ring runs east along
    row 0, snakes over columns 1.. down the remaining rows, and returns north along
    column 0.  With an even number of rows that is a Hamiltonian cycle of mesh links; with
    only the number of columns even, the transpose is.  With both odd, one edge (from the
    end of the last row back to its column 0) spans min(rows, cols) - 1 hops; a 1 x N line
    closes with an edge across its length.
    """
    if rows <= 0 or cols <= 0:
        raise ValueError(f"mesh must have at least one row and column, not {rows}x{cols}")
    if rows == 1 or cols == 1:
        return list(range(rows * cols))
    if rows % 2 and (cols % 2 == 0 or cols > rows):
        return [(t % rows) * cols + t // rows for t in ring_order(cols, rows)]
    order = list(range(cols))                                  # row 0, west to east
    for r in range(1, rows):
        cs = range(cols - 1, 0, -1) if r % 2 else range(1, cols)
        order += [r * cols + c for c in cs]                   # snake over columns 1..
    order += [r * cols for r in range(rows - 1, 0, -1)]       # back north along column 0
    return order


def successors_from_order(order: list[int]) -> list[int]:
    """``succ[c]`` for every chiplet of a ring given in visiting order."""
    succ = [None] * len(order)
    for i, c in enumerate(order):
        succ[c] = order[(i + 1) % len(order)]
    if sorted(order) != list(range(len(order))):
        raise ValueError(f"ring order {order} must visit every chiplet exactly once")
    return succ


def mesh_ring(rows: int, cols: int) -> list[int]:
    """Successor of each chiplet on the default ring of an R x C mesh."""
    return successors_from_order(ring_order(rows, cols))
