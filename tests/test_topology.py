"""Static ring and channel-dependency checks (hw.topology)."""

import pytest

from hw.router import Dir
from hw.topology import (TopologyError, channel_dependency_graph, check_channel_dependencies,
                         check_configuration, check_ring, find_cycle, ring_lengths, xy_path)
from scheduler.ring import mesh_ring


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 4), (2, 2), (2, 3), (3, 3), (4, 4)])
def test_default_rings_pass_every_check(rows, cols):
    succ = mesh_ring(rows, cols)
    cfg = check_configuration(rows, cols, succ)
    assert cfg["ring_len"] == [rows * cols] * (rows * cols)
    assert sorted(cfg["rings"][0]) == list(range(rows * cols))


def test_rings_inside_chiplet_groups():
    # 4x4 as four 2x2 groups, each its own ring.
    groups = [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    succ = [None] * 16
    for a, b, c, d in groups:
        succ[a], succ[b], succ[d], succ[c] = b, d, c, a
    rings = check_ring(4, 4, succ, groups)
    assert len(rings) == 4 and ring_lengths(succ) == [4] * 16
    check_channel_dependencies(4, 4, succ)


@pytest.mark.parametrize("rows, cols, succ, groups, message", [
    (2, 2, [1, 3, 0], None, "successor table has 3 entries; a 2x2 mesh has 4 chiplets"),
    (2, 2, [1, 3, 0, 9], None, "successor of chiplet 3 is 9, outside the 2x2 mesh (chiplets 0..3)"),
    (2, 2, [1, 3, 0, -1], None, "successor of chiplet 3 is -1, outside the 2x2 mesh (chiplets 0..3)"),
    (2, 2, [1, 1, 0, 2], None, "successor table is not a permutation: chiplets 0 and 1 both have successor 1"),
    (2, 2, [1, 0, 3, 2], None, "successor table forms 2 rings ([0, 1], [2, 3]), not one ring over all 4 chiplets"),
    (2, 2, [1, 0, 3, 2], [[0, 1, 2, 3]],
     "group [0, 1, 2, 3] is not a single ring: its chiplets lie on the rings [0, 1], [2, 3]"),
    (2, 2, [1, 2, 0, 3], [[0, 1], [2, 3]], "group [0, 1] is not a single ring: ring [0, 1, 2] leaves it at chiplet 2"),
    (2, 2, [1, 0, 3, 2], [[0, 1], [3]], "groups [[0, 1], [3]] must cover every chiplet 0..3 exactly once"),
])
def test_bad_ring_configurations_are_rejected(rows, cols, succ, groups, message):
    with pytest.raises(TopologyError) as exc:
        check_ring(rows, cols, succ, groups)
    assert str(exc.value) == message
    assert "\n" not in str(exc.value)


def test_xy_paths():
    assert xy_path(0, 8, 3, 3) == [(0, Dir.E), (1, Dir.E), (2, Dir.S), (5, Dir.S)]
    assert xy_path(8, 6, 3, 3) == [(8, Dir.W), (7, Dir.W)]       # the 3x3 ring's long edge
    assert xy_path(4, 4, 3, 3) == []


def test_xy_routes_have_no_cyclic_dependency_with_slot_reservation():
    for rows, cols in [(2, 2), (3, 3), (4, 4)]:
        graph = channel_dependency_graph(rows, cols, mesh_ring(rows, cols))
        assert find_cycle(graph) is None
        assert len(graph) == 2 * 2 * (rows * (cols - 1) + cols * (rows - 1))   # every link, both VCs


@pytest.mark.parametrize("rows, cols", [(2, 2), (3, 3)])
def test_ring_without_slot_reservation_is_a_cyclic_dependency(rows, cols):
    """A router that let a slice wait in the network for its successor's slot (no R5)
    would close a channel cycle around every ring: the check rejects it, naming it."""
    with pytest.raises(TopologyError, match=r"^cyclic channel dependency on VC 1: 0->E, ") as exc:
        check_channel_dependencies(rows, cols, mesh_ring(rows, cols), reserve_slots=False)
    assert "\n" not in str(exc.value)
    assert str(exc.value).endswith("(back to 0)")


def test_slot_count_below_two_is_rejected():
    with pytest.raises(TopologyError, match=r"^slot count must be at least 2 .* \(R6\), not 1$"):
        check_configuration(2, 2, mesh_ring(2, 2), slot_count=1)
