# amaranth: UnusedElaboratable=no
"""The issuer on Verilator and Icarus against its spec, cycle by cycle, its reciprocal division,
and its generator."""

import re

import pytest

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.hdl import issuer as issuer_mod
from permdeal.hdl.issuer import Issuer, check_reciprocal, reciprocal
from permdeal.hdl.lane import Lane
from permdeal.verif import runner

#: name -> (ps, index_bits, act_bits, w_addr_bits, k_addr_bits, acc_addr_bits, max_slots) on both
#: simulators: one Verilator build with two block sizes (one not a power of two).
CONFIGS = {"p3-8-n10-s4": ((3, 8), 10, 8, 12, 9, 5, 4)}
#: Icarus only: the dense p = 1 with tiny widths, and a single odd p with B up to 5.
ICARUS_CONFIGS = {"p1-n3-s2": ((1,), 3, 2, 4, 3, 1, 2), "p7-n8-s5": ((7,), 8, 6, 11, 8, 5, 5)}


def _simulate(sim, params, build_dir, layers=12, dut=None, **kwargs):
    dut = Issuer(*params) if dut is None else dut
    source = build_dir / "issuer.v"
    emit(dut, "issuer", source)
    config = {"ps": list(dut.ps), "index_bits": dut.index_bits, "act_bits": dut.act_bits,
              "w_addr_bits": dut.w_addr_bits, "k_addr_bits": dut.k_addr_bits,
              "acc_addr_bits": dut.acc_addr_bits, "max_slots": dut.max_slots,
              "sel_bits": dut.sel_bits, "index_width": dut.index_width, "latency": dut.latency,
              "layers": layers}
    return runner.run(sim, sources=[source], toplevel="issuer",
                      test_module="permdeal.verif.tb_issuer", build_dir=build_dir,
                      config=config, **kwargs)


def _check_result(result):
    assert result.passed and result.tests == ("test_layers",)
    rep = result.report["test_layers"]
    assert rep["mismatches"] == 0, rep
    assert rep["checked"] == rep["ops"] > rep["pairs"] > 0, rep
    assert rep["accepted"] == rep["pairs"], rep
    assert rep["runs"] >= 2 and rep["ready_checks"] >= rep["ops"], rep


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_issuer_matches_spec(sim, name, tmp_path):
    _check_result(_simulate(sim, CONFIGS[name], tmp_path))


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CONFIGS)
def test_issuer_matches_spec_icarus(name, tmp_path):
    _check_result(_simulate("icarus", ICARUS_CONFIGS[name], tmp_path))


@pytest.mark.sim
def test_bench_catches_a_wrong_reciprocal(tmp_path):
    # M one too small (past the constructor's check): J = j div p comes out one short at j = p.
    dut = Issuer((3, 8), 10, 8, 12, 9, 5, 4)
    dut._recips = tuple((m - 1, s) for m, s in dut._recips)
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", None, tmp_path, layers=6, dut=dut, seed=7)
    assert e.value.result.failures.keys() == {"test_layers"}
    msg = str(e.value)
    assert re.search(r"pair \d+ op t=\d+: expected \(w_addr, k_addr, c, sel, x, acc_addr\)",
                     msg), msg
    assert e.value.result.report["test_layers"]["mismatches"] > 0


def test_reciprocal_identity_exhaustive():
    for n in range(1, 13):
        js = range(1 << n)
        for p in range(1, 41):
            m, s = reciprocal(p, n)
            assert s == n + (p - 1).bit_length()
            assert all((j * m) >> s == j // p for j in js), (n, p)
            check_reciprocal(p, n, m, s)


def test_reciprocal_check_rejects_wrong_constants():
    for n, p in ((10, 3), (10, 8), (4, 7), (12, 40)):
        m, s = reciprocal(p, n)
        with pytest.raises(PermdealError) as e:
            check_reciprocal(p, n, m - 1, s)
        assert str(e.value) == (f"issuer reciprocal of p = {p} for {n}-bit indices is wrong: "
                                f"M = {m - 1}, s = {s}")


def test_constructor_checks_the_reciprocal(monkeypatch):
    monkeypatch.setattr(issuer_mod, "reciprocal", lambda p, n: (1, n + 1))
    with pytest.raises(PermdealError) as e:
        Issuer((3,), 6, 8, 8, 8, 4, 2)
    assert str(e.value) == "issuer reciprocal of p = 3 for 6-bit indices is wrong: M = 1, s = 7"


def test_issuer_properties():
    dut = Issuer((3, 8), 10, 8, 12, 9, 5, 4)
    assert (dut.ps, dut.index_bits, dut.act_bits, dut.w_addr_bits, dut.k_addr_bits,
            dut.acc_addr_bits, dut.max_slots, dut.latency) == ((3, 8), 10, 8, 12, 9, 5, 4, 3)
    assert (dut.index_width, dut.sel_bits, dut.slot_bits) == (3, 1, 3)
    assert dut.reciprocals == ((1366, 12), (1024, 13))
    assert set(dut.signature.members) == {"sel", "slots", "w_base", "k_base", "w_step", "k_step",
                                         "i", "op", "busy"}
    assert dut.op.shape().size == 1 + 12 + 9 + 3 + 1 + 8 + 5
    lane = Lane((3, 8), 8, 8, 16, 4096, 512, 32, weights=[0] * 4096, ks=[0] * 512)
    assert list(dut.op_layout) == list(lane.op_layout)
    assert dut.pair_layout == dut.i.p.shape()
    from permdeal.hdl.nz_detect import NonZeroDetector
    assert list(dut.pair_layout) == list(NonZeroDetector(4, 8, 10).output_layout)
    one = Issuer(1, 3, 2, 4, 3, 1, 2)
    assert (one.ps, one.index_width, one.sel_bits, one.slot_bits) == ((1,), 1, 0, 2)
    assert set(one.signature.members) == {"slots", "w_base", "k_base", "w_step", "k_step", "i",
                                         "op", "busy"}
    lane1 = Lane(1, 2, 2, 4, 16, 8, 2, weights=[0] * 16, ks=[0] * 8)
    assert list(one.op_layout) == list(lane1.op_layout)
    for attr in ("ps", "index_bits", "act_bits", "w_addr_bits", "k_addr_bits", "acc_addr_bits",
                 "max_slots", "latency", "reciprocals"):
        with pytest.raises(AttributeError):
            setattr(dut, attr, 2)


@pytest.mark.parametrize("args, message", [
    (((3, 3), 10, 8, 12, 9, 5, 4), "block sizes must be distinct, not (3, 3) (repeated: 3)"),
    ((0, 10, 8, 12, 9, 5, 4), "block size p must be an integer >= 1, not 0"),
    (((3, 8), 0, 8, 12, 9, 5, 4), "issuer index_bits must be an integer >= 1, not 0"),
    (((3, 8), 10.0, 8, 12, 9, 5, 4), "issuer index_bits must be an integer >= 1, not 10.0"),
    (((3, 8), 10, 1, 12, 9, 5, 4), "issuer act_bits must be an integer in [2, 32], not 1"),
    (((3, 8), 10, 33, 12, 9, 5, 4), "issuer act_bits must be an integer in [2, 32], not 33"),
    (((3, 8), 10, 8, 0, 9, 5, 4), "issuer w_addr_bits must be an integer >= 1, not 0"),
    (((3, 8), 10, 8, 12, True, 5, 4), "issuer k_addr_bits must be an integer >= 1, not True"),
    (((3, 8), 10, 8, 12, 9, 5, 0), "issuer max_slots must be an integer >= 1, not 0"),
    (((3, 8), 10, 8, 12, 9, 4, 4), "issuer acc_addr_bits must be an integer >= 5, not 4"),
    (((3, 8), 10, 8, 12, 9, "5", 4), "issuer acc_addr_bits must be an integer >= 5, not '5'"),
    ((1, 3, 2, 4, 3, 0, 1), "issuer acc_addr_bits must be an integer >= 1, not 0"),
])
def test_issuer_rejects_bad_parameters(args, message):
    with pytest.raises(PermdealError) as e:
        Issuer(*args)
    assert str(e.value) == message


def test_emit_is_deterministic(tmp_path):
    first = emit(Issuer((3, 8), 10, 8, 12, 9, 5, 4), "issuer", tmp_path / "a.v")
    second = emit(Issuer((3, 8), 10, 8, 12, 9, 5, 4), "issuer", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module issuer(" in first
    assert emit(Issuer((3, 7), 10, 8, 12, 9, 5, 4), "issuer") != first
    assert emit(Issuer((3, 8), 10, 8, 12, 9, 5, 3), "issuer") != first


def test_amaranth_simulation_back_to_back():
    """Amaranth's own simulator, no build: two pairs back to back with B = 3, p = 3."""
    from amaranth.sim import Simulator

    dut = Issuer((3, 8), 10, 8, 12, 9, 5, 4)
    seen = []

    async def bench(ctx):
        ctx.set(dut.sel, 0)
        ctx.set(dut.slots, 3)
        ctx.set(dut.w_base, 100)
        ctx.set(dut.k_base, 7)
        ctx.set(dut.w_step, 40)
        ctx.set(dut.k_step, 5)
        pairs = [(10, -5), (11, 3)]
        for _ in range(11):
            if pairs:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.p, {"index": pairs[0][0], "value": pairs[0][1], "last": 0})
            else:
                ctx.set(dut.i.valid, 0)
            ready = ctx.get(dut.i.ready)
            op = ctx.get(dut.op)
            seen.append((ready, (op.valid, op.w_addr, op.k_addr, op.c, op.sel, op.x, op.acc_addr)
                         if op.valid else None))
            if ready and pairs:
                pairs.pop(0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # j = 10: J = 3, c = 1 -> w 100 + 10 + 40t, k 7 + 3 + 5t; j = 11: J = 3, c = 2 -> w 111 + 40t.
    # Pairs are taken 3 cycles apart (cycles 0 and 3), their ops come 3 cycles after each.
    assert seen == [
        (1, None), (0, None), (0, None),
        (1, (1, 110, 10, 1, 0, -5, 0)), (0, (1, 150, 15, 1, 0, -5, 3)),
        (0, (1, 190, 20, 1, 0, -5, 6)),
        (1, (1, 111, 10, 2, 0, 3, 0)), (1, (1, 151, 15, 2, 0, 3, 3)),
        (1, (1, 191, 20, 2, 0, 3, 6)),
        (1, None), (1, None)]
