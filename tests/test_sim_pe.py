# amaranth: UnusedElaboratable=no
"""The PE and its lanes on Verilator and Icarus against the golden model, and their generators."""

import re

import pytest
from amaranth.sim import Simulator

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.rom import write_images
from permdeal.hdl.accumulator import Accumulator
from permdeal.hdl.multiplier import Multiplier
from permdeal.hdl import lane as lane_mod
from permdeal.hdl.lane import Lane
from permdeal.hdl.pe import PE, pe_contents, pe_images
from permdeal.hdl.rom import rom_sources
from permdeal.verif import runner
from permdeal.verif.tb_pe import PASSES, build_case, pe_config

#: name -> case parameters (see ``verif.tb_pe.Case``). Each Verilator build costs ~15-20 s, so
#: there are three: a lone power-of-two p on PE 1 of 2 (B = 2, then B = 1); two block sizes picked
#: by ``sel`` with 16-bit codes (B = 3 with p = 3, then B = 1 with p = 5; a > 64-bit acc port);
#: p = 1 on one lane of PE 2 of 3 (every op of the B = 1 layer hits accumulator 0 back to back).
CASES = {
    "p4-L2-pe1of2": dict(seed=11, ps=[4], layer_ps=[4, 4], sizes=[22, 30, 13], n_pe=2, lanes=2,
                         pe=1, act_bits=8, weight_bits=8, bias_bits=12),
    "p3-5-sel-L3": dict(seed=12, ps=[3, 5], layer_ps=[3, 5], sizes=[17, 20, 14], n_pe=1,
                        lanes=3, pe=0, act_bits=16, weight_bits=16, bias_bits=16),
    "p1-L1-pe2of3": dict(seed=13, ps=[1], layer_ps=[1, 1], sizes=[10, 7, 3], n_pe=3, lanes=1,
                         pe=2, act_bits=12, weight_bits=10, bias_bits=12),
}
TESTS = set(PASSES)


def _pe(case, images=None, multiplier="native"):
    """The case's PE: memories baked in, or loaded from the images in folder ``images``."""
    if images is not None:
        return PE(case.lanes, *case.lane_params, images=pe_images(images, case.cfg, case.pe),
                  multiplier=multiplier)
    return PE(case.lanes, *case.lane_params, contents=pe_contents(case.contents, case.cfg, case.pe),
              multiplier=multiplier)


def _write_images(case, folder):
    folder.mkdir(parents=True, exist_ok=True)
    write_images(folder, case.model, case.cfg)
    return folder


def _simulate(sim, name, build_dir, images=False, multiplier="native", **kwargs):
    case = build_case(CASES[name])
    dut = _pe(case, _write_images(case, build_dir / "rom") if images else None, multiplier)
    source = build_dir / "pe.v"
    text = emit(dut, "pe", source)
    return case, runner.run(sim, sources=[source, *rom_sources(text)], toplevel="pe",
                            test_module="permdeal.verif.tb_pe", build_dir=build_dir,
                            config=pe_config(case, dut), **kwargs)


def _accumulators(case, test):
    """Accumulators a test compares: every lane's ``B*p`` per pass."""
    return sum(case.lanes * case.accumulators(layer) for layer, _ in PASSES[test])


@pytest.mark.sim
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_pe_matches_golden(sim, name, tmp_path):
    case, result = _simulate(sim, name, tmp_path)
    _check_result(case, result, "baked")


@pytest.mark.sim
@pytest.mark.parametrize("name", CASES)
def test_dsp_pe_matches_golden(name, tmp_path):
    # The FPGA lanes: the weight zero without an op (a drain's product is zero, the accumulator
    # adds it as it comes); the accumulator writes its memory from registers, a cycle later, and
    # forwards that write from a third register (back-to-back adds to one accumulator at p = 1).
    case, result = _simulate("icarus", name, tmp_path, multiplier="dsp")
    assert all(lane.accumulator.fpga for lane in _pe(case, multiplier="dsp").lane)
    _check_result(case, result, "baked")


#: The image-mode runs: every case on Icarus, one Verilator build (two block sizes by ``sel``,
#: three lanes, 16-bit signed weights, 3-bit k words).
IMAGE_RUNS = [("icarus", name) for name in CASES] + [("verilator", "p3-5-sel-L3")]


@pytest.mark.sim
@pytest.mark.parametrize("sim, name", IMAGE_RUNS)
def test_pe_from_images_matches_golden(sim, name, tmp_path):
    # The lanes' weight and k memories load golden.rom.write_images files by $readmemh.
    case, result = _simulate(sim, name, tmp_path, images=True)
    text = (tmp_path / "pe.v").read_text()
    assert text.count("permdeal_rom #(") == 2 * case.lanes
    _check_result(case, result, "images")


def _check_result(case, result, memories):
    assert result.passed and set(result.tests) == TESTS
    for test in TESTS:
        rep = result.report[test]
        assert rep["memories"] == memories, (test, rep)
        want = _accumulators(case, test)
        assert rep["checked"] == rep["accumulators"] == want > 0, (test, rep, want)
        assert rep["mismatches"] == rep["valid_errors"] == 0, (test, rep)
        assert rep["ops"] == sum(z * case.places[layer].slots
                                 for z, (layer, _) in zip(rep["nnz"], PASSES[test])), rep
    # The densities 0 and 1 give no op and every input; the full passes did issue ops.
    rep = result.report["test_back_to_back"]
    assert rep["nnz"][2] == 0 and rep["nnz"][1] == case.model.layers[1].shape[1], rep


@pytest.mark.sim
def test_bench_catches_missing_forwarding(tmp_path, monkeypatch):
    # Without forwarding, back-to-back ops on one accumulator (p = 1, B = 1) lose a product.
    monkeypatch.setattr(Accumulator, "_old_value", lambda self, read, *args: read)
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", "p1-L1-pe2of3", tmp_path, seed=5, testcase="test_back_to_back")
    assert e.value.result.failures.keys() == {"test_back_to_back"}
    msg = str(e.value)
    assert re.search(r"layer 1 \(fc1, pass \d\): lane 0 \(global lane 2\) slot t=0 r=0 \(output "
                     r"row 2\): expected -?\d+, observed -?\d+ \(cycle \d+\)", msg), msg


@pytest.mark.sim
def test_bench_catches_a_short_latency(tmp_path, monkeypatch):
    # A lane that claims a latency one short is drained while its last op needs the read port.
    monkeypatch.setattr(Lane, "latency", property(lambda self: lane_mod.LATENCY - 1))
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", "p4-L2-pe1of2", tmp_path, seed=5, testcase="test_back_to_back")
    assert e.value.result.failures.keys() == {"test_back_to_back", runner.RTL_ASSERTION}
    assert "lane: drain request while an op is in the pipeline" in \
        e.value.result.failures[runner.RTL_ASSERTION]
    assert ": expected " in str(e.value) and ", observed " in str(e.value)
    assert "drain request while an op is in the pipeline" in e.value.result.log.read_text()


# -- generator -------------------------------------------------------------------------------------

def _lane(**kw):
    args = dict(ps=(3, 5), act_bits=8, weight_bits=6, acc_bits=20, w_depth=6, k_depth=3,
                acc_depth=15, weights=[-32, 31, 0, 1, -1, 5], ks=[0, 4, 2])
    args.update(kw)
    return Lane(args.pop("ps"), args.pop("act_bits"), args.pop("weight_bits"),
                args.pop("acc_bits"), args.pop("w_depth"), args.pop("k_depth"),
                args.pop("acc_depth"), **args)


def test_lane_properties():
    lane = _lane()
    assert (lane.ps, lane.act_bits, lane.weight_bits, lane.acc_bits) == ((3, 5), 8, 6, 20)
    assert (lane.w_depth, lane.k_depth, lane.acc_depth) == (6, 3, 15)
    assert (lane.latency, lane.drain_latency, lane.product_bits) == (5, 2, 14)
    assert (lane.index_width, lane.sel_bits) == (3, 1)
    assert (lane.w_addr_bits, lane.k_addr_bits, lane.acc_addr_bits) == (3, 2, 4)
    assert lane.weights == (-32, 31, 0, 1, -1, 5) and lane.ks == (0, 4, 2)
    assert [(n, f.offset, f.width) for n, f in lane.op_layout] == [
        ("valid", 0, 1), ("w_addr", 1, 3), ("k_addr", 4, 2), ("c", 6, 3), ("sel", 9, 1),
        ("x", 10, 8), ("acc_addr", 18, 4)]
    assert lane.op_layout["x"].shape.signed
    assert [(n, f.offset, f.width) for n, f in lane.drain_layout] == [("valid", 0, 1),
                                                                     ("addr", 1, 4)]
    assert [(n, f.offset, f.width) for n, f in lane.acc_layout] == [("valid", 0, 1),
                                                                   ("value", 1, 20)]
    assert set(lane.signature.members) == {"op", "drain", "acc"}
    single = _lane(ps=4, acc_depth=4, ks=[0, 3, 1])
    assert "sel" not in dict(iter(single.op_layout)) and single.sel_bits == 0
    tiny = _lane(ps=1, w_depth=1, k_depth=1, acc_depth=1, weights=[3], ks=[0])
    assert (tiny.index_width, tiny.w_addr_bits, tiny.k_addr_bits, tiny.acc_addr_bits) == \
        (1, 1, 1, 1)
    for attr in ("latency", "drain_latency", "acc_bits", "weights"):
        with pytest.raises(AttributeError):
            setattr(lane, attr, 0)


def test_pe_properties():
    case = build_case(CASES["p3-5-sel-L3"])
    pe = _pe(case)
    assert pe.lanes == 3 and len(pe.lane) == 3
    assert (pe.latency, pe.drain_latency) == (5, 2)
    assert pe.ps == (3, 5) and pe.acc_bits == case.acc_bits
    assert pe.op_layout == pe.lane[0].op_layout and pe.acc_layout == pe.lane[2].acc_layout
    assert pe.acc.shape().size == 3 * (1 + case.acc_bits)
    for l, lane in enumerate(pe.lane):
        assert lane.weights == tuple(case.contents["weight"][l])
        assert lane.ks == tuple(case.contents["k"][l])
    with pytest.raises(AttributeError):
        pe.latency = 5
    with pytest.raises(AttributeError):
        pe.lanes = 2


LANE_ERRORS = [
    (dict(ps=()), "permutation index needs at least one block size p"),
    (dict(ps=(3, 0)), "block size p must be an integer >= 1, not 0"),
    (dict(act_bits=1), "lane act_bits must be an integer in [2, 32], not 1"),
    (dict(act_bits=8.0), "lane act_bits must be an integer in [2, 32], not 8.0"),
    (dict(weight_bits=33), "lane weight_bits must be an integer in [2, 32], not 33"),
    (dict(acc_bits=13), "lane acc_bits must be an integer in [14, 63], not 13 (an exact product "
                        "of 8-bit activations and 6-bit weights has 14 bits)"),
    (dict(acc_bits=64), "lane acc_bits must be an integer in [14, 63], not 64 (an exact product "
                        "of 8-bit activations and 6-bit weights has 14 bits)"),
    (dict(acc_bits=True), "lane acc_bits must be an integer in [14, 63], not True (an exact "
                          "product of 8-bit activations and 6-bit weights has 14 bits)"),
    (dict(w_depth=0), "lane w_depth must be an integer >= 1, not 0"),
    (dict(k_depth="3"), "lane k_depth must be an integer >= 1, not '3'"),
    (dict(acc_depth=4), "lane acc_depth must be an integer >= 5 (one slot of the largest block "
                        "size), not 4"),
    (dict(weights=[1, 2]), "lane weights must hold exactly 6 words, not 2"),
    (dict(weights="abcdef"), "lane weights must be a sequence of 6 integers, not str"),
    (dict(weights=[0, 0, 0, 32, 0, 0]), "lane weights[3] must be an integer in [-32, 31] "
                                        "(signed 6-bit), not 32"),
    (dict(weights=[0, 0.5, 0, 0, 0, 0]), "lane weights[1] must be an integer in [-32, 31] "
                                         "(signed 6-bit), not 0.5"),
    (dict(ks=[0, 5, 0]), "lane ks[1] must be an integer in [0, 4] (permutation values of block "
                         "sizes up to 5), not 5"),
    (dict(ks=None), "lane ks must be a sequence of 3 integers, not NoneType"),
]


@pytest.mark.parametrize("kw, message", LANE_ERRORS)
def test_lane_rejects_bad_parameters(kw, message):
    with pytest.raises(PermdealError) as e:
        _lane(**kw)
    assert str(e.value) == message


def _pe_args(**kw):
    args = dict(lanes=2, ps=4, act_bits=8, weight_bits=8, acc_bits=20, w_depth=2, k_depth=1,
                acc_depth=4, contents=[{"weight": [1, 2], "k": [3]}, {"weight": [3, 4], "k": [0]}])
    args.update(kw)
    return args


@pytest.mark.parametrize("kw, message", [
    (dict(lanes=0), "PE lanes must be an integer >= 1, not 0"),
    (dict(acc_bits=15), "lane acc_bits must be an integer in [16, 63], not 15 (an exact product "
                        "of 8-bit activations and 8-bit weights has 16 bits)"),
    (dict(contents={"weight": [1, 2], "k": [3]}), "PE contents must be a sequence of 2 dicts, "
                                                  "not dict"),
    (dict(contents=[{"weight": [1, 2], "k": [3]}]), "PE contents must hold one dict per lane "
                                                    "(2), not 1"),
    (dict(contents=[{"weight": [1, 2], "k": [3]}, {"weight": [1, 2], "k": [0], "bias": [0]}]),
     "PE contents[1] must be a dict with keys 'weight' and 'k', not ['bias', 'k', 'weight']"),
    (dict(contents=[{"weight": [1, 2], "k": [3]}, [1, 2]]),
     "PE contents[1] must be a dict with keys 'weight' and 'k', not list"),
    (dict(contents=[{"weight": [1, 2], "k": [3]}, {"weight": [1, 2], "k": [4]}]),
     "PE contents[1]: lane ks[0] must be an integer in [0, 3] (permutation values of block sizes "
     "up to 4), not 4"),
])
def test_pe_rejects_bad_parameters(kw, message):
    args = _pe_args(**kw)
    with pytest.raises(PermdealError) as e:
        PE(args.pop("lanes"), args.pop("ps"), args.pop("act_bits"), args.pop("weight_bits"),
           args.pop("acc_bits"), args.pop("w_depth"), args.pop("k_depth"), args.pop("acc_depth"),
           **args)
    assert str(e.value) == message


def test_pe_contents():
    case = build_case(CASES["p4-L2-pe1of2"])
    words = pe_contents(case.contents, case.cfg, 1)
    assert len(words) == 2 and all(set(w) == {"weight", "k"} for w in words)
    assert list(words[1]["weight"]) == list(case.contents["weight"][3])
    with pytest.raises(PermdealError, match=r"^PE index must be below the engine's 2 PEs, not 2$"):
        pe_contents(case.contents, case.cfg, 2)


def test_emit_is_deterministic_and_reads_like_python(tmp_path):
    case = build_case(CASES["p3-5-sel-L3"])
    first = emit(_pe(case), "pe", tmp_path / "a.v")
    second = emit(_pe(build_case(CASES["p3-5-sel-L3"])), "pe", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module pe(" in first
    for l in range(3):  # instance lane<l> of module pe.lane<l>, with its named blocks
        assert re.search(rf"\\pe\.lane{l}\s+lane{l} \(", first), l
        for block in ("perm_index", "multiplier", "accumulator"):
            assert re.search(rf"module \\pe\.lane{l}\.{block} ", first), (l, block)
    assert "lane3" not in first
    for mem in ("weight_mem", "k_mem", "mem"):
        assert re.search(rf"reg \[\d+:0\] {mem} \[", first), mem
    other = build_case({**CASES["p3-5-sel-L3"], "seed": 99})
    assert emit(_pe(other), "pe") != first  # other memory contents


def _lane_bench(lane, bench):
    sim = Simulator(lane)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_lane_asserts_the_controller_contract():
    # Amaranth's simulator: accumulating with forwarding, draining, and the contract's assertion.
    lane = _lane(ps=1, acc_depth=2, ks=[0, 0, 0])
    drained = []

    async def bench(ctx):
        for w_addr, x in ((1, 3), (3, -2), (5, 7)):  # 31*3 + 1*(-2) + 5*7, back to back
            ctx.set(lane.op, {"valid": 1, "w_addr": w_addr, "c": 0, "x": x, "acc_addr": 1})
            await ctx.tick()
        ctx.set(lane.op.valid, 0)
        await ctx.tick().repeat(lane.latency - 1)
        # read-and-clear twice, back to back: the second read gives 0
        seen = []
        for cycle in range(2 + lane.drain_latency):
            ctx.set(lane.drain, {"valid": int(cycle < 2), "addr": 1})
            await ctx.delay(0)
            seen.append(ctx.get(lane.acc.valid))
            if seen[-1]:
                drained.append(ctx.get(lane.acc.value))
            await ctx.tick()
        assert seen == [0] * lane.drain_latency + [1, 1]
        ctx.set(lane.op, {"valid": 1, "w_addr": 0, "acc_addr": 0})
        await ctx.tick()
        ctx.set(lane.op.valid, 0)
        await ctx.tick()
        ctx.set(lane.drain, {"valid": 1, "addr": 0})  # two cycles after an op: a violation
        await ctx.tick()

    with pytest.raises(AssertionError, match="drain request while an op is in the pipeline"):
        _lane_bench(lane, bench)
    assert drained == [31 * 3 - 2 + 5 * 7, 0]


@pytest.mark.parametrize("a_bits, b_bits, style", [
    *[(a, b, "native") for a, b in [(6, 8), (16, 16), (8, 9), (5, 17), (32, 32)]],
    # (booth in gates: not 32 x 32, which Amaranth's simulator takes minutes over)
    *[(a, b, "booth") for a, b in [(6, 8), (16, 16), (8, 9), (5, 17), (2, 2), (3, 4), (4, 3),
                                   (5, 5), (2, 7)]],
    *[(a, b, "dsp") for a, b in [(6, 8), (16, 16), (5, 17), (2, 2), (32, 32)]]])
def test_multiplier_is_exact_one_product_a_cycle(a_bits, b_bits, style):
    # Amaranth's simulator: every pair when both operands are small, else the extremes of both
    # and random pairs; one a cycle, each product exactly two cycles later (split in two halves
    # when b is wider than 8 bits; booth: Booth rows and a Dadda tree in gates, its two rows
    # registered but for the low columns, added in the first stage; then the rest added; dsp: the
    # operands registered, then the whole product: the same products at the same time).
    import random

    mul = Multiplier(a_bits, b_bits, style=style)
    assert mul.style == style
    assert mul.split == (b_bits // 2 if b_bits > 8 and style == "native" else 0)
    assert mul.low_bits == ((b_bits + 1) // 2 if style == "booth" else 0)
    lo_a, lo_b = -(1 << (a_bits - 1)), -(1 << (b_bits - 1))
    if a_bits + b_bits <= 10:
        pairs = [(a, b) for a in range(lo_a, -lo_a) for b in range(lo_b, -lo_b)]
    else:
        ends = [lambda w: -(1 << (w - 1)), lambda w: (1 << (w - 1)) - 1, lambda w: -1,
                lambda w: 0, lambda w: 1]
        pairs = [(f(a_bits), g(b_bits)) for f in ends for g in ends]
        rng = random.Random(a_bits * 100 + b_bits)
        pairs += [(rng.randrange(lo_a, -lo_a), rng.randrange(lo_b, -lo_b)) for _ in range(200)]
    got = []

    async def bench(ctx):
        for k in range(len(pairs) + mul.latency):
            if k < len(pairs):
                ctx.set(mul.a, pairs[k][0])
                ctx.set(mul.b, pairs[k][1])
            await ctx.tick()
            if k + 1 >= mul.latency:
                got.append(ctx.get(mul.p))

    sim = Simulator(mul)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(pairs)] == [a * b for a, b in pairs]


def test_lane_blocks_check_their_parameters():
    mul = Multiplier(6, 8)
    assert (mul.a_bits, mul.b_bits, mul.product_bits, mul.latency) == (6, 8, 14, 2)
    acc = Accumulator(20, 14, 15)
    assert (acc.acc_bits, acc.value_bits, acc.depth, acc.addr_bits, acc.drain_latency) == \
        (20, 14, 15, 4, 2)
    for make, message in (
            (lambda: Multiplier(1, 8), "multiplier a_bits must be an integer in [2, 32], not 1"),
            (lambda: Multiplier(8, 33), "multiplier b_bits must be an integer in [2, 32], not 33"),
            (lambda: Multiplier(8, 8, style="wallace"), "multiplier style must be one of native, "
                                                        "booth, dsp, not 'wallace'"),
            (lambda: Accumulator(20, 1, 4), "accumulator value_bits must be an integer >= 2"),
            (lambda: Accumulator(13, 14, 4), "accumulator acc_bits must be an integer in [14, 63] "
                                             "(at least value_bits), not 13"),
            (lambda: Accumulator(20, 14, 0), "accumulator depth must be an integer >= 1, not 0")):
        with pytest.raises(PermdealError) as e:
            make()
        assert str(e.value).startswith(message), str(e.value)


def test_only_an_external_pe_shares_one_lane_module():
    case = build_case(CASES["p3-5-sel-L3"])
    with pytest.raises(PermdealError, match="lane_module needs an external-memory PE"):
        PE(case.lanes, *case.lane_params,
           contents=pe_contents(case.contents, case.cfg, case.pe), lane_module="lane")
    shared = PE(case.lanes, *case.lane_params, external=True, lane_module="lane")
    assert len(shared.blackboxes) == case.lanes
    assert {box.module for box in shared.blackboxes} == {"lane"}
    assert len({id(box.inner) for box in shared.blackboxes}) == 1
