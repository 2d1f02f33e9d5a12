# amaranth: UnusedElaboratable=no
"""`permdeal gen`, `check`, `cycles` and `sim` of the SmartDeal engine (``--arch engine``, the
default for a SmartDeal model), and their bad input."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from permdeal.api.designs import design_method, generate_design
from permdeal.cli import main
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden.smartdeal_model import SmartDealModel

from test_cli_smartdeal import pruned_model
from test_smartdeal_model import reference_forward  # an independent reference


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A float model, its SmartDeal compression (Ce rows pruned in groups of 4 outputs, so that
    the tiles of a 2 PE x 2 lanes engine skip chunks), inputs and an engine design, via the
    CLI."""
    tmp = tmp_path_factory.mktemp("sde")
    rng = pruned_model(tmp, 7, 10, 0.5, 4)
    x = rng.integers(-512, 512, (6, 13))
    x[rng.random(x.shape) < 0.4] = 0
    x[-1] = 0                                           # an empty vector
    np.save(tmp / "x.npy", x)
    assert main(["gen", "--model", str(tmp / "sd"), "--pes", "2", "--lanes", "2", "--name",
                 "sde", "-o", str(tmp / "d")]) == 0
    return tmp


def test_gen_writes_an_engine_design(folders, capsys):
    d = folders / "d"
    man = json.loads((d / "manifest.json").read_text())
    assert man["kind"] == "permdeal-smartdeal-engine-design" and man["top"] == "sde"
    c = man["config"]
    assert (c["pes"], c["lanes_per_pe"], c["lanes"], c["batch"]) == (2, 2, 4, 1)
    assert [s["file"] for s in man["sources"]] == ["rtl/sde.v"]
    for s in man["sources"]:
        assert hashlib.sha256((d / s["file"]).read_bytes()).hexdigest() == s["sha256"]
    # the model's own images, which the folder carries for the golden outputs
    for i in range(2):
        for part in ("ce", "b", "bias"):
            assert (d / "rom" / f"L{i}_{part}.hex").read_bytes() == \
                (folders / "sd" / "rom" / f"L{i}_{part}.hex").read_bytes()
    model = SmartDealModel.read(folders / "sd")
    runs = [ec.tile_runs(l, 4) for l in model.layers]
    assert [l["tile_runs"] for l in man["layers"]] == [[[list(r) for r in t] for t in p]
                                                       for p in runs]
    assert any(t != [(0, 5)] for t in runs[0])           # some tile skips chunks
    code, out, err = run(["check", d], capsys)
    assert code == 0, err
    assert "SmartDeal engine design sde (1 Verilog file(s), 2 PE x 2 lanes = 4 MAC lanes, " \
           "batch 1)" in out and " OK " in out
    assert "chunks walked" in out and "shift-add" not in out      # the engine's table
    # the same settings give the same bytes; --batch 1 is the default
    code, out, err = run(["gen", "--model", folders / "sd", "--pes", "2", "--lanes", "2",
                          "--batch", "1", "--name", "sde", "-o", folders / "d2"], capsys)
    assert code == 0, err
    assert "2 PE x 2 lanes = 4 MAC lanes (one rebuild engine each), batch 1" in out
    assert (folders / "d2" / "rtl" / "sde.v").read_bytes() == (d / "rtl" / "sde.v").read_bytes()
    assert design_method(d).name == "smartdeal"


@pytest.mark.sim
def test_sim_matches_golden_and_the_cycle_model(folders, capsys):
    """On Icarus, as the other design folders' CLI tests (the engine's benches run both
    simulators, tests/test_sim_smartdeal_engine.py; the demo runs this flow on Verilator)."""
    out_dir = folders / "s"
    code, out, err = run(["sim", "--design", folders / "d", "--inputs", folders / "x.npy",
                          "--sim", "icarus", "--seed", "3", "-o", out_dir], capsys)
    assert code == 0, err
    x = np.load(folders / "x.npy")
    y = np.load(out_dir / "outputs.npy")
    np.testing.assert_array_equal(y, reference_forward(folders / "sd", x))
    rep = json.loads((out_dir / "report.json").read_text())
    model = SmartDealModel.read(folders / "sd")
    want = [c.total for c in ec.model_cycles(model, x, 4)]
    assert len(set(want)) > 2                    # the count follows the inputs
    assert rep["cycles"] == rep["model_cycles"] == want and rep["cycles_match_model"]
    assert rep["golden_match"] and rep["inputs_matching"] == 6 and rep["lanes"] == 4
    assert [l["name"] for l in rep["layers"]] == ["fc1", "fc2"]
    assert "6 of 6 input vectors match the golden model" in out
    assert f"RTL {np.mean(want):.1f}, cycle model {np.mean(want):.1f} (equal)" in out


@pytest.mark.sim
def test_batch_gen_sim_cycles(folders, capsys):
    """--batch 4 on Verilator: 6 inputs are one batch of 4 and one padded with 2 zero vectors;
    the outputs are the 6 vectors' (the padding dropped), the cycles per batch the model's, and
    `cycles` prints the same per-input figure."""
    d = folders / "db"
    code, out, err = run(["gen", "--model", folders / "sd", "--pes", "2", "--lanes", "2",
                          "--batch", "4", "-o", d], capsys)
    assert code == 0, err
    assert json.loads((d / "manifest.json").read_text())["config"]["batch"] == 4
    x = np.load(folders / "x.npy")
    code, out, err = run(["sim", "--design", d, "--inputs", folders / "x.npy", "--sim",
                          "verilator", "--seed", "4", "-o", folders / "sb"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(folders / "sb" / "outputs.npy"),
                                  reference_forward(folders / "sd", x))
    rep = json.loads((folders / "sb" / "report.json").read_text())
    model = SmartDealModel.read(folders / "sd")
    padded = np.concatenate([x, np.zeros((2, x.shape[1]), np.int64)])
    want = [c.total for c in ec.model_cycles(model, padded, 4, batch=4)]
    assert rep["cycles"] == rep["model_cycles"] == want and rep["cycles_match_model"]
    assert rep["golden_match"] and rep["inputs_matching"] == rep["inputs"] == 6
    assert rep["batch"] == 4 and rep["padding"] == 2
    assert f"cycles per batch of 4 (2 PE x 2 lanes = 4 MAC lanes): RTL {np.mean(want):.1f}" in out
    assert "2 zero vector(s) padded the last batch" in out
    code, out, err = run(["cycles", folders / "sd", "--pes", "2", "--lanes", "2", "--batch",
                          "4", "--inputs", folders / "x.npy"], capsys)
    assert code == 0, err
    assert (f"6 input vectors in 2 batch(es) of 4 (2 zero vector(s) padding the last): "
            f"{sum(want)} cycles") in out
    assert f"per input vector: {np.mean(want) / 4:.1f} cycles" in out


def test_cycles_of_the_engine(folders, capsys):
    code, out, err = run(["cycles", folders / "sd", "--pes", "2", "--lanes", "2", "--inputs",
                          folders / "x.npy"], capsys)
    assert code == 0, err
    model = SmartDealModel.read(folders / "sd")
    runs = ec.model_cycles(model, np.load(folders / "x.npy"), 4)
    totals = [r.total for r in runs]
    assert "SmartDeal engine, 2 PE x 2 lanes = 4 MAC lanes, batch 1" in out
    assert f"per input vector: {np.mean(totals):.1f} cycles ({min(totals)} to {max(totals)})" \
        in out
    assert f"6 input vector(s), one at a time: {sum(totals)} cycles" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in ("fc1", "fc2")}
    for i, l in enumerate(model.layers):
        lc = [r.layers[i] for r in runs]
        assert rows[l.name][1:3] == [str(l.shape[0]), str(lc[0].tiles)]
        assert rows[l.name][5] == f"{np.mean([c.compute for c in lc]):.1f}"
    # --pes defaults to 1: the same 4 lanes
    code, out1, _ = run(["cycles", folders / "sd", "--lanes", "4", "--inputs",
                         folders / "x.npy"], capsys)
    assert code == 0 and out1.splitlines()[1:] == out.splitlines()[1:]


@pytest.mark.parametrize("argv, message", [
    ([], "--lanes is required for the SmartDeal engine"),
    (["--lanes", "2", "--batch", "65"], "--batch must be an integer in [1, 64], not 65"),
    (["--pes", "16", "--lanes", "17"], "--pes 16 x --lanes 17 = 272 MAC lanes; the SmartDeal "
                                       "engine has 1 to 256"),
    (["--lanes", "2", "--scan-width", "4"], "--scan-width does not apply to a SmartDeal model "
                                            "(the engine keeps a list of the non-zero inputs"),
    (["--lanes", "2", "--groups", "2"], "--groups does not apply to a SmartDeal model"),
    (["--lanes", "2", "--multiplier", "booth"], "--multiplier does not apply to a SmartDeal "
                                                "model"),
    (["--lanes", "2", "--name", "9x"], "engine module name must be a Verilog identifier"),
])
def test_gen_bad_input(folders, tmp_path, capsys, argv, message):
    code, _, err = run(["gen", "--model", folders / "sd", *argv, "-o", tmp_path / "g"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "g").exists()


def test_arch_in_a_config_file(folders, tmp_path, capsys):
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'model = "{folders / "sd"}"\nlanes = 2\narch = "wide"\n')
    code, _, err = run(["gen", "--config", cfg, "-o", tmp_path / "g"], capsys)
    assert code == 2 and "--arch: expected one of engine, units, got 'wide'" in err, err
    with pytest.raises(SystemExit):
        main(["gen", "--model", str(folders / "sd"), "--arch", "wide", "-o", str(tmp_path / "g")])
    assert "argument --arch: invalid choice: 'wide'" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_engine_flags_without_a_smartdeal_model(folders, tmp_path, capsys):
    for argv in (["--shape", "8x8", "--p", "2"], ["--model", folders / "pd"]):
        if argv[1] == folders / "pd" and not (folders / "pd").exists():
            assert main(["compress", str(folders / "m.npz"), "--p", "3", "-o",
                         str(folders / "pd")]) == 0
        for flag, value in (("--arch", "engine"), ("--batch", "1")):
            code, _, err = run(["gen", "--pes", "1", "--lanes", "1", *argv, flag, value, "-o",
                                tmp_path / "g"], capsys)
            assert code == 2 and f"{flag} applies to a SmartDeal" in err, err
    assert not (tmp_path / "g").exists()
    for argv, message in ((["--pes", "1", "--lanes", "1", "--arch", "units"],
                           "--arch applies to a SmartDeal --model"),
                          (["--pes", "1", "--lanes", "1", "--model", folders / "pd", "--batch",
                            "1"], "--batch does not apply to verify"),
                          (["--random-configs", "2", "--arch", "engine"],
                           "--arch does not apply to --random-configs")):
        code, _, err = run(["verify", *argv, "-o", tmp_path / "v"], capsys)
        assert code == 2 and message in err, err
    assert not (tmp_path / "v").exists()


def test_cycles_and_sim_bad_input(folders, tmp_path, capsys):
    for argv, message in (
            (["--lanes", "2"], "--inputs is required for the SmartDeal engine"),
            (["--lanes", "2", "--inputs", folders / "x.npy", "--batch", "65"],
             "--batch must be an integer in [1, 64], not 65"),
            (["--inputs", folders / "x.npy"], "--lanes is required for the SmartDeal engine")):
        code, _, err = run(["cycles", folders / "sd", *argv], capsys)
        assert code == 2 and message in err, err
    code, _, err = run(["sim", "--design", folders / "d", "--inputs", folders / "x.npy",
                        "--images", folders / "sd" / "rom", "-o", tmp_path / "s"], capsys)
    assert code == 2 and "has its codes in its Verilog" in err and "--images" in err, err
    assert not (tmp_path / "s").exists()


def test_check_refuses_other_images(folders, tmp_path, capsys):
    """Images rewritten with their own manifest consistent are still not the Verilog's codes."""
    d = tmp_path / "d"
    shutil.copytree(folders / "d", d)
    ce = d / "rom" / "L1_ce.hex"
    words = ce.read_text().split()
    words[0] = "00" if words[0] != "00" else "10"
    ce.write_text("".join(f"{w}\n" for w in words))
    man = json.loads((d / "rom" / "manifest.json").read_text())
    for img in man["images"]:
        if img["file"] == "L1_ce.hex":
            img["sha256"] = hashlib.sha256(ce.read_bytes()).hexdigest()
    (d / "rom" / "manifest.json").write_text(json.dumps(man))
    code, _, err = run(["check", d], capsys)
    assert code == 2 and f"{d / 'rom' / 'manifest.json'}: sha256 does not match" in err, err


@pytest.mark.synth
@pytest.mark.sim
def test_power_of_an_engine_design_with_a_batch(folders, tmp_path, capsys):
    """``permdeal power`` on an engine design of batch 2 (``permdeal.methods.smartdeal_engine``):
    the RTL's outputs and cycles as the models say, cycles and MACs per inference those of a
    batch over 2; 5 inputs do not fill batches and are refused."""
    d = tmp_path / "d"
    assert run(["gen", "--model", folders / "sd", "--lanes", "3", "--batch", "2", "-o", d],
               capsys)[0] == 0
    x = np.load(folders / "x.npy")
    code, out, err = run(["power", "--design", d, "--inputs", folders / "x.npy", "--clock-mhz",
                          "100", "-o", tmp_path / "p"], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "p" / "report.json").read_text())
    runs = ec.model_cycles(SmartDealModel.read(folders / "sd"), x, 3, batch=2)
    assert rep["golden_match"] and rep["cycles_match_model"]
    assert rep["cycles_per_inference"] == pytest.approx(np.mean([r.total for r in runs]) / 2)
    assert rep["macs_per_inference"] == pytest.approx(np.mean([r.macs for r in runs]) / 2)
    assert rep["energy_per_inference_pj"] > 0 and rep["design"]["batch"] == 2
    np.save(tmp_path / "x5.npy", x[:5])
    code, _, err = run(["power", "--design", d, "--inputs", tmp_path / "x5.npy", "-o",
                        tmp_path / "p5"], capsys)
    assert code == 2 and "5 input vectors do not fill batches of 2" in err, err
    assert not (tmp_path / "p5").exists()


def test_api_generate_design_with_arch_and_batch(folders, tmp_path):
    g = generate_design({"model": str(folders / "sd"), "lanes": 3, "arch": "engine",
                         "batch": 1, "output": str(tmp_path / "g")})
    assert g.manifest["config"]["lanes"] == 3 and g.manifest["config"]["batch"] == 1
    g = generate_design({"model": str(folders / "sd"), "arch": "units",
                         "output": str(tmp_path / "u")})
    assert g.manifest["kind"] == "permdeal-smartdeal-design"
