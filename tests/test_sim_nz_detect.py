# amaranth: UnusedElaboratable=no
"""The non-zero detector on Verilator and Icarus against its spec and the cycle model; generator."""

import pytest
from amaranth.hdl import Const

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.hdl.nz_detect import NonZeroDetector
from permdeal.verif import runner

CONFIGS = {
    "w8-a16": (8, 16, 10),  # the reference scan width, 16-bit activations
    "w5-a8": (5, 8, 7),     # a width that is not a power of two, narrow codes
    "w1-a16": (1, 16, 4),   # one word per window: no encoder at all, a small index range
}
TESTS = {"test_random", "test_timing", "test_broadcast"}
WINDOWS = 600


def _config(dut, **extra):
    return {"width": dut.width, "act_bits": dut.act_bits, "index_bits": dut.index_bits,
            "latency": dut.latency, **extra}


@pytest.mark.sim
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", runner.SIMULATORS)
def test_nz_detect_matches_spec_and_cycle_model(sim, name, tmp_path):
    dut = NonZeroDetector(*CONFIGS[name])
    source = tmp_path / "nz_detect.v"
    emit(dut, "nz_detect", source)
    result = runner.run(
        sim, sources=[source], toplevel="nz_detect", test_module="permdeal.verif.tb_nz_detect",
        build_dir=tmp_path, config=_config(dut, windows=WINDOWS, broadcast=3))
    assert result.passed and set(result.tests) == TESTS
    for test in TESTS:
        rep = result.report[test]
        assert rep["checked"] == rep["pairs"] > 0 and rep["mismatches"] == 0, (test, rep)
        assert rep["accepted"] == rep["windows"] > 0, (test, rep)
    assert result.report["test_random"]["windows"] >= WINDOWS
    for test, hold in (("test_timing", 1), ("test_broadcast", 3)):
        rep = result.report[test]
        assert rep["hold"] == hold and rep["span_cycles"] == rep["expected_span"], (test, rep)
        assert rep["layer_issue"] == rep["golden_issue"] and len(rep["layers"]) >= 3, (test, rep)


@pytest.mark.sim
def test_bench_catches_emitted_dead_words(tmp_path, monkeypatch):
    # a detector that ignores the mask: every word of every window handed on
    monkeypatch.setattr(NonZeroDetector, "_live",
                        lambda self, window: Const((1 << self.width) - 1, self.width))
    dut = NonZeroDetector(5, 8, 7)
    emit(dut, "nz_detect", tmp_path / "nz_detect.v")
    with pytest.raises(runner.SimulationFailed) as e:
        runner.run("icarus", sources=[tmp_path / "nz_detect.v"], toplevel="nz_detect",
                   test_module="permdeal.verif.tb_nz_detect", build_dir=tmp_path,
                   config=_config(dut, windows=60), testcase="test_random")
    assert e.value.result.failures.keys() == {"test_random"}
    assert "test_random: " in str(e.value) and "window " in str(e.value)
    assert ", observed (index " in str(e.value)


def test_emit_is_deterministic(tmp_path):
    first = emit(NonZeroDetector(8, 16, 10), "nz_detect", tmp_path / "a.v")
    second = emit(NonZeroDetector(8, 16, 10), "nz_detect", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    assert "src =" not in first and "module nz_detect(" in first
    assert emit(NonZeroDetector(8, 16, 11), "nz_detect") != first
    assert "[-1:0]" not in emit(NonZeroDetector(1, 2, 1), "nz_detect")  # no empty position


def test_nz_detect_derived_constants():
    dut = NonZeroDetector(8, 16, 10)
    assert (dut.width, dut.act_bits, dut.index_bits, dut.latency, dut.pos_bits) == \
        (8, 16, 10, 1, 3)
    assert dut.input_layout.size == 10 + 8 + 8 * 16
    assert [(n, f.offset, f.width) for n, f in dut.input_layout] == \
        [("base", 0, 10), ("mask", 10, 8), ("data", 18, 128)]
    assert [(n, f.offset, f.width) for n, f in dut.output_layout] == \
        [("index", 0, 10), ("value", 10, 16), ("last", 26, 1)]
    assert dut.output_layout["value"].shape.signed
    assert [NonZeroDetector(w, 8, 4).pos_bits for w in (1, 2, 3, 5, 8, 9)] == [0, 1, 2, 3, 3, 4]
    with pytest.raises(AttributeError):
        dut.latency = 2


@pytest.mark.parametrize("args, message", [
    ((0, 16, 10), "non-zero detector width must be an integer >= 1, not 0"),
    ((8.0, 16, 10), "non-zero detector width must be an integer >= 1, not 8.0"),
    ((8, 1, 10), "non-zero detector act_bits must be an integer in [2, 32], not 1"),
    ((8, 33, 10), "non-zero detector act_bits must be an integer in [2, 32], not 33"),
    ((8, True, 10), "non-zero detector act_bits must be an integer in [2, 32], not True"),
    ((8, "16", 10), "non-zero detector act_bits must be an integer in [2, 32], not '16'"),
    ((8, 16, 0), "non-zero detector index_bits must be an integer >= 1, not 0"),
    ((8, 16, None), "non-zero detector index_bits must be an integer >= 1, not None"),
])
def test_nz_detect_rejects_bad_parameters(args, message):
    with pytest.raises(PermdealError) as e:
        NonZeroDetector(*args)
    assert str(e.value) == message


def test_nz_detect_accepts_the_extremes():
    for args in ((1, 2, 1), (1, 32, 1), (64, 32, 16)):
        dut = NonZeroDetector(*args)
        assert (dut.width, dut.act_bits, dut.index_bits) == args


@pytest.mark.sim
def test_bench_checks_the_cycles(tmp_path):
    dut = NonZeroDetector(5, 8, 7)
    emit(dut, "nz_detect", tmp_path / "nz_detect.v")
    with pytest.raises(runner.SimulationFailed) as e:  # a detector one cycle slower than stated
        runner.run("icarus", sources=[tmp_path / "nz_detect.v"], toplevel="nz_detect",
                   test_module="permdeal.verif.tb_nz_detect", build_dir=tmp_path,
                   config={**_config(dut), "latency": 2}, testcase="test_timing")
    assert e.value.result.failures.keys() == {"test_timing"}
    assert "handed off in cycle " in str(e.value)
