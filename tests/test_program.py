"""Stream control programs: encode/decode round trips, the file format, and the encoder's
capacity checks."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw import isa
from hw.config import TileConfig
from scheduler import golden, presets, program, routing
from scheduler.plan import STRATEGIES, FitError
from scheduler.program import ProgramError
from scheduler.strategies import build_plan

TINY = presets.get_model("tiny-8x2")
HW = presets.get_hardware("rtl-2x2")


def random_word(draw):
    opcode = draw(st.sampled_from(list(isa.Opcode)))
    ops = {}
    for name, fld in isa.OPERANDS[opcode].as_shape():
        if name.startswith("_"):
            continue
        shape = fld.shape
        if isinstance(shape, type) and issubclass(shape, isa.enum.Enum):
            ops[name] = draw(st.sampled_from(list(shape)))
        elif name == "values":
            ops[name] = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
        else:
            ops[name] = draw(st.integers(0, (1 << shape.width) - 1))
    return program._encode(opcode, **ops), opcode, ops


@settings(max_examples=300)
@given(st.data())
def test_every_instruction_round_trips_through_text(data):
    word, opcode, ops = random_word(data.draw)
    assert program.decode(word) == (opcode, ops)
    assert program.assemble(program.disassemble([word])) == [word]


@settings(max_examples=25, deadline=None)
@given(strategy=st.sampled_from(STRATEGIES), tokens=st.integers(1, 40), seed=st.integers(0, 1000),
       model=st.sampled_from(["tiny-8x2", "tiny-64x8"]), skew=st.floats(0, 2),
       layout=st.sampled_from(["round-robin", "contiguous"]))
def test_encoded_plans_round_trip_through_file_and_text(tmp_path_factory, strategy, tokens, seed, model, skew,
                                                        layout):
    m = presets.get_model(model)
    trace = routing.zipf(tokens, m.num_experts, m.top_k, skew, seed=seed)
    plan = build_plan(strategy, m, HW, trace, layout=layout if strategy.startswith("fse-dp") else None)
    progs = program.encode_plan(plan, golden.random_layer(m.num_experts, m.d_model, m.d_ff, seed), TileConfig())
    path = tmp_path_factory.mktemp("p") / "layer.fsedp"
    program.write_programs(progs, path)
    back = program.read_programs(path)
    assert [(p.kind, p.index, p.words) for p in back.sections()] == \
        [(p.kind, p.index, p.words) for p in progs.sections()]
    text = program.disassemble_programs(back)
    again = program.assemble_programs(text)
    assert [p.words for p in again.sections()] == [p.words for p in progs.sections()]


def controller_ops(progs, chiplet):
    return [program.decode(w) for w in progs.controllers[chiplet].words]


def test_encoded_controller_holds_the_plan():
    trace = routing.uniform(16, 8, 2, seed=1)
    layer = golden.random_layer(8, 32, 64, seed=1)
    plan = build_plan("fse-dp", TINY, HW, trace)
    progs = program.encode_plan(plan, layer, TileConfig())
    ops = controller_ops(progs, 2)
    regs = {o["reg"]: o["value"] for op, o in ops if op is isa.Opcode.SET}
    assert regs[isa.Reg.SUCCESSOR] == plan.successor[2] and regs[isa.Reg.RING_LEN] == 4
    assert regs[isa.Reg.SLOT_WORDS] * 64 == plan.slot_bytes and regs[isa.Reg.SLOTS] == plan.slots == 16
    assert regs[isa.Reg.ARRIVALS] == 8 * TINY.slices        # every slice visits every chiplet
    lut = [b for op, o in ops if op is isa.Opcode.LUT for b in o["values"]]
    assert np.array_equal(np.array(lut, dtype=np.uint8).view(np.int8), layer.quant.silu)
    experts = [(o["expert"], o["first"], o["count"]) for op, o in ops if op is isa.Opcode.EXPERT]
    entries = [(o["row"], o["gate"]) for op, o in ops if op is isa.Opcode.ENTRY]
    for e, first, count in experts:
        assert tuple(entries[first:first + count]) == plan.jobs[2][e]
    assert ops[-1][0] is isa.Opcode.END
    streamed = [(o["expert"], o["slice"]) for p in progs.drams for op, o in map(program.decode, p.words)
                if op is isa.Opcode.STREAM]
    assert sorted(streamed) == sorted((e, s) for e in plan.expert_order for s in range(TINY.slices))


def test_ep_programs_send_tokens_and_expect_results():
    trace = routing.uniform(16, 8, 2, seed=1)
    plan = build_plan("ep", TINY, HW, trace)
    progs = program.encode_plan(plan, golden.random_layer(8, 32, 64), TileConfig())
    sends = sum(op is isa.Opcode.SEND for c in range(4) for op, _ in controller_ops(progs, c))
    remotes = sum(op is isa.Opcode.REMOTE for c in range(4) for op, _ in controller_ops(progs, c))
    assert sends == remotes == len(plan.token_sends) > 0
    expected = sum(o["value"] for c in range(4) for op, o in controller_ops(progs, c)
                   if op is isa.Opcode.SET and o["reg"] is isa.Reg.RESULTS)
    assert expected == len(plan.token_sends)


def test_plan_that_overflows_a_buffer_is_rejected():
    trace = routing.uniform(16, 8, 2, seed=1)
    layer = golden.random_layer(8, 32, 64)
    whole = build_plan("ep-whole", TINY, HW, trace)
    with pytest.raises(FitError, match=r"^ep-whole does not fit: it needs 12 KiB of weight buffer \(2 slot\(s\) of "
                                       r"6 KiB\); the weight buffer holds 6.25 KiB$"):
        program.encode_plan(whole, layer, TileConfig(weight_words=100))
    ep = build_plan("ep", TINY, HW, trace)
    with pytest.raises(FitError, match=r"chiplet \d needs \d+ token rows; the token buffer has 2"):
        program.encode_plan(ep, layer, TileConfig(token_rows=2))
    with pytest.raises(FitError, match=r"needs \d+ token-table entries; the table has 3"):
        program.encode_plan(ep, layer, TileConfig(table_entries=3))
    with pytest.raises(FitError, match="program of .* words exceeds the program memory's 50"):
        program.encode_plan(ep, layer, TileConfig(program_words=50))
    with pytest.raises(FitError, match="hidden size d 32 exceeds"):
        program.encode_plan(ep, layer, TileConfig(d_max=16))
    with pytest.raises(FitError, match="16 slots exceed the router's slot table of 8"):
        program.encode_plan(ep, layer, TileConfig(max_slots=8))
    # 4 columns per slice: planned for a 4x4 MAC array, encoded for the 8x8 one
    import dataclasses
    odd = build_plan("fse-dp", TINY, dataclasses.replace(HW, mac_rows=4, mac_cols=4), trace, slices=16)
    with pytest.raises(FitError, match="slice columns f/S 4 must be a multiple of the MAC array"):
        program.encode_plan(odd, layer, TileConfig())


def test_remote_uses_count_every_tile_applied_to_a_received_token():
    trace = routing.uniform(16, 8, 2, seed=1)
    plan = build_plan("ep", TINY, HW, trace)
    progs = program.encode_plan(plan, golden.random_layer(8, 32, 64), TileConfig())
    for c in range(4):
        uses = {o["row"]: o["uses"] for op, o in controller_ops(progs, c) if op is isa.Opcode.REMOTE}
        assert uses == plan.remote_uses(c)
        for (src, t), r in plan.remote_rows[c].items():
            tiles = plan.tiles(c)
            assert uses[r] == sum(len(tiles.get(int(e), ())) for e in trace.experts[t])


@pytest.mark.parametrize("text,message", [
    ("SET SLOTS", "SET takes 2 operands"),
    ("SET BOGUS, 1", "'BOGUS' is not one of CHIPLET_ID"),
    ("ENTRY row=1, gate=256", "gate = 256 does not fit 8 bits"),
    ("ENTRY row=1, weight=3", "unexpected operand 'weight'"),
    ("EXPERT 1, 2, x", "'x' is not a number"),
    ("JUMP 3", "unknown instruction 'JUMP'"),
    ("LUT 0, 1, 2, 3, 300", "values must be 4 values 0..255"),
])
def test_assembler_errors_name_the_line(text, message):
    with pytest.raises(ProgramError, match=message) as info:
        program.assemble("; header\n" + text, "p.s")
    assert str(info.value).startswith("p.s:2:")


def test_unknown_opcode_and_bad_files_are_rejected(tmp_path):
    with pytest.raises(ProgramError, match="word 1: unknown opcode 0x77"):
        program.disassemble([0, 0x77])
    bad = tmp_path / "bad.fsedp"
    bad.write_bytes(b"NOTAPROG" + bytes(8))
    with pytest.raises(ProgramError, match="bad magic"):
        program.read_programs(bad)
    good = tmp_path / "good.fsedp"
    program.write_programs(program.LayerPrograms([program.Program(0, 0, [0, 1, 2])], []), good)
    bad.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(ProgramError, match="truncated"):
        program.read_programs(bad)
    with pytest.raises(ProgramError, match="before the first section directive"):
        program.assemble_programs("END\n")
    with pytest.raises(ProgramError, match="section directive is"):
        program.assemble_programs(".chiplet 0\nEND\n")


def test_instruction_layouts_are_64_bits():
    assert isa.Instruction.as_shape().size == 64
    for layout in isa.OPERANDS.values():
        assert layout.as_shape().size == 56


def test_dram_images_hold_each_streamed_slice_at_its_address():
    from hw.slice_layout import unpack_slice

    trace = routing.uniform(16, 8, 2, seed=1)
    layer = golden.random_layer(8, 32, 64, seed=2)
    plan = build_plan("fse-dp-paired", TINY, HW, trace)
    tile = TileConfig()
    progs = program.encode_plan(plan, layer, tile)
    images = program.dram_images(plan, layer, tile)
    for prog, image in zip(progs.drams, images):
        regs = {o["reg"]: o["value"] for op, o in map(program.decode, prog.words) if op is isa.Opcode.SET}
        n = regs[isa.Reg.SLOT_WORDS]
        for op, o in map(program.decode, prog.words):
            if op is not isa.Opcode.STREAM:
                continue
            cols = golden.slice_columns(64, TINY.slices, o["slice"])
            g, u, dn = unpack_slice(image[o["addr"]:o["addr"] + n], 32, len(cols), 8, 8)
            assert np.array_equal(g, layer.w_gate[o["expert"]][:, cols])
            assert np.array_equal(dn, layer.w_down[o["expert"]][cols, :])


def _programs():
    from hw.config import SystemConfig

    plan = build_plan("fse-dp", TINY, HW, routing.uniform(8, 8, 2, 0))
    layer = golden.random_layer(8, TINY.d_model, TINY.d_ff, 0)
    system = SystemConfig.from_preset(HW)
    return program.encode_plan(plan, layer, system.tile), system


def test_a_program_file_is_checked_against_the_configuration():
    import dataclasses

    progs, system = _programs()
    program.check_programs(progs, system, "p.fsedp")          # the encoder's own programs pass

    def fails(edit, message):
        p = program.LayerPrograms([dataclasses.replace(c, words=list(c.words)) for c in progs.controllers],
                                  [dataclasses.replace(d, words=list(d.words)) for d in progs.drams])
        edit(p)
        with pytest.raises(ProgramError) as info:
            program.check_programs(p, system, "p.fsedp")
        assert str(info.value).startswith("p.fsedp: ") and message in str(info.value), str(info.value)

    fails(lambda p: p.controllers.pop(), "one .controller section for each of the 4 chiplets (0..3); missing 3")
    fails(lambda p: setattr(p.controllers[3], "index", 2), "missing 3; repeated 2")
    fails(lambda p: setattr(p.drams[1], "index", 7), "DRAM channels (0..3); missing 1; no DRAM channel 7 here")
    fails(lambda p: p.controllers[1].words.pop(), ".controller 1: END must be the last word")
    fails(lambda p: p.drams[2].words.append(p.drams[2].words[-1]), ".dram 2: END must be the last word (and only "
                                                                    "there); found it at [16, 17] of 18")
    fails(lambda p: p.controllers[0].words.__setitem__(5, 0xEE), ".controller 0, word 5: unknown opcode 0xee")
    fails(lambda p: setattr(p.controllers[0], "words", p.controllers[0].words[:1] * 5000),
          ".controller 0 has 5000 words; the chiplet's program memory holds 4096")
    fails(lambda p: p.drams[0].words.__setitem__(0, program._set(isa.Reg.CHIPLET_ID, 1)),
          ".dram 0 runs on chiplet 0; it must SET CHIPLET_ID to 0 once, not [1]")
    fails(lambda p: setattr(p.controllers[2], "words", []), ".controller 2 is empty")
