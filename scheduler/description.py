"""Hardware and model description files (TOML).

A user describes a chiplet system or an MoE layer shape in a TOML file and passes it
wherever a preset name is accepted (``--hardware FILE`` / ``--preset FILE``,
``--model FILE``, ``fsedp grid --presets FILE,...``); ``fsedp presets --export NAME``
writes any preset in this format.  :data:`HARDWARE_FIELDS` and :data:`MODEL_FIELDS` are
the one definition of the format: the reader, the writer, the field-by-field validation
and the field table of ``docs/description_files.md`` (checked by a test) all follow them.

Every value keeps the unit of the preset it becomes (:class:`scheduler.presets.
HardwarePreset`): bandwidths in bytes per core clock cycle (``gbps`` is accepted instead,
converted with the file's clock), latencies in cycles, SRAM in bytes (an integer, or a
string such as ``"8MiB"``).  A field that is left out takes the default in the table;
a field without a default is required.  Unknown sections or keys are errors, never
ignored.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tomllib
from dataclasses import dataclass

from scheduler import presets

__all__ = ["Field", "HARDWARE_FIELDS", "MODEL_FIELDS", "DescriptionError", "load_hardware", "load_model",
           "dump_hardware", "dump_model", "is_description_path"]

SUFFIX = ".toml"


class DescriptionError(presets.PresetError):
    """A description file that cannot be read or does not describe valid hardware or a
    valid model; the message names the file and the field."""


@dataclass(frozen=True)
class Field:
    """One key of a description file.

    ``section`` is the TOML table (``""`` for the top level), ``key`` its key, ``attr`` the
    preset attribute it sets, ``kind`` one of ``int`` (positive), ``count`` (non-negative),
    ``float`` (positive), ``size`` (bytes, positive; or ``"8MiB"``), ``str``, ``bool``,
    ``chiplets`` (list of chiplet indices), ``bandwidth`` (bytes per cycle, or ``gbps``).
    ``required`` fields have no default.
    """

    section: str
    key: str
    attr: str
    kind: str
    unit: str
    doc: str
    required: bool = False

    @property
    def where(self) -> str:
        return f"[{self.section}] {self.key}" if self.section else self.key


HARDWARE_FIELDS = (
    Field("", "name", "name", "str", "", "name shown in results and tables", required=True),
    Field("", "source", "source", "str", "", "where the numbers come from, and the reasoning behind the SRAM "
          "figures"),
    Field("", "rtl", "rtl", "bool", "", "small enough to simulate as RTL (`fsedp grid --engine rtl` takes only "
          "such hardware)"),
    Field("mesh", "rows", "rows", "int", "chiplets", "mesh rows R; chiplet (r, c) has index r * cols + c",
          required=True),
    Field("mesh", "cols", "cols", "int", "chiplets", "mesh columns C", required=True),
    Field("clock", "ghz", "clock_ghz", "float", "GHz", "core clock; converts cycles to seconds and GB/s to "
          "bytes per cycle", required=True),
    Field("mac_array", "rows", "mac_rows", "int", "MACs", "INT8 MAC array rows per chiplet (a power of two)",
          required=True),
    Field("mac_array", "cols", "mac_cols", "int", "MACs", "INT8 MAC array columns per chiplet (a power of two)",
          required=True),
    Field("sram", "weight_bytes", "weight_sram_bytes", "size", "bytes", "weight buffer per chiplet, out of which "
          "every strategy's weight slots are carved (`--sram` overrides it); a multiple of mac_array rows x cols",
          required=True),
    Field("sram", "token_rows", "token_rows", "int", "rows", "rows of the token buffer (int8) and of the "
          "accumulator buffer (int32) per chiplet", required=True),
    Field("sram", "d_max", "d_max", "int", "elements", "largest hidden size d a token row holds", required=True),
    Field("slots", "target", "slot_target", "int", "slots", "slots per chiplet the default slice count aims for"),
    Field("slots", "max", "max_slots", "int", "slots", "entries of the router's slot table (at least 2, rule R6)"),
    Field("slots", "injection_headroom", "injection_headroom", "int", "slots", "free slots a DRAM channel needs to "
          "inject a slice (rule R6: 2; 1 turns the rule off, which the deadlock check refuses where a ring can "
          "fill)"),
    Field("dram", "chiplets", "dram_chiplets", "chiplets", "chiplet indices", "chiplets with a DRAM channel "
          "attached, one channel each, in channel order (default: the corners)"),
    Field("dram", "bytes_per_cycle", "dram_bytes_per_cycle", "bandwidth", "bytes/cycle",
          "bandwidth of one DRAM channel (or give `gbps`, GB/s)", required=True),
    Field("dram", "latency", "dram_latency", "count", "cycles", "from a DRAM request to its first byte",
          required=True),
    Field("dram", "channel_bytes", "dram_channel_bytes", "size", "bytes", "capacity of one DRAM channel's "
          "weight memory"),
    Field("dram", "program_words", "dram_program_words", "int", "instructions", "capacity of one DRAM "
          "channel's program memory (one STREAM per transfer)"),
    Field("d2d", "bytes_per_cycle", "link_bytes_per_cycle", "bandwidth", "bytes/cycle",
          "bandwidth of one direction of one D2D link between neighbours (or give `gbps`, GB/s)", required=True),
    Field("d2d", "latency", "link_latency", "count", "cycles", "cycles a flit spends on one D2D hop",
          required=True),
    Field("d2d", "buffer_depth", "buffer_depth", "count", "flits", "router input buffer per virtual channel "
          "(0: sized to the credit round trip)"),
    Field("controller", "table_entries", "table_entries", "int", "entries", "capacity of the controller's "
          "expert-to-token table"),
    Field("controller", "program_words", "program_words", "int", "instructions", "capacity of the "
          "controller's program memory"),
)

MODEL_FIELDS = (
    Field("", "name", "name", "str", "", "name shown in results and tables", required=True),
    Field("", "source", "source", "str", "", "where the shape comes from (e.g. the model's config.json)"),
    Field("", "d_model", "d_model", "int", "elements", "hidden size d", required=True),
    Field("", "d_ff", "d_ff", "int", "elements", "expert FFN (intermediate) size f", required=True),
    Field("", "num_experts", "num_experts", "int", "experts", "routed experts E", required=True),
    Field("", "top_k", "top_k", "int", "experts", "experts per token", required=True),
    Field("", "slices", "slices", "int", "", "default micro-slices per expert S (divides d_ff)", required=True),
    Field("", "shared_experts", "shared_experts", "count", "experts", "always-on shared experts (not part of "
          "the routed layer that is timed)"),
    Field("", "moe_layers", "moe_layers", "int", "layers", "MoE layers of the whole model (what `fsedp model` "
          "runs; dense layers not counted)"),
)

_KIND_TEXT = {"int": "a positive integer", "count": "a non-negative integer", "float": "a positive number",
              "size": "a positive number of bytes (an integer, or a string such as \"8MiB\")",
              "str": "a string", "bool": "true or false", "chiplets": "a list of chiplet indices",
              "bandwidth": "a positive number"}


def is_description_path(name) -> bool:
    """Whether a preset argument names a description file rather than a preset."""
    return str(name).endswith(SUFFIX)


def _defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _value(path, field: Field, value, table: dict):
    """``value`` of ``field`` checked and converted, or a one-line DescriptionError."""
    def bad():
        return DescriptionError(f"{path}: {field.where} must be {_KIND_TEXT[field.kind]}"
                                f"{' (' + field.unit + ')' if field.unit else ''}, not {value!r}")

    k = field.kind
    if k == "str":
        if not isinstance(value, str):
            raise bad()
        return value
    if k == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if k in ("int", "count"):
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if k == "int" else 0):
            raise bad()
        return value
    if k in ("float", "bandwidth"):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or value == float("inf"):
            raise bad()
        return float(value)
    if k == "size":
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str):
            try:
                return presets.parse_size(value)
            except presets.PresetError:
                raise bad() from None
        raise bad()
    if k == "chiplets":
        if not isinstance(value, list) or not value or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value):
            raise bad()
        if len(set(value)) != len(value):
            raise DescriptionError(f"{path}: {field.where} lists a chiplet twice: {value}")
        return tuple(value)
    raise AssertionError(k)


def _read(path) -> dict:
    p = pathlib.Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DescriptionError(f"{path}: no such description file") from None
    except OSError as exc:
        raise DescriptionError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DescriptionError(f"{path}: not a TOML description file (not UTF-8 text)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DescriptionError(f"{path}: not valid TOML: {exc}") from None


def _parse(path, doc: dict, fields: tuple, cls, what: str):
    """The dataclass ``cls`` described by ``doc``, every key checked against ``fields``."""
    by_where = {(f.section, f.key): f for f in fields}
    sections = dict.fromkeys(f.section for f in fields if f.section)
    values = {}
    # ``gbps`` is the alternative spelling of a bandwidth; it needs the clock.
    clock = (doc.get("clock") or {}).get("ghz") if isinstance(doc.get("clock"), dict) else None
    for key, value in doc.items():
        if isinstance(value, dict):
            if key not in sections:
                raise DescriptionError(f"{path}: unknown section [{key}] in a {what} description; the sections "
                                       f"are: {', '.join(f'[{s}]' for s in sections) or 'none'}")
            items = [(key, k, v) for k, v in value.items()]
        else:
            items = [("", key, value)]
        for section, k, v in items:
            f = by_where.get((section, k))
            if f is None and k == "gbps" and (section, "bytes_per_cycle") in by_where:
                f = by_where[section, "bytes_per_cycle"]
                if "bytes_per_cycle" in doc[section]:
                    raise DescriptionError(f"{path}: [{section}] gives both bytes_per_cycle and gbps; give one")
                gbps = _value(path, dataclasses.replace(f, key="gbps", unit="GB/s"), v, doc)
                ghz = _value(path, by_where["clock", "ghz"], clock, doc) if clock is not None else None
                if ghz is None:
                    raise DescriptionError(f"{path}: [{section}] gbps needs [clock] ghz to convert it to bytes "
                                           f"per cycle")
                values[f.attr] = gbps / ghz
                continue
            if f is None:
                known = [g.key for g in fields if g.section == section] + (
                    ["gbps"] if (section, "bytes_per_cycle") in by_where else [])
                place = f"[{section}]" if section else "the top level"
                raise DescriptionError(f"{path}: unknown key {k!r} in {place} of a {what} description; allowed: "
                                       f"{', '.join(known)}")
            values[f.attr] = _value(path, f, v, doc)
    missing = [f.where for f in fields if f.required and f.attr not in values]
    if missing:
        raise DescriptionError(f"{path}: missing {', '.join(missing)} (required in a {what} description; "
                               f"docs/description_files.md lists every field)")
    values.setdefault("source", f"description file {path}")
    try:
        return cls(**values)
    except presets.PresetError as exc:
        raise DescriptionError(f"{path}: {exc}") from None


def load_hardware(path) -> presets.HardwarePreset:
    """The hardware described by the TOML file ``path``."""
    return _parse(path, _read(path), HARDWARE_FIELDS, presets.HardwarePreset, "hardware")


def load_model(path) -> presets.ModelPreset:
    """The MoE layer shape described by the TOML file ``path``."""
    return _parse(path, _read(path), MODEL_FIELDS, presets.ModelPreset, "model")


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)   # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


def _size_text(n: int) -> str:
    """Bytes as ``"8MiB"`` where that is exact, else the integer."""
    for unit, size in (("GiB", presets.GiB), ("MiB", presets.MiB), ("KiB", presets.KiB)):
        if n % size == 0:
            return f'"{n // size}{unit}"'
    return str(n)


def _dump(obj, fields: tuple, what: str) -> str:
    lines = [f"# fsedp {what} description (docs/description_files.md lists every field, its unit and default)"]
    section = ""
    for f in fields:
        if f.section != section:
            section = f.section
            lines += ["", f"[{section}]"]
        unit = f" ({f.unit})" if f.unit else ""
        value = getattr(obj, f.attr)
        text = _size_text(value) if f.kind == "size" else _toml(value)
        lines.append(f"{f.key} = {text}   # {f.doc}{unit}")
    return "\n".join(lines) + "\n"


def dump_hardware(hw: presets.HardwarePreset) -> str:
    """``hw`` as a TOML description file that :func:`load_hardware` reads back equal."""
    return _dump(hw, HARDWARE_FIELDS, "hardware")


def dump_model(model: presets.ModelPreset) -> str:
    """``model`` as a TOML description file that :func:`load_model` reads back equal."""
    return _dump(model, MODEL_FIELDS, "model")


def field_table(fields: tuple, cls) -> str:
    """The Markdown table of ``fields`` (key, unit, default, meaning) for the docs."""
    defaults = _defaults(cls)
    rows = ["| key | unit | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        if f.required:
            default = "required"
        elif f.attr == "dram_chiplets":
            default = "the corners"
        elif f.attr == "source":
            default = "the file's path"
        else:
            default = f"`{_toml(defaults[f.attr])}`"
        rows.append(f"| `{f.where}` | {f.unit} | {default} | {f.doc} |")
    return "\n".join(rows)
