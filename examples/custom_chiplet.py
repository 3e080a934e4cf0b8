"""Describe your own chiplet system and compare every strategy on it.

Starts from a hardware preset, changes a few fields with ``dataclasses.replace`` (the
default: ``paper-2x2`` with a 64x64 MAC array, D2D links twice as fast and a 4 MiB weight
buffer per chiplet), writes it as a TOML description file, loads that file back with
``fsedp.hardware(path)`` (the file works wherever a preset name does, e.g.
``fsedp compare --preset DIR/my-2x2.toml``), and runs every strategy on one MoE layer of
a paper-scale model with the fast engine. It prints the comparison table and, for each
strategy that does not fit the hardware, the reason.

``--engine rtl`` does the same on hardware small enough to simulate as RTL
(``rtl-2x2`` with an 8 KiB weight buffer) with the ``tiny-8x2`` layer: the system is
built with Verilator once (a few minutes the first time on a loaded 2-core machine, cached in ``build/``) and every
output is checked bit-exactly against the golden model.

Run it::

    python examples/custom_chiplet.py                     # fast engine, olmoe-1b-7b, L = 64
    python examples/custom_chiplet.py --model mixtral-8x7b --routing mixtral:c4
    python examples/custom_chiplet.py --engine rtl        # Verilator, tiny-8x2, L = 16

Writes ``DIR/my-2x2.toml`` (or ``DIR/my-rtl-2x2.toml``) under ``--out DIR``
(default ``results/examples``).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import fsedp

MiB, KiB = 1 << 20, 1 << 10


def my_hardware(engine: str) -> fsedp.HardwarePreset:
    """The custom system: a preset with a few fields changed."""
    if engine == "rtl":
        # RTL-sized: rtl-2x2 (8x8 MACs, 1 B/cycle DRAM channels) with a smaller weight
        # buffer, 8 KiB instead of 12 KiB, so that ep-paper's two whole-expert buffers no
        # longer fit.
        base = fsedp.hardware("rtl-2x2")
        return dataclasses.replace(base, name="my-rtl-2x2", weight_sram_bytes=8 * KiB,
                                   source="examples/custom_chiplet.py: rtl-2x2 with an 8 KiB weight buffer")
    base = fsedp.hardware("paper-2x2")
    return dataclasses.replace(
        base, name="my-2x2",
        mac_rows=64, mac_cols=64,                                 # 4096 MACs per chiplet instead of 2048
        link_bytes_per_cycle=2 * base.link_bytes_per_cycle,       # D2D links twice as fast
        weight_sram_bytes=4 * MiB,                                # 4 MiB weight buffer instead of 8 MiB
        source="examples/custom_chiplet.py: paper-2x2 with a 64x64 MAC array, 2x D2D bandwidth, "
               "a 4 MiB weight buffer")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/examples"),
                    help="output folder (default: results/examples)")
    ap.add_argument("--engine", choices=fsedp.ENGINES, default="fast",
                    help="fast (default: paper-scale layer) or rtl (Verilator, tiny-8x2, bit-exact checked)")
    ap.add_argument("--model", help="model preset or .toml (default: olmoe-1b-7b; tiny-8x2 with --engine rtl)")
    ap.add_argument("--tokens", "-L", type=int, help="tokens in the layer (default: 64; 16 with --engine rtl)")
    ap.add_argument("--routing", help="routing spec (default: olmoe:c4; mixtral:c4 with --engine rtl)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rtl = args.engine == "rtl"
    model_name = args.model or ("tiny-8x2" if rtl else "olmoe-1b-7b")
    tokens = args.tokens or (16 if rtl else 64)
    spec = args.routing or ("mixtral:c4" if rtl else "olmoe:c4")

    # 1. Describe the hardware and write it as a description file.
    hw = my_hardware(args.engine)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{hw.name}.toml"
    path.write_text(fsedp.dump_hardware(hw))

    # 2. Load it back: this is what `--preset FILE.toml` and fsedp.hardware(FILE) read.
    loaded = fsedp.hardware(path)
    print(f"wrote {path}; loaded back equal: {loaded == hw}")
    print(f"{loaded.name}: {loaded.rows}x{loaded.cols} chiplets, {loaded.mac_rows}x{loaded.mac_cols} MACs, "
          f"D2D {loaded.link_bytes_per_cycle:g} B/cycle, DRAM {loaded.dram_channels} x "
          f"{loaded.dram_bytes_per_cycle:g} B/cycle, weight buffer {fsedp.format_size(loaded.weight_sram_bytes)} "
          f"+ token buffers {fsedp.format_size(loaded.token_sram_bytes)} per chiplet")

    # 3. Every strategy on the same layer, tokens and buffers.
    try:
        model = fsedp.model(model_name)
        trace = fsedp.routing(spec, model, tokens=tokens, seed=args.seed)
    except (fsedp.PresetError, fsedp.RoutingError) as exc:
        ap.error(str(exc))
    print(f"model {model.name} (d={model.d_model}, f={model.d_ff}, E={model.num_experts}, top-{model.top_k}), "
          f"L={tokens}, routing {spec}, engine {args.engine}")
    progress = (lambda text: print(text, file=sys.stderr, flush=True)) if rtl else None   # build status
    results, skipped = fsedp.compare(loaded, model, trace, engine=args.engine, seed=args.seed, progress=progress)
    print(fsedp.compare_table(results))
    for s in skipped:
        print(f"not run: {s['strategy']}: {s['reason']}")
    if rtl and not all(r.bit_exact for r in results):
        print("some outputs differ from the golden model", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
