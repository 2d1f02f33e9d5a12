"""SmartDeal compressed models: bit-exact golden inference, the folder, ROM images and the CLI."""

import hashlib
import json

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.cli import main
from permdeal.golden import smartdeal as sd
from permdeal.golden.compress import QuantSpec, compress_permdiag, compress_smartdeal
from permdeal.golden.formats import Fixed, LayerFormats, writeback
from permdeal.golden.model import FloatLayer, QuantModel
from permdeal.golden.smartdeal_model import SmartDealModel, read_rom


def random_layers(seed=0, sizes=(13, 9, 5), scale=0.3):
    rng = np.random.default_rng(seed)
    return [FloatLayer(f"fc{i + 1}", rng.standard_normal((o, n)) * scale,
                       rng.standard_normal(o) * 0.1)
            for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]


def make(tmp_path, **kw):
    layers = random_layers()
    cal = np.random.default_rng(1).standard_normal((64, 13))
    kw.setdefault("spec", QuantSpec(act=16, weight=16, bias=16))
    model = compress_smartdeal(layers, calibration=cal, **kw)
    folder = tmp_path / "sd"
    folder.mkdir()
    model.write_folder(folder, source={"file": "m.npz", "sha256": "0" * 64})
    return layers, model, folder


def reference_forward(folder, x):
    """Independent of the reader: the raw npz and manifest, rebuild_int, numpy, writeback."""
    man = json.loads((folder / "manifest.json").read_text())
    arrays = np.load(folder / "model.npz")
    acts = np.asarray(x, dtype=np.int64)
    for d in man["layers"]:
        h, f = d["smartdeal"], d["formats"]
        fx = {k: Fixed(f[k]["bits"], f[k]["frac"]) for k in ("act", "weight", "bias", "out")}
        codes = sd.SmartDealCodes(tuple(h["shape"]), h["S"], h["E"], h["rows_per_block"],
                                  h["e_min"], h["b_bits"], h["b_frac"],
                                  arrays[d["arrays"]["ce"]], arrays[d["arrays"]["b"]])
        W, _ = sd.rebuild_int(codes, fx["weight"])
        # The codes decode to the float rebuild, and the integer weights are its rounding.
        Wf = sd.from_blocks(sd.decode_ce(codes.codes, codes.e_min, codes.E) @ codes.b_float(),
                            codes.shape)
        np.testing.assert_array_equal(W, fx["weight"].quantize(Wf)[0])
        fmts = LayerFormats(fx["act"], fx["weight"], fx["bias"], fx["out"], d["in"])
        acts = writeback(acts @ W.T, arrays[d["arrays"]["bias"]], fmts, d["relu"])
    return acts


def rewrite_npz(folder, **changes):
    """Change arrays of model.npz and fix the manifest's sha256, so only the change is caught."""
    arrays = dict(np.load(folder / "model.npz"))
    for key, fn in changes.items():
        arrays[key.replace("__", ".")] = fn(arrays[key.replace("__", ".")].copy())
    np.savez(folder / "model.npz", **arrays)
    man_path = folder / "manifest.json"
    man = json.loads(man_path.read_text())
    man["files"]["model.npz"]["sha256"] = hashlib.sha256(
        (folder / "model.npz").read_bytes()).hexdigest()
    man_path.write_text(json.dumps(man))


def edit_json(path, fn):
    man = json.loads(path.read_text())
    fn(man)
    path.write_text(json.dumps(man))


# -- round trip --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"rows_per_block": 2, "S": 4, "E": 2, "b_bits": 6},
                                {"prune": 0.4, "prune_group": 3}])
def test_round_trip_is_bit_exact(tmp_path, kw):
    _, model, folder = make(tmp_path, **kw)
    x = np.random.default_rng(2).integers(-2000, 2000, size=(32, 13))
    want = model.forward(x)
    back = SmartDealModel.read(folder)
    np.testing.assert_array_equal(back.forward(x), want)
    np.testing.assert_array_equal(reference_forward(folder, x), want)
    _, from_rom = read_rom(folder / "rom")
    np.testing.assert_array_equal(from_rom.forward(x), want)
    for a, b in zip(model.layers, back.layers):
        assert a.header == b.header and a.fmts == b.fmts and a.saturated == b.saturated
        assert a.fmts.max_terms == a.shape[1]
    # One vector in gives the same as a batch row.
    np.testing.assert_array_equal(back.forward(x[3]), want[3])


def test_manifest_layout(tmp_path):
    _, model, folder = make(tmp_path)
    man = json.loads((folder / "manifest.json").read_text())
    assert man["kind"] == "permdeal-model" and man["format_version"] == 1
    assert man["method"] == "smartdeal"
    assert man["config"] == {"S": 3, "E": 3, "b_bits": 8, "rows_per_block": None,
                             "threshold": None, "prune": 0.0, "prune_group": 1}
    l0 = man["layers"][0]
    assert set(l0) == {"name", "in", "out", "relu", "formats", "saturated", "smartdeal", "arrays"}
    assert set(l0["smartdeal"]) == {"shape", "S", "rows_per_block", "blocks", "E", "code_bits",
                                    "e_min", "b_bits", "b_frac", "align_shift"}
    assert l0["smartdeal"]["code_bits"] == 5 and l0["smartdeal"]["blocks"] == 9
    assert man["files"]["model.npz"]["sha256"] == hashlib.sha256(
        (folder / "model.npz").read_bytes()).hexdigest()
    rom = json.loads((folder / "rom" / "manifest.json").read_text())
    assert rom["kind"] == "permdeal-smartdeal-rom" and rom["generator"].startswith("permdeal ")
    imgs = {i["file"]: i for i in rom["images"]}
    assert sorted(imgs) == sorted(f"L{i}_{p}.hex" for i in range(2) for p in ("ce", "b", "bias"))
    h = l0["smartdeal"]
    assert (imgs["L0_ce.hex"]["width"], imgs["L0_ce.hex"]["depth"]) == (5, 9 * 5 * 3)
    assert (imgs["L0_b.hex"]["width"], imgs["L0_b.hex"]["depth"]) == (8, 9 * 3 * 3)
    assert imgs["L0_bias.hex"]["width"] == l0["formats"]["bias"]["bits"] and h["rows_per_block"] == 5
    # The Ce image is the codes in C order, one 2-digit word a line; B in two's complement.
    ce = model.layers[0].codes.codes.reshape(-1)
    assert (folder / "rom" / "L0_ce.hex").read_text().split() == [f"{v:02x}" for v in ce]
    b = model.layers[0].codes.b_int.reshape(-1)
    assert (folder / "rom" / "L0_b.hex").read_text().split() == [f"{v & 0xff:02x}" for v in b]


def test_saturation_is_reported_and_checked(tmp_path):
    layers = random_layers(scale=3.0)
    tight = QuantSpec(act=Fixed(16, 8), weight=Fixed(8, 6), bias=16)
    with pytest.raises(PermdealError, match="layer fc1 weights: .* saturate in format 8:6"):
        compress_smartdeal(layers, tight)
    model = compress_smartdeal(layers, QuantSpec(act=Fixed(16, 8), weight=Fixed(8, 6), bias=16,
                                                 allow_saturation=True))
    sat = model.layers[0].saturated["weight"]
    assert sat > 0 and sat == model.layers[0].weight_saturated
    folder = tmp_path / "sd"
    folder.mkdir()
    model.write_folder(folder)
    SmartDealModel.read(folder)
    edit_json(folder / "manifest.json", lambda m: m["layers"][0]["saturated"].update(weight=0))
    with pytest.raises(PermdealError, match=f"saturated.weight is 0, but the codes rebuild with "
                                            f"{sat} saturated weight"):
        SmartDealModel.read(folder)


def test_bad_parameters():
    layers = random_layers()
    for kw, msg in [({"E": 9}, "exponent bits E must be an integer in [1, 5], not 9"),
                    ({"b_bits": 17}, "B bits b_B must be an integer in [2, 16], not 17"),
                    ({"S": 0}, "chunk width S must be an integer in [1, 16], not 0"),
                    ({"threshold": 50.0}, "layer fc1: threshold 50 leaves every Ce entry zero"),
                    ({"prune": 1.5}, "layer fc1: prune fraction must be a number in [0, 1)")]:
        with pytest.raises(PermdealError) as e:
            compress_smartdeal(layers, **kw)
        assert msg in str(e.value)


# -- the reader's refusals ------------------------------------------------------------------------

def test_changed_npz_is_refused(tmp_path):
    _, _, folder = make(tmp_path)
    with open(folder / "model.npz", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PermdealError) as e:
        SmartDealModel.read(folder)
    assert str(e.value) == (f"{folder / 'model.npz'}: sha256 does not match "
                            f"{folder / 'manifest.json'}; the file was changed or truncated")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["layers"][0]["smartdeal"].update(blocks=7),
     "layer 0 (fc1): smartdeal.blocks is 7, expected 9"),
    (lambda m: m["layers"][0]["smartdeal"].update(code_bits=6),
     "layer 0 (fc1): smartdeal.code_bits is 6, expected 5"),
    (lambda m: m["layers"][1]["smartdeal"].update(e_min=m["layers"][1]["smartdeal"]["e_min"] + 1),
     "layer 1 (fc2): smartdeal.align_shift is"),
    (lambda m: m["layers"][0]["smartdeal"].update(E=9),
     "layer 0 (fc1): smartdeal: E must be an integer in [1, 5], not 9"),
    (lambda m: m["layers"][0]["smartdeal"].pop("b_frac"),
     "layer 0 (fc1): smartdeal: missing field 'b_frac'"),
    (lambda m: m["config"].update(E=4), "layer 0 (fc1): smartdeal.E is 3, but config.E is 4"),
    (lambda m: m["layers"][0]["formats"].update(max_terms=99),
     "layer 0 (fc1): formats.acc_bits is"),
    (lambda m: m["layers"][0].update(out=10), "layer 0 (fc1): smartdeal.shape is [9, 13], "
                                              "expected [10, 13]"),
    (lambda m: m["layers"][0]["saturated"].update(b=-1),
     "layer 0 (fc1): saturated: b must be an integer >= 0, not -1"),
    (lambda m: m["layers"][1]["arrays"].update(ce="fc1.ce"),
     "layer 1 (fc2): arrays.ce names 'fc1.ce', already used by layer 0 (fc1) ce"),
    (lambda m: m.update(method="permdiag"),
     "method 'permdiag' is not a SmartDeal model; this reader reads only method 'smartdeal'"),
    (lambda m: m.update(format_version=2), "format_version 2 is a conv network's, but no "
                                              "layer has a conv field"),
    (lambda m: m.update(format_version=4), "written by a newer permdeal: format_version 4"),
    (lambda m: m["config"].update(prune=1.0), "config: prune must be a number in [0, 1), not 1.0"),
    (lambda m: m["config"].update(extra=1), "config: unexpected field 'extra'"),
    (lambda m: m["source"].update(sha256=5), "source: sha256 must be a string, not 5"),
    (lambda m: m["input_format"].update(frac=3), "input_format.frac is 3, expected"),
])
def test_edited_manifest_is_refused(tmp_path, edit, message):
    _, _, folder = make(tmp_path)
    edit_json(folder / "manifest.json", edit)
    with pytest.raises(PermdealError) as e:
        SmartDealModel.read(folder)
    assert str(e.value).startswith(str(folder / "manifest.json") + ": ")
    assert message in str(e.value)


@pytest.mark.parametrize("key, fn, message", [
    ("fc1__ce", lambda a: (a.__setitem__((0, 0, 0), 32), a)[1],
     "fc1.ce: Ce code 32 at (0, 0, 0) is beyond the 5-bit code {nz, sign, e_idx} of E = 3 (0..31)"),
    ("fc1__ce", lambda a: (a.__setitem__((1, 2, 1), -1), a)[1],
     "fc1.ce: Ce code -1 at (1, 2, 1) is beyond the 5-bit code"),
    ("fc2__ce", lambda a: (a.__setitem__((0, 0, 0), 5), a)[1],
     "fc2.ce: Ce code 5 at (0, 0, 0) has nz = 0 but other bits set; a zero entry is code 0"),
    ("fc1__b", lambda a: (a.__setitem__((2, 1, 0), 128), a)[1],
     "fc1.b: B code 128 at (2, 1, 0) does not fit b_bits = 8 (-128..127)"),
    ("fc2__bias", lambda a: (a.__setitem__(0, 1 << 20), a)[1],
     "fc2.bias: bias code 1048576 at (0,) does not fit formats.bias"),
    ("fc1__b", lambda a: a[:, :2], "fc1.b has shape (9, 2, 3), but"),
    ("fc1__ce", lambda a: a.astype(np.float64), "fc1.ce holds float64 values, expected integer"),
])
def test_codes_out_of_range_are_refused(tmp_path, key, fn, message):
    _, _, folder = make(tmp_path)
    rewrite_npz(folder, **{key: fn})
    with pytest.raises(PermdealError) as e:
        SmartDealModel.read(folder)
    assert str(e.value).startswith(str(folder / "model.npz") + ": ")
    assert message in str(e.value)


def test_methods_are_told_apart(tmp_path):
    _, _, folder = make(tmp_path)
    with pytest.raises(PermdealError) as e:
        QuantModel.read(folder)
    assert str(e.value) == (f"{folder / 'manifest.json'}: method 'smartdeal' is not one this "
                            "reader knows ('permdiag')")
    pd = compress_permdiag(random_layers(), 3)
    (tmp_path / "pd").mkdir()
    pd.write(tmp_path / "pd")
    with pytest.raises(PermdealError) as e:
        SmartDealModel.read(tmp_path / "pd")
    assert str(e.value) == (f"{tmp_path / 'pd' / 'manifest.json'}: method 'permdiag' is not a "
                            "SmartDeal model; this reader reads only method 'smartdeal' "
                            "(QuantModel.read reads 'permdiag')")


# -- ROM images -------------------------------------------------------------------------------------

def _image(man, name):
    return next(i for i in man["images"] if i["file"] == name)


@pytest.mark.parametrize("edit, file, message", [
    (lambda m: _image(m, "L0_ce.hex").update(width=6), "L0_ce.hex",
     "width 6 in {man} differs from the layer 0 (fc1) ce memory's 5-bit words"),
    (lambda m: _image(m, "L1_b.hex").update(depth=44), "L1_b.hex",
     "depth 44 in {man} differs from the layer 1 (fc2) b memory's 45 words"),
    (lambda m: _image(m, "L0_bias.hex").update(sha256="0" * 64), "L0_bias.hex",
     "sha256 does not match {man}; the image was changed"),
    (lambda m: _image(m, "L0_b.hex").update(signed=False), "L0_b.hex",
     "signed in {man} should be true for the layer 0 (fc1) b memory"),
])
def test_rom_manifest_mismatch_is_refused(tmp_path, edit, file, message):
    _, _, folder = make(tmp_path)
    rom = folder / "rom"
    edit_json(rom / "manifest.json", edit)
    with pytest.raises(PermdealError) as e:
        read_rom(rom)
    assert str(e.value) == f"{rom / file}: " + message.format(man=rom / "manifest.json")


def test_rom_changed_images_are_refused(tmp_path):
    _, _, folder = make(tmp_path)
    rom, man = folder / "rom", folder / "rom" / "manifest.json"
    img = rom / "L0_b.hex"
    lines = img.read_text().splitlines()
    good = img.read_text()
    lines[3] = "7f" if lines[3] != "7f" else "7e"
    img.write_text("\n".join(lines) + "\n")
    with pytest.raises(PermdealError) as e:
        read_rom(rom)
    assert str(e.value) == f"{img}: sha256 does not match {man}; the image was changed"
    img.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(PermdealError) as e:
        read_rom(rom)
    assert str(e.value) == f"{img}: {len(lines) - 1} lines, the manifest says depth {len(lines)} " \
                           "(truncated?)"
    img.write_text(good)
    (rom / "L1_ce.hex").unlink()
    with pytest.raises(PermdealError) as e:
        read_rom(rom)
    assert str(e.value) == f"{rom / 'L1_ce.hex'}: image missing (listed in {man})"
    edit_json(man, lambda m: m["images"].pop(0))
    with pytest.raises(PermdealError) as e:
        read_rom(rom)
    assert str(e.value) == f"{man}: images: no entry for L0_ce.hex (layer 0 (fc1) ce)"


# -- CLI --------------------------------------------------------------------------------------------

def write_float_model(path, layers):
    np.savez(path, **{f"{l.name}.{k}": getattr(l, "weight" if k == "weight" else "bias")
                      for l in layers for k in ("weight", "bias")})
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_compress_smartdeal(tmp_path, capsys):
    layers = random_layers()
    model = write_float_model(tmp_path / "m.npz", layers)
    code, out, err = run(capsys, "compress", model, "--method", "smartdeal", "--S", 3, "--E", 3,
                         "--b-bits", 8, "-o", tmp_path / "c")
    assert code == 0, err
    assert "fc1" in out and "13 -> 9" in out and "rel err" in out and "vs PD p=8" in out
    assert "rom/ with 6 images" in out and "storage:" in out
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        ".permdeal-output.json", "manifest.json", "model.npz", "rom"]
    back = SmartDealModel.read(tmp_path / "c")
    mem = compress_smartdeal(layers)
    x = np.random.default_rng(3).integers(-500, 500, size=(8, 13))
    np.testing.assert_array_equal(back.forward(x), mem.forward(x))
    _, rom_model = read_rom(tmp_path / "c" / "rom")
    np.testing.assert_array_equal(rom_model.forward(x), mem.forward(x))
    # permdeal eval reads either method: its accuracy is the model's own forward on the codes.
    xs = np.random.default_rng(4).normal(0, 1, (40, 13))
    labels = np.random.default_rng(5).integers(0, 5, 40)
    np.save(tmp_path / "x.npy", xs)
    np.save(tmp_path / "y.npy", labels)
    want = np.mean(np.argmax(mem.forward(mem.quantize_input(xs)[0]), axis=1) == labels)
    code, out, err = run(capsys, "eval", tmp_path / "c", "--inputs", tmp_path / "x.npy",
                         "--labels", tmp_path / "y.npy")
    assert code == 0, err
    assert f"golden fixed-point accuracy: {100 * want:.1f}% on 40 inputs" in out
    code, out, err = run(capsys, "compress", model, "--method", "smartdeal", "--prune", 0.3,
                         "--prune-group", 3, "--threshold", 0.01, "--rows-per-block", 2,
                         "-o", tmp_path / "c2")
    assert code == 0, err
    assert json.loads((tmp_path / "c2" / "manifest.json").read_text())["config"] == {
        "S": 3, "E": 3, "b_bits": 8, "rows_per_block": 2, "threshold": 0.01, "prune": 0.3,
        "prune_group": 3}


@pytest.mark.parametrize("extra, message", [
    (["--method", "smartdeal", "--E", "9"], "exponent bits E must be an integer in [1, 5], not 9"),
    (["--method", "smartdeal", "--E", "0"], "exponent bits E must be an integer in [1, 5], not 0"),
    (["--method", "smartdeal", "--b-bits", "17"], "B bits b_B must be an integer in [2, 16], not 17"),
    (["--method", "smartdeal", "--threshold", "100"],
     "layer fc1: threshold 100 leaves every Ce entry zero"),
    (["--method", "smartdeal", "--threshold", "-1"],
     "layer fc1: threshold must be a finite number >= 0, not -1.0"),
    (["--method", "smartdeal", "--p", "2"],
     "p (the permuted-diagonal block size) (--p) does not apply to method 'smartdeal'"),
    ([], "method 'permdiag' needs p (--p: one block size, or one per layer"),
    (["--p", "2", "--S", "4"], "S (--S) does not apply to method 'permdiag'; it applies only to method 'smartdeal'"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    model = write_float_model(tmp_path / "m.npz", random_layers())
    code, out, err = run(capsys, "compress", model, *extra, "-o", tmp_path / "c")
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("permdeal compress: error: ")
    assert message in err
    assert not (tmp_path / "c").exists()


# -- digits -----------------------------------------------------------------------------------------

def test_digits_golden_accuracy_near_float_smartdeal(capsys):
    from permdeal.golden import train as tr
    X_tr, y_tr, X_te, y_te = tr.load_digits_split(0)
    mlp = tr.train(tr.init_mlp([64, 128, 64, 10], seed=0), X_tr, y_tr, epochs=40, seed=0)
    layers = [FloatLayer(n, W, b) for n, W, b in mlp.dense_weights()]
    model = compress_smartdeal(layers, QuantSpec(act=16, weight=16, bias=16), calibration=X_tr)

    def float_acc(Ws):
        h = X_te
        for i, (W, l) in enumerate(zip(Ws, layers)):
            h = h @ W.T + l.bias
            h = np.maximum(h, 0) if i < len(layers) - 1 else h
        return float(np.mean(np.argmax(h, axis=1) == y_te))

    dense = float_acc([l.weight for l in layers])
    sd_float = float_acc([sd.decompose(l.weight).to_dense() for l in layers])
    golden = float(np.mean(np.argmax(model.predict(X_te), axis=1) == y_te))
    bits = {k: sum(l.report["storage_bits"][k] for l in model.layers)
            for k in ("dense", "permdiag", "smartdeal_fixed")}
    with capsys.disabled():
        print(f"\ndigits 64-128-64-10: dense {dense:.4f}, SmartDeal float {sd_float:.4f}, golden "
              f"fixed-point {golden:.4f}; storage dense/SmartDeal "
              f"{bits['dense'] / bits['smartdeal_fixed']:.2f}x, PD p=8/SmartDeal "
              f"{bits['permdiag'] / bits['smartdeal_fixed']:.2f}x")
    assert sd_float > 0.9 and abs(golden - sd_float) <= 0.03
