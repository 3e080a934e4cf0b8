"""Energy of a run: counters the simulation measured x per-action energies of a technology
table.  The result is an estimate, never a measurement, and says so (docs/energy.md).

A *technology table* is a TOML file (the bundled ones are in ``sim/eval/data/``): one
entry per action, each with ``value``, ``unit``, ``node`` and ``source`` (and
``scaled_from`` where a figure was scaled from another node, ``note`` for anything else).
Units, one convention per kind: ``pJ/op`` for compute (``mac_int8``: one int8 multiply +
add), ``pJ/bit`` for everything that stores or moves data.  SRAM entries are given by
array size (``[sram_read.<label>]`` with ``array_bytes``); a buffer of B bytes is priced
with the largest array not larger than B (the smallest if none fits).

:func:`counts` turns a :class:`sim.results.RunResult`'s counters into the quantities
priced (``inputs`` in the JSON, so that a report can price a run again with another
table); :func:`price` multiplies them by a table's entries.  A quantity an engine did not
count is ``None``; its component is then ``null`` with the reason, and so are the total
and the energy-delay product.

Counters read (per chiplet, from :class:`sim.results.ChipletCounters`): ``macs``,
``weight_read_bytes``, ``weight_write_bytes``, ``token_read_bytes``,
``token_write_bytes``, ``acc_read_bytes``, ``acc_write_bytes``, ``link_flits`` (every
flit sent per output link, headers included) with ``link_header_flits`` (headers and
control packets; payload = the rest, or ``link_payload_flits`` where an engine counts
it), ``router_flits`` (flits the crossbar switched, local injection and ejection
included) and ``dram_flits`` (payload flits of the chiplet's DRAM channel).  A counter
a ChipletCounters does not have is not counted (``None``); a counter it has is taken as
counted, zero included.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import pathlib
import tomllib

__all__ = ["DEFAULT_TABLE", "BUNDLED", "COMPONENTS", "TechError", "Entry", "TechTable", "load_table",
           "parse_table", "counts", "price", "of_result", "tech_argument", "NOTE"]

#: The table used when none is given: a bundled table's name or a path to a .toml file.
DEFAULT_TABLE = "default"
#: Bundled tables: name -> file in sim/eval/data/.
BUNDLED = {"default": "tech_default.toml", "ucie-advanced": "tech_ucie_advanced.toml"}
#: The energy components, in the order every table, CSV and plot shows them.
COMPONENTS = ("mac", "weight_sram", "token_sram", "acc_sram", "d2d", "dram", "router")
BUFFERS = ("weight", "token", "acc")
#: Entries of a table: key -> (unit, what it is).  ``sram_*`` hold one entry per array size.
KINDS = {
    "mac_int8": ("pJ/op", "one int8 multiply-accumulate (multiply + add)"),
    "sram_read": ("pJ/bit", "SRAM read per bit, by array size"),
    "sram_write": ("pJ/bit", "SRAM write per bit, by array size"),
    "d2d": ("pJ/bit", "die-to-die link per bit sent"),
    "dram": ("pJ/bit", "DRAM per payload bit delivered"),
    "router": ("pJ/bit", "router per bit of each flit switched"),
}
SIZED = ("sram_read", "sram_write")
ENTRY_REQUIRED = ("value", "unit", "node", "source")
ENTRY_OPTIONAL = ("scaled_from", "note")
TABLE_KEYS = ("name", "description", "base")
NOTE = ("an estimate, not measured: the run's measured counters x the per-action energies of a technology "
        "table (docs/energy.md)")
PJ = 1e-12


class TechError(ValueError):
    """A technology table that cannot be used: one line naming the file and the key."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One per-action energy of a technology table."""

    key: str                    # "d2d", or "sram_read.8KiB" for a sized entry
    value: float
    unit: str
    node: str
    source: str
    array_bytes: int | None = None
    scaled_from: str | None = None
    note: str | None = None

    def brief(self) -> dict:
        return {"entry": self.key, "value": self.value, "unit": self.unit}


@dataclasses.dataclass(frozen=True)
class TechTable:
    """A validated technology table."""

    name: str
    path: str                   # as shown: "sim/eval/data/tech_default.toml" for a bundled table
    description: str
    entries: dict               # key -> Entry; sized kinds as "sram_read.<label>"

    def get(self, key: str) -> Entry:
        return self.entries[key]

    def sized(self, kind: str) -> list:
        """Entries of a sized kind, smallest array first."""
        return sorted((e for k, e in self.entries.items() if k.startswith(kind + ".")), key=lambda e: e.array_bytes)

    def sram(self, kind: str, buffer_bytes: int) -> Entry:
        """The ``sram_read`` or ``sram_write`` entry for a buffer of ``buffer_bytes``: the
        largest array not larger than it, else the smallest."""
        sizes = self.sized(kind)
        fits = [e for e in sizes if e.array_bytes <= buffer_bytes]
        return fits[-1] if fits else sizes[0]

    @property
    def label(self) -> dict:
        return {"name": self.name, "path": self.path}


# --------------------------------------------------------------------------- loading

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _entry(where: str, key: str, kind: str, raw, sized: bool) -> Entry:
    name = f"[{key}]"
    if not isinstance(raw, dict):
        raise TechError(f"{where}: {name}: must be a table of value, unit, node and source")
    allowed = ENTRY_REQUIRED + ENTRY_OPTIONAL + (("array_bytes",) if sized else ())
    for k in raw:
        if k not in allowed:
            raise TechError(f"{where}: {name}: unknown key {k!r} (allowed: {', '.join(allowed)})")
    for k in ENTRY_REQUIRED + (("array_bytes",) if sized else ()):
        if k not in raw:
            why = "; every figure names where it comes from" if k == "source" else ""
            raise TechError(f"{where}: {name}: missing key {k!r}{why}")
    value = raw["value"]
    if not _is_number(value):
        raise TechError(f"{where}: {name}.value: must be a number, not {value!r}")
    if not value > 0:
        raise TechError(f"{where}: {name}.value: must be positive, not {value!r}")
    unit = KINDS[kind][0]
    if raw["unit"] != unit:
        raise TechError(f"{where}: {name}.unit: must be {unit!r} ({KINDS[kind][1]}), not {raw['unit']!r}")
    for k in ("node", "source") + tuple(k for k in ENTRY_OPTIONAL if k in raw):
        if not isinstance(raw[k], str) or not raw[k].strip():
            raise TechError(f"{where}: {name}.{k}: must be a non-empty string, not {raw[k]!r}")
    array = raw.get("array_bytes")
    if sized and (not isinstance(array, int) or isinstance(array, bool) or array <= 0):
        raise TechError(f"{where}: {name}.array_bytes: must be a positive whole number of bytes, not {array!r}")
    return Entry(key=key, value=float(value), unit=unit, node=raw["node"], source=raw["source"],
                 array_bytes=array, scaled_from=raw.get("scaled_from"), note=raw.get("note"))


def parse_table(data: dict, where: str, shown: str | None = None) -> TechTable:
    """Validate the TOML document ``data`` of file ``where``: every key known, every
    entry present (after merging ``[table] base``), every value positive, every figure
    with its source.  Raises :class:`TechError` with one line naming file and key."""
    head = data.get("table", {})
    if not isinstance(head, dict):
        raise TechError(f"{where}: [table]: must be a table of {', '.join(TABLE_KEYS)}")
    for k in data:
        if k != "table" and k not in KINDS:
            raise TechError(f"{where}: unknown key {k!r} (known: table, {', '.join(KINDS)})")
    for k in head:
        if k not in TABLE_KEYS:
            raise TechError(f"{where}: [table]: unknown key {k!r} (allowed: {', '.join(TABLE_KEYS)})")
    for k in TABLE_KEYS:
        if k in head and (not isinstance(head[k], str) or not head[k].strip()):
            raise TechError(f"{where}: [table].{k}: must be a non-empty string, not {head[k]!r}")
    entries = {}
    if "base" in head:
        if head["base"] not in BUNDLED:
            raise TechError(f"{where}: [table].base: unknown bundled table {head['base']!r} "
                            f"(bundled: {', '.join(BUNDLED)})")
        entries.update(_bundled(head["base"]).entries)
    for kind in KINDS:
        if kind not in data:
            continue
        raw = data[kind]
        if kind in SIZED:
            if not isinstance(raw, dict) or not raw or not all(isinstance(v, dict) for v in raw.values()):
                raise TechError(f"{where}: [{kind}]: must hold one table per array size, e.g. [{kind}.8KiB] "
                                "with array_bytes, value, unit, node and source")
            for label, sub in raw.items():
                key = f"{kind}.{label}"
                entries[key] = _entry(where, key, kind, sub, sized=True)
        else:
            entries[kind] = _entry(where, kind, kind, raw, sized=False)
    for kind in KINDS:
        if not any(k == kind or k.startswith(kind + ".") for k in entries):
            raise TechError(f"{where}: missing key {kind!r} ({KINDS[kind][1]}, {KINDS[kind][0]})")
    for kind in SIZED:
        sizes = [e.array_bytes for e in entries.values() if e.key.startswith(kind + ".")]
        if len(set(sizes)) != len(sizes):
            raise TechError(f"{where}: [{kind}]: two entries for the same array_bytes")
    return TechTable(name=head.get("name", pathlib.Path(where).stem), path=shown or where,
                     description=head.get("description", ""), entries=entries)


def _read(path: pathlib.Path, where: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise TechError(f"{where}: no such technology table") from None
    except tomllib.TOMLDecodeError as exc:
        raise TechError(f"{where}: not a TOML file: {exc}") from None
    except OSError as exc:
        raise TechError(f"{where}: cannot read: {exc.strerror}") from None


@functools.lru_cache(maxsize=None)
def _bundled(name: str) -> TechTable:
    path = pathlib.Path(__file__).with_name("data") / BUNDLED[name]
    shown = f"sim/eval/data/{BUNDLED[name]}"
    return parse_table(_read(path, shown), shown, shown)


def load_table(spec=None) -> TechTable:
    """A technology table: ``spec`` a :class:`TechTable`, a bundled table's name, a path
    to a .toml file, or None for :data:`DEFAULT_TABLE` (read when called)."""
    if spec is None:
        spec = DEFAULT_TABLE
    if isinstance(spec, TechTable):
        return spec
    spec = str(spec)
    if spec in BUNDLED:
        return _bundled(spec)
    path = pathlib.Path(spec)
    if path.suffix != ".toml" and not path.exists():
        raise TechError(f"unknown technology table {spec!r}: give a bundled table ({', '.join(BUNDLED)}) or a "
                        ".toml file (docs/energy.md)")
    return parse_table(_read(path, spec), spec)


def tech_argument(text: str) -> TechTable:
    """argparse type of ``--tech``: the validated table, or a one-line error."""
    try:
        return load_table(text)
    except TechError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------- counting and pricing

SRAM_COUNTERS = {b: (f"{b}_read_bytes", f"{b}_write_bytes") for b in BUFFERS}
LINK_COUNTERS = ("link_payload_flits", "link_header_flits")


def _flat_sum(v):
    return sum(_flat_sum(x) for x in v) if isinstance(v, (list, tuple)) else v


def _total(chiplets, name):
    """Sum of counter ``name`` over chiplets (and links); None if any chiplet lacks it."""
    values = [getattr(c, name, None) for c in chiplets]
    if not values or any(v is None for v in values):
        return None
    return int(_flat_sum(values))


def counts(result) -> dict:
    """The quantities priced, from a :class:`~sim.results.RunResult`: ``None`` where the
    engine did not count them (the JSON's ``energy.inputs``)."""
    chips = result.chiplets
    prov = result.provisioned or {}
    out = {"cycles": result.cycles, "clock_ghz": result.clock_ghz, "flit_bytes": result.link_bytes,
           "buffer_bytes": {"weight": prov.get("weight"), "token": prov.get("token_buffer"),
                            "acc": prov.get("acc_buffer")},
           "macs": _total(chips, "macs")}
    for b in BUFFERS:
        for name in SRAM_COUNTERS[b]:
            out[name] = _total(chips, name)
    for name in ("link_flits", "link_header_flits", "router_flits"):
        out[name] = _total(chips, name)
    # payload = every flit sent - header flits, where the engine keeps no payload count of its own
    out["link_payload_flits"] = _total(chips, "link_payload_flits")
    if out["link_payload_flits"] is None and None not in (out["link_flits"], out["link_header_flits"]):
        out["link_payload_flits"] = out["link_flits"] - out["link_header_flits"]
    out["dram_payload_bytes"] = [c.dram_flits * result.link_bytes for c in chips]
    return out


def _missing(names) -> str:
    return f"not counted by this engine ({', '.join(names)} missing from the run)"


def price(inputs: dict, table=None) -> dict:
    """The ``energy`` object of a run: ``inputs`` (from :func:`counts`) x the entries of
    ``table`` (anything :func:`load_table` takes)."""
    t = load_table(table)
    bits = 8
    flit_bits = inputs["flit_bytes"] * bits
    comp, missing, used, detail = {}, {}, {}, {}

    e = t.get("mac_int8")
    used["mac"] = e.brief()
    if inputs.get("macs") is None:
        missing["mac"] = _missing(["macs"])
    else:
        comp["mac"] = inputs["macs"] * e.value * PJ

    for b in BUFFERS:
        c = f"{b}_sram"
        size = (inputs.get("buffer_bytes") or {}).get(b)
        names = SRAM_COUNTERS[b]
        if size is None:
            missing[c] = f"the {b} buffer's size is not in the run"
            continue
        rd, wr = t.sram("sram_read", size), t.sram("sram_write", size)
        used[c] = {"buffer_bytes": size, "read": rd.brief(), "write": wr.brief()}
        got = [inputs.get(n) for n in names]
        lacking = [n for n, v in zip(names, got) if v is None]
        if lacking:
            missing[c] = _missing(lacking)
            continue
        comp[c] = (got[0] * bits * rd.value + got[1] * bits * wr.value) * PJ

    e = t.get("d2d")
    payload, header = (inputs.get(n) for n in LINK_COUNTERS)
    flits = inputs.get("link_flits")
    if flits is None and payload is not None and header is not None:
        flits = payload + header
    used["d2d"] = e.brief() | {"flit_bits": flit_bits}
    if flits is None:
        missing["d2d"] = _missing(["link_flits"])
    else:
        comp["d2d"] = flits * flit_bits * e.value * PJ
        if payload is not None and header is not None:
            detail["d2d_payload_j"] = payload * flit_bits * e.value * PJ
            detail["d2d_header_j"] = header * flit_bits * e.value * PJ

    e = t.get("dram")
    used["dram"] = e.brief()
    dram = inputs.get("dram_payload_bytes")
    if dram is None:
        missing["dram"] = _missing(["dram_flits"])
    else:
        comp["dram"] = _flat_sum(list(dram)) * bits * e.value * PJ

    e = t.get("router")
    used["router"] = e.brief() | {"flit_bits": flit_bits}
    if inputs.get("router_flits") is None:
        missing["router"] = _missing(["router_flits"])
    else:
        comp["router"] = inputs["router_flits"] * flit_bits * e.value * PJ

    time_s = inputs["cycles"] / (inputs["clock_ghz"] * 1e9) if inputs.get("clock_ghz") else None
    total = None if missing else sum(comp[c] for c in COMPONENTS)
    return {
        "estimate": True,
        "note": f"{NOTE}: table {t.name!r} ({t.path})",
        "table": t.label,
        "total_j": total,
        "by_component_j": {c: comp.get(c) for c in COMPONENTS},
        "edp_js": total * time_s if total is not None and time_s is not None else None,
        "time_s": time_s,
        "missing": {c: missing[c] for c in COMPONENTS if c in missing},
        "detail_j": detail,
        "entries": used,
        "inputs": inputs,
    }


def of_result(result, table=None) -> dict:
    """The ``energy`` object of a :class:`~sim.results.RunResult`."""
    return price(counts(result), table)
