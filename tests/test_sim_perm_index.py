# amaranth: UnusedElaboratable=no
"""The PE's permutation-index logic on Verilator and Icarus against the golden model, and its
generator: ``r = (c - k) mod p`` for any ``p >= 1``, with no divider in the Verilog."""

import re

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.hdl.perm_index import PermIndex
from permdeal.verif import runner

#: name -> (ps, registered), on both simulators: a selectable mix of a non-power of two, a narrower
#: power of two and p = 1; a full-width power of two (the wrap), combinational; a lone non-power of
#: two (compare-and-correct). Each Verilator build costs ~10-20 s of CPU, so there are only three.
CONFIGS = {
    "p7-4-1-sel": ((7, 4, 1), True),
    "p16-comb": ((16,), False),
    "p5": ((5,), True),
}
#: More configurations on Icarus only, whose builds take a fraction of Verilator's: a lone p = 1
#: (1-bit ports, r = 0), p = 8 (the wrap, registered) and a combinational mix.
ICARUS_CONFIGS = {
    "p1": ((1,), True),
    "p8": ((8,), True),
    "p3-12-2-sel-comb": ((3, 12, 2), False),
}


def _simulate(sim, ps, registered, build_dir, **kwargs):
    dut = PermIndex(ps, registered=registered)
    source = build_dir / "perm_index.v"
    emit(dut, "perm_index", source)
    return runner.run(
        sim, sources=[source], toplevel="perm_index", test_module="permdeal.verif.tb_perm_index",
        build_dir=build_dir, config={"ps": list(dut.ps), "latency": dut.latency}, **kwargs)


def _check_result(result, ps):
    assert result.passed and result.tests == ("test_exhaustive",)
    rep = result.report["test_exhaustive"]
    assert rep["checked"] == rep["sent"] == sum(p * p for p in ps), rep
    assert rep["mismatches"] == 0, rep


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_perm_index_matches_golden(sim, name, tmp_path):
    ps, registered = CONFIGS[name]
    _check_result(_simulate(sim, ps, registered, tmp_path), ps)


@pytest.mark.sim
@pytest.mark.parametrize("name", ICARUS_CONFIGS)
def test_perm_index_matches_golden_icarus(name, tmp_path):
    ps, registered = ICARUS_CONFIGS[name]
    _check_result(_simulate("icarus", ps, registered, tmp_path), ps)


@pytest.mark.sim
def test_bench_catches_a_missing_correction(tmp_path, monkeypatch):
    # Treat every p as a power of two: a non-power of two then wraps instead of adding p back.
    monkeypatch.setattr(PermIndex, "_terms",
                        lambda self, p: (0, (1 << self.width) - 1) if p > 1 else (0, 0))
    with pytest.raises(runner.SimulationFailed) as e:
        _simulate("icarus", (5,), True, tmp_path, seed=7)
    assert e.value.result.failures.keys() == {"test_exhaustive"}
    msg = str(e.value)
    assert re.search(r"sel=0 p=5 c=\d k=\d: expected r=\d, observed r=\d", msg), msg
    assert e.value.result.report["test_exhaustive"]["mismatches"] == 10  # the 10 pairs c < k


def test_perm_index_properties():
    dut = PermIndex((7, 4, 1))
    assert (dut.ps, dut.width, dut.latency, dut.sel_bits, dut.registered) == ((7, 4, 1), 3, 1, 2,
                                                                              True)
    assert set(dut.signature.members) == {"c", "k", "sel", "r"}
    assert (dut.c.shape().width, dut.k.shape().width, dut.r.shape().width) == (3, 3, 3)
    assert dut.sel.shape().width == 2
    comb = PermIndex(16, registered=False)
    assert (comb.ps, comb.width, comb.latency, comb.sel_bits) == ((16,), 4, 0, 0)
    assert set(comb.signature.members) == {"c", "k", "r"}
    for ps, width in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), ((1, 2), 1),
                      ((17, 3), 5)]:
        assert PermIndex(ps).width == width, ps
    assert PermIndex((2, 3)).sel_bits == 1 and PermIndex(tuple(range(1, 6))).sel_bits == 3
    with pytest.raises(AttributeError):
        dut.latency = 0
    with pytest.raises(AttributeError):
        dut.width = 8


@pytest.mark.parametrize("ps, registered, message", [
    (0, True, "block size p must be an integer >= 1, not 0"),
    ((4, -3), True, "block size p must be an integer >= 1, not -3"),
    (2.0, True, "block size p must be an integer >= 1, not 2.0"),
    ("4", True, "block size p must be an integer >= 1, not '4'"),
    ((True,), True, "block size p must be an integer >= 1, not True"),
    ((), True, "permutation index needs at least one block size p"),
    ([4, 3, 4, 3, 5], True, "block sizes must be distinct, not (4, 3, 4, 3, 5) (repeated: 3, 4)"),
    (4, 1, "permutation index registered must be True or False, not 1"),
])
def test_perm_index_rejects_bad_parameters(ps, registered, message):
    with pytest.raises(PermdealError) as e:
        PermIndex(ps, registered=registered)
    assert str(e.value) == message


def test_emit_is_deterministic(tmp_path):
    first = emit(PermIndex((7, 4, 1)), "perm_index", tmp_path / "a.v")
    second = emit(PermIndex([7, 4, 1]), "perm_index", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module perm_index(" in first
    assert emit(PermIndex((7, 4, 1), registered=False), "perm_index") != first
    assert emit(PermIndex((4, 7, 1)), "perm_index") != first


def _operators(verilog):
    """The Verilog text without comments, attributes and escaped identifiers."""
    text = re.sub(r"/\*.*?\*/", " ", verilog, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.S)
    return re.sub(r"\\\S+", " ", text)


class _Modulo(wiring.Component):
    """A divider, to show that the check below would see one."""

    a: In(4)
    r: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.r.eq(self.a % 5)
        return m


@pytest.mark.parametrize("ps, registered", [(3, False), (5, True), (7, False), (12, False),
                                            ((7, 4, 1), True), ((3, 12, 2), False),
                                            ((1, 2, 3, 5, 6, 9), False)])
def test_no_divider(ps, registered):
    text = _operators(emit(PermIndex(ps, registered=registered), "perm_index"))
    assert "-" in text and "+" in text  # the subtractor and the correction
    assert not re.search(r"[/%]", text), text


def test_divider_check_can_fail():
    assert re.search(r"[/%]", _operators(emit(_Modulo(), "modulo")))


def test_power_of_two_is_a_wrap():
    for ps in (1, 2, 16, (1, 2, 8)):
        text = _operators(emit(PermIndex(ps, registered=False), "perm_index"))
        assert not re.search(r"[/%+]", text), text  # no correction adder, only the subtraction


def _comb_table(dut):
    """``{(sel, c, k): r}`` over every input value, from Amaranth's simulator (no build)."""
    from amaranth.sim import Simulator

    table = {}
    sels = range(1 << dut.sel_bits) if dut.sel_bits else [None]

    async def bench(ctx):
        for sel in sels:
            if sel is not None:
                ctx.set(dut.sel, sel)
            for c in range(1 << dut.width):
                for k in range(1 << dut.width):
                    ctx.set(dut.c, c)
                    ctx.set(dut.k, k)
                    table[sel, c, k] = ctx.get(dut.r)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return table


def test_documented_behaviour_beyond_legal_inputs():
    # sel out of range gives 0; a power of two wraps whatever c and k are; p = 1 gives 0.
    dut = PermIndex((5, 4, 1), registered=False)
    table = _comb_table(dut)
    for (sel, c, k), r in table.items():
        if sel == 0 and c < 5 and k < 5:
            assert r == (c - k) % 5, (sel, c, k, r)
        elif sel == 1:
            assert r == (c - k) % 4, (sel, c, k, r)
        elif sel in (2, 3):
            assert r == 0, (sel, c, k, r)
    for p in (1, 2, 8):
        table = _comb_table(PermIndex(p, registered=False))
        assert all(r == (c - k) % p for (_, c, k), r in table.items()), p
