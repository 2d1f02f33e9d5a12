# amaranth: UnusedElaboratable=no
"""``permdeal verify``: the regression as a user command, its results files and its failures."""

import json
import xml.etree.ElementTree as ET

import pytest

from permdeal.cli import main
from permdeal.hdl.accumulator import Accumulator


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.sim
def test_verify_passes_and_writes_results(tmp_path, capsys):
    code, out, err = run(["verify", "--pes", "2", "--lanes", "2", "--shape", "14x10,6x14",
                          "--p", "3,2", "--scan-width", "4", "--sim", "icarus", "--seed", "7",
                          "-j", "2", "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["passed"] and summary["seed"] == 7
    assert [(r["test"], r["sim"]) for r in summary["runs"]] == [
        ("perm_index", "icarus"), ("nz_detect", "icarus"), ("pe", "icarus"),
        ("engine_layer", "icarus"), ("engine_network", "icarus"), ("shift_add", "icarus"),
        ("smartdeal_layer", "icarus"), ("smartdeal_engine", "icarus")]
    assert all(r["passed"] and r["simulated_cycles"] > 0 for r in summary["runs"])
    suites = ET.parse(tmp_path / "r" / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == 8 and all(s.get("failures") == "0" for s in suites)
    assert {c.get("name") for c in suites[4].iter("testcase")} == {
        "test_streams[icarus]", "test_cycles[icarus]"}
    assert {c.get("name") for c in suites[5].iter("testcase")} == {
        "test_no_stall[icarus]", "test_stalls[icarus]"}
    # The shift-add bench rebuilt the first layer's weights (14 rows of 4 chunks) besides its
    # own stimulus, and its required coverage bins were hit.
    sa = summary["runs"][5]
    assert not sa["coverage"]["missing"] and sa["coverage"]["bins"]["shift-add most negative B"] > 0
    # The SmartDeal layer bench ran the first layer's 14 outputs, some Ce rows pruned (10 inputs:
    # 4 chunks, one pruned per pair of outputs), both tests on every output.
    sl = summary["runs"][6]
    assert {c.get("name") for c in suites[6].iter("testcase")} == {
        "test_streams[icarus]", "test_cycles[icarus]"}
    assert not sl["coverage"]["missing"] and sl["coverage"]["bins"]["smartdeal skipped Ce rows"] > 0
    # The SmartDeal engine bench: a random network on lanes drawn from the seed, every test on
    # every output, chunks skipped for whole tiles, back-pressure on both streams.
    se = summary["runs"][7]
    assert {c.get("name") for c in suites[7].iter("testcase")} == {
        "test_streams[icarus]", "test_cycles[icarus]", "test_reset[icarus]"}
    bins = se["coverage"]["bins"]
    assert not se["coverage"]["missing"] and bins["smartdeal engine chunks skipped for a tile"] > 0
    assert sum(v for k, v in bins.items() if k.endswith(" lane(s)")) == 1
    assert "8 of 8 passed" in out and "seed 7" in out


@pytest.mark.sim
def test_verify_reports_a_broken_design(tmp_path, capsys, monkeypatch):
    # Without accumulator forwarding, back-to-back ops on one accumulator (p = 1) lose products.
    monkeypatch.setattr(Accumulator, "_old_value", lambda self, read, *args: read)
    code, out, err = run(["verify", "--pes", "1", "--lanes", "1", "--shape", "1x6", "--p", "1",
                          "--sim", "icarus", "--tests", "engine_layer", "--seed", "3",
                          "-o", str(tmp_path / "r")], capsys)
    assert code == 1
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert not summary["passed"] and not summary["runs"][0]["passed"]
    assert any("mismatched" in p or "expected" in p for p in summary["runs"][0]["problems"])
    root = ET.parse(tmp_path / "r" / "junit.xml").getroot()
    assert root.find("testsuite").get("failures") == "1"
    assert root.find(".//failure") is not None
    assert ("reproduce: permdeal verify --pes 1 --lanes 1 --shape 1x6 --p 1 --seed 3 --tests "
            "engine_layer --sim icarus") in err


@pytest.mark.parametrize("argv, message", [
    (["--tests", "engine,pe_x"], "unknown test 'engine'"),
    (["--shape", "8x8", "--p", "0"], "--p"),
])
def test_verify_bad_input(tmp_path, capsys, argv, message):
    code, _, err = run(["verify", "--pes", "1", "--lanes", "1", *argv, "-o",
                        str(tmp_path / "r")], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.sim
def test_verify_random_configs(tmp_path, capsys):
    code, out, err = run(["verify", "--random-configs", "3", "--seed", "11", "-j", "2",
                          "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["configs"] == 3 and summary["sims"] == ["icarus"] and summary["passed"]
    for r in summary["runs"]:
        assert r["passed"] and r["test"] == "engine_network"
        assert r["command"].startswith("permdeal verify --pes ")
        assert f"--seed {r['seed']} --tests engine_network --sim icarus" in r["command"]
    assert "3 of 3 runs passed" in out
    # the same seed draws the same configurations
    code, _, _ = run(["verify", "--random-configs", "3", "--seed", "11", "-o",
                      str(tmp_path / "s")], capsys)
    again = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert [r["config"] for r in again["runs"]] == [r["config"] for r in summary["runs"]]


@pytest.mark.sim
def test_verify_fails_when_a_required_bin_is_missed(tmp_path, capsys, monkeypatch):
    # A stimulus without an empty input vector leaves the required bin 'input empty' empty.
    from permdeal.verif import verify as vf
    real = vf.engine_inputs
    monkeypatch.setattr(vf, "engine_inputs", lambda model, seed: real(model, seed)[1:2])
    code, out, err = run(["verify", "--pes", "1", "--lanes", "2", "--shape", "6x5", "--p", "2",
                          "--sim", "icarus", "--tests", "engine_layer", "--seed", "1",
                          "-o", str(tmp_path / "r")], capsys)
    assert code == 1
    run_ = json.loads((tmp_path / "r" / "summary.json").read_text())["runs"][0]
    assert "input empty" in run_["coverage"]["missing"]
    assert "coverage: required bin 'input empty' never hit" in run_["problems"]
    assert "input empty" in out and "engine_layer[icarus]" in out


def test_index_bins_cover_every_case():
    from permdeal.verif.coverage import index_bins, missing
    bins, required = index_bins((3, 1))
    assert bins == {"p=3 r=0": 3, "p=3 r=1": 3, "p=3 r=2": 3, "p=3 k=0": 3, "p=3 k=p-1": 3,
                    "p=1 r=0": 1, "p=1 k=0": 1, "p=1 k=p-1": 1}
    assert missing(bins, required) == []
    assert missing({"a": 0, "b": 2}, ["a", "b", "c"]) == ["a", "c"]


@pytest.mark.sim
def test_verify_smartdeal_engine_bench_catches_a_wrong_count(tmp_path, capsys, monkeypatch):
    # A cycle model one cycle longer per layer than the RTL: the bench must fail, naming it.
    from permdeal.golden import smartdeal_engine_cycles as ec
    longer = ec.LayerCycles.compute.fget
    monkeypatch.setattr(ec.LayerCycles, "compute", property(lambda self: longer(self) + 1))
    code, out, err = run(["verify", "--pes", "1", "--lanes", "1", "--shape", "6x5", "--p", "2",
                          "--sim", "icarus", "--tests", "smartdeal_engine", "--seed", "2",
                          "-o", str(tmp_path / "r")], capsys)
    assert code == 1, out + err
    problems = json.loads((tmp_path / "r" / "summary.json").read_text())["runs"][0]["problems"]
    assert any(p.startswith("test_cycles: RTL cycles") for p in problems), problems
    assert "reproduce: permdeal verify --pes 1 --lanes 1 --shape 6x5 --p 2 --seed 2 --tests " \
           "smartdeal_engine --sim icarus" in err
