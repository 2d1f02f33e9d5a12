"""Readers of output folders trust nothing: hand-edited manifests, images and archives are refused
with one PermdealError naming the file and the field, never a traceback or a silently wrong model."""

import hashlib
import io
import json
import pathlib
import zipfile

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.compress import compress_permdiag
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.formats import LayerFormats
from permdeal.golden.model import (MODEL_FORMAT_VERSION, FloatLayer, QuantModel, layer_from_json,
                                   load_float_model)
from permdeal.golden.rom import (ROM_FORMAT_VERSION, decode_hex, lane_contents, model_from_images, read_images,
                                 write_images)

CFG = EngineConfig(2, 1)


# -- helpers ---------------------------------------------------------------------------------------

def make_model(seed=0, sizes=(5, 6, 3), ps=(2, 4)):
    rng = np.random.default_rng(seed)
    layers = [FloatLayer(f"fc{i + 1}", rng.normal(0, 0.7, (o, n)), rng.normal(0, 0.3, o))
              for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]
    return compress_permdiag(layers, list(ps))


@pytest.fixture
def model_dir(tmp_path):
    model = make_model()
    folder = tmp_path / "model"
    folder.mkdir()
    model.write(folder)
    return folder, model


@pytest.fixture
def rom_dir(tmp_path):
    model = make_model()
    folder = tmp_path / "rom"
    folder.mkdir()
    write_images(folder, model, CFG)
    return folder, model


def edit(folder, change):
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m, indent=2))


def refused(read, folder, *fragments):
    """``read(folder)`` raises one PermdealError holding every fragment, its context given once."""
    with pytest.raises(PermdealError) as e:
        read(folder)
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    head = msg.split(": ")[0]
    assert msg.count(head + ":") == 1, f"repeated context in {msg!r}"
    assert msg.count("manifest.json") <= 1, msg
    return msg


def assert_same(a, b):
    assert b.method == a.method and len(b.layers) == len(a.layers)
    for la, lb in zip(a.layers, b.layers):
        assert (lb.name, lb.shape, lb.matrix.p, lb.relu, lb.fmts) == \
            (la.name, la.shape, la.matrix.p, la.relu, la.fmts)
        assert lb.saturated == la.saturated
        for x, y in ((la.matrix.k, lb.matrix.k), (la.matrix.q, lb.matrix.q), (la.bias, lb.bias)):
            assert np.issubdtype(y.dtype, np.integer) and np.array_equal(x, y)


def derived(fm):
    """A layer's formats with the derived fields recomputed (what a careful editor writes)."""
    return LayerFormats.from_json(fm).to_json()


def set_out_frac(m, frac):
    """Change layer 0's output format consistently with everything but layer 1's input."""
    f = m["layers"][0]["formats"]
    f["out"]["frac"] = frac
    m["layers"][0]["formats"] = derived(f)


def swap(m, a, b, *keys):
    ea, eb = m["images"][a], m["images"][b]
    for k in keys:
        ea[k], eb[k] = eb[k], ea[k]


def drop_last_layer(m):
    del m["layers"][-1]
    m["output_format"] = m["layers"][-1]["formats"]["out"]


# -- untouched folders read back exactly -----------------------------------------------------------

def test_untouched_folders_read_back_exactly(model_dir, rom_dir):
    folder, model = model_dir
    assert_same(model, QuantModel.read(folder))
    folder, model = rom_dir
    assert_same(model, model_from_images(folder))
    man, contents = read_images(folder)
    want = lane_contents(model, CFG)
    assert man["kind"] == "permdeal-rom" and contents.keys() == want.keys()
    for mem in want:
        assert np.array_equal(contents[mem], want[mem]), mem


# -- fields shared by both manifests ---------------------------------------------------------------

COMMON = [
    ("relu-string", lambda m: m["layers"][0].update(relu="false"),
     ["layer 0 (fc1): relu must be true or false, not \"false\""]),
    ("relu-int", lambda m: m["layers"][1].update(relu=0), ["layer 1 (fc2): relu must be true or false, not 0"]),
    ("in-float", lambda m: m["layers"][0].update({"in": 8.5}), ["layer 0 (fc1): in must be an integer, not 8.5"]),
    ("in-integral-float", lambda m: m["layers"][0].update({"in": 5.0}), ["in must be an integer, not 5.0"]),
    ("in-bool", lambda m: m["layers"][0].update({"in": True}), ["in must be an integer, not true"]),
    ("out-string", lambda m: m["layers"][0].update(out="6"), ["out must be an integer, not \"6\""]),
    ("p-zero", lambda m: m["layers"][0].update(p=0), ["p must be an integer >= 1, not 0"]),
    ("p-null", lambda m: m["layers"][0].update(p=None), ["p must be an integer, not null"]),
    ("name-int", lambda m: m["layers"][0].update(name=3), ["layer 0: name must be a string, not 3"]),
    ("name-empty", lambda m: m["layers"][0].update(name=""), ["layer 0: name must not be empty"]),
    ("name-duplicate", lambda m: m["layers"][1].update(name="fc1"),
     ["layer 1 (fc1): layer 0 has the same name"]),
    ("missing-relu", lambda m: m["layers"][0].pop("relu"), ["layer 0 (fc1): missing field 'relu'"]),
    ("layer-not-object", lambda m: m["layers"].__setitem__(1, "fc2"),
     ["layer 1: must be an object, not \"fc2\""]),
    ("layers-object", lambda m: m.update(layers={}), ["layers must be a list, not {}"]),
    ("layers-empty", lambda m: m.update(layers=[]), ["layers is empty"]),
    ("blocks", lambda m: m["layers"][0].update(blocks=[9, 9]),
     ["layer 0 (fc1): blocks is [9, 9], but out 6, in 5 and p 2 give [3, 3]"]),
    ("blocks-string", lambda m: m["layers"][0].update(blocks="3x3"), ["blocks must be a list"]),
    ("max-terms-float", lambda m: m["layers"][0]["formats"].update(max_terms=2.5),
     ["layer 0 (fc1): formats: max_terms must be an integer >= 1, not 2.5"]),
    ("bits-string", lambda m: m["layers"][0]["formats"]["weight"].update(bits="16"),
     ["layer 0 (fc1): formats.weight: format bits must be an integer"]),
    ("bits-too-wide", lambda m: m["layers"][0]["formats"]["act"].update(bits=99),
     ["formats.act: format bits must be an integer in [2, 32], not 99"]),
    ("format-missing", lambda m: m["layers"][0]["formats"].pop("bias"),
     ["layer 0 (fc1): formats: missing field 'bias'"]),
    ("formats-list", lambda m: m["layers"][0].update(formats=[]), ["formats must be an object, not []"]),
    ("formats-extra", lambda m: m["layers"][0]["formats"].update(extra=1),
     ["layer 0 (fc1): formats: unexpected field 'extra'"]),
    ("acc-bits-float", lambda m: m["layers"][0]["formats"].update(
        acc_bits=float(m["layers"][0]["formats"]["acc_bits"])), ["formats.acc_bits is"]),
    ("saturated-list", lambda m: m["layers"][0].update(saturated=[0]),
     ["layer 0 (fc1): saturated must be an object, not [0]"]),
    ("saturated-negative", lambda m: m["layers"][0]["saturated"].update(weight=-1),
     ["layer 0 (fc1): saturated: weight must be an integer >= 0, not -1"]),
    ("saturated-float", lambda m: m["layers"][0]["saturated"].update(bias=1.5),
     ["saturated: bias must be an integer, not 1.5"]),
    ("format-version-newer", lambda m: m.update(format_version=99),
     ["written by a newer permdeal: format_version 99, this reader knows {version}"]),
    ("format-version-string", lambda m: m.update(format_version="1"),
     ["format_version must be an integer, not \"1\""]),
    ("format-version-older", lambda m: m.update(format_version=0),
     ["unsupported format_version 0, this reader knows {version}"]),
    ("method", lambda m: m.update(method="smartdeal"), ["method 'smartdeal' is not one this reader knows"]),
    ("input-format", lambda m: m["input_format"].update(frac=3),
     ["input_format.frac is 3, expected 8 (layer 0's formats.act)"]),
    ("output-format", lambda m: m["output_format"].update(bits=8),
     ["output_format.bits is 8, expected 16 (layer 1's formats.out)"]),
    ("output-format-missing", lambda m: m.pop("output_format"), ["missing field 'output_format'"]),
    ("chain-in", lambda m: m["layers"][1].update({"in": 4, "blocks": [1, 1]}),
     ["layer 1 (fc2): in is 4, but layer 0 (fc1) gives 6 outputs"]),
    ("chain-format", lambda m: set_out_frac(m, 7),
     ["layer 1 (fc2): formats.act 16:8 differs from layer 0 (fc1)'s formats.out 16:7"]),
]


@pytest.mark.parametrize("change, fragments", [c[1:] for c in COMMON], ids=[c[0] for c in COMMON])
@pytest.mark.parametrize("kind", ["model", "rom"])
def test_common_fields_are_checked(model_dir, rom_dir, kind, change, fragments):
    folder = (model_dir if kind == "model" else rom_dir)[0]
    read = QuantModel.read if kind == "model" else model_from_images
    version = MODEL_FORMAT_VERSION if kind == "model" else ROM_FORMAT_VERSION
    fragments = [f.replace("{version}", str(version)) for f in fragments]
    edit(folder, change)
    refused(read, folder, "manifest.json: ", *fragments)
    if kind == "rom":
        refused(read_images, folder, "manifest.json: ", *fragments)


@pytest.mark.parametrize("field", ["acc_bits", "acc_frac", "bias_shift", "out_shift"])
@pytest.mark.parametrize("kind", ["model", "rom"])
def test_derived_format_fields_must_agree(model_dir, rom_dir, kind, field):
    folder = (model_dir if kind == "model" else rom_dir)[0]
    read = QuantModel.read if kind == "model" else model_from_images
    edit(folder, lambda m: m["layers"][1]["formats"].update({field: m["layers"][1]["formats"][field] + 1}))
    refused(read, folder, f"manifest.json: layer 1 (fc2): formats.{field} is", "expected")


# -- the compressed-model folder -------------------------------------------------------------------

MODEL_CASES = [
    ("files-list", lambda m: m.update(files=[]), ["manifest.json: files must be an object, not []"]),
    ("files-extra", lambda m: m["files"].update({"other.bin": {"sha256": "0" * 64}}),
     ["files: unexpected entry 'other.bin'"]),
    ("files-missing", lambda m: m["files"].clear(), ["files: missing field 'model.npz'"]),
    ("sha-int", lambda m: m["files"]["model.npz"].update(sha256=5),
     ["files.model.npz: sha256 must be a string, not 5"]),
    ("arrays-missing", lambda m: m["layers"][0].pop("arrays"), ["layer 0 (fc1): missing field 'arrays'"]),
    ("arrays-unknown", lambda m: m["layers"][0]["arrays"].update(k="nope.k"),
     ["layer 0 (fc1): arrays.k names 'nope.k', which", "model.npz does not hold"]),
    ("arrays-shared", lambda m: m["layers"][1].update(arrays=m["layers"][0]["arrays"]),
     ["layer 1 (fc2): arrays.k names 'fc1.k', already used by layer 0 (fc1) k"]),
    ("layer-removed", drop_last_layer,
     ["model.npz: holds 3 array(s) no layer of", "uses, the first 'fc2.k'"]),
    ("p-changed", lambda m: m["layers"][0].update(p=3, blocks=[2, 2]),
     ["model.npz: fc1.k has shape (3, 3), but", "layer 0 (fc1) with in 5, out 6 and p 3 needs (2, 2)"]),
]


@pytest.mark.parametrize("change, fragments", [c[1:] for c in MODEL_CASES],
                         ids=[c[0] for c in MODEL_CASES])
def test_model_manifest_is_checked(model_dir, change, fragments):
    folder, _ = model_dir
    edit(folder, change)
    refused(QuantModel.read, folder, *fragments)


def replace_arrays(folder, change):
    """Rewrite model.npz with ``change(arrays)`` applied, and its sha256 in the manifest."""
    with np.load(folder / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    set_arrays_bytes(folder, buf.getvalue())


def set_arrays_bytes(folder, data):
    (folder / "model.npz").write_bytes(data)
    edit(folder, lambda m: m["files"]["model.npz"].update(sha256=hashlib.sha256(data).hexdigest()))


@pytest.mark.parametrize("change, fragments", [
    (lambda a: a.update({"fc1.q": a["fc1.q"].astype(np.float64)}),
     ["model.npz: fc1.q holds float64 values, expected integer codes"]),
    (lambda a: a.update({"fc2.bias": a["fc2.bias"] + 0.5}),
     ["model.npz: fc2.bias holds float64 values, expected integer codes"]),
    (lambda a: a.update({"fc2.bias": a["fc2.bias"].astype(complex)}),
     ["model.npz: fc2.bias has non-numeric dtype complex128"]),
    (lambda a: a.update({"fc1.k": a["fc1.k"] + 2}),
     ["manifest.json: layer 0 (fc1): k values must lie in [0, 2)"]),
    (lambda a: a.update({"fc1.bias": a["fc1.bias"] * 0 + 2 ** 40}),
     ["manifest.json: layer 0 (fc1): bias codes", "do not fit format"]),
], ids=["float-q", "float-bias", "complex-bias", "k-range", "bias-range"])
def test_model_arrays_are_checked(model_dir, change, fragments):
    folder, _ = model_dir
    replace_arrays(folder, change)
    refused(QuantModel.read, folder, *fragments)


def test_model_arrays_that_are_not_an_npz(model_dir):
    folder, _ = model_dir
    buf = io.BytesIO()
    np.save(buf, np.ones(3))
    set_arrays_bytes(folder, buf.getvalue())
    refused(QuantModel.read, folder, "model.npz: is a .npy array, expected an .npz archive of "
            "NAME.k/NAME.q/NAME.bias arrays")


# -- float-model archives (_load_npz) --------------------------------------------------------------

def zip_with(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def corrupt_member(path):
    """An .npz whose array data no longer matches the zip's CRC."""
    w = np.full((2, 2), 1.25)
    np.savez(path, **{"fc.weight": w})
    data = bytearray(path.read_bytes())
    at = bytes(data).find(w.tobytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make, fragments", [
    (lambda p: np.save(p.with_suffix(".npy"), np.ones((2, 2))) or p.with_suffix(".npy").rename(p),
     ["is a .npy array, expected an .npz archive of NAME.weight/NAME.bias arrays"]),
    (lambda p: p.write_bytes(b"just some text"), ["not a readable .npz file"]),
    (lambda p: p.write_bytes(b"PK\x03\x04truncated"), ["not a readable .npz file"]),
    (lambda p: zip_with(p, {"fc.weight.npy": b"not an npy file"}),
     ["member 'fc.weight' is not a numpy array (.npy)"]),
    (lambda p: zip_with(p, {"fc.weight": b"raw bytes"}), ["member 'fc.weight' is not a numpy array"]),
    (lambda p: zip_with(p, {"fc.weight.npy": npy_bytes(np.array([[1, None]], dtype=object))}),
     ["member 'fc.weight' is not a readable numpy array"]),
    (lambda p: np.savez(p, **{"fc.weight": np.array([["a", "b"]])}),
     ["fc.weight has non-numeric dtype <U1"]),
    (lambda p: np.savez(p, **{"fc.weight": np.ones((2, 2)), "fc.bias": np.ones(2, complex)}),
     ["fc.bias has non-numeric dtype complex128"]),
    (lambda p: np.savez(p, **{"fc.weight": np.ones((2, 2), bool)}), ["fc.weight has non-numeric dtype bool"]),
    (corrupt_member, ["member 'fc.weight' is not a readable numpy array"]),
    (lambda p: p.mkdir(), ["is a folder, expected an .npz archive"]),
], ids=["npy", "text", "truncated-zip", "member-not-npy", "member-raw", "object", "strings",
        "complex", "bool", "bad-crc", "folder"])
def test_float_model_archive_is_checked(tmp_path, make, fragments):
    path = tmp_path / "m.npz"
    make(path)
    refused(load_float_model, path, "m.npz: ", *fragments)


# -- the ROM folder: layout against the layer descriptions -----------------------------------------

def image_index(m, pe, lane, mem):
    return next(i for i, e in enumerate(m["images"]) if (e["pe"], e["lane"], e["memory"]) == (pe, lane, mem))


ROM_CASES = [
    ("p-changed", lambda m: m["layers"][0].update(p=4, blocks=[2, 2]),
     ["layer 0 (fc1): placement.slots is 2, expected 1"]),
    ("bias-base", lambda m: m["layers"][1]["placement"].update(bias_base=0),
     ["layer 1 (fc2): placement.bias_base is 0, expected 4"]),
    ("depth", lambda m: m["layers"][0]["placement"].update(weight_depth=11),
     ["layer 0 (fc1): placement.weight_depth is 11, expected 12"]),
    ("placement-float", lambda m: m["layers"][0]["placement"].update(k_base=0.0),
     ["placement.k_base is 0.0, expected 0"]),
    ("placement-missing", lambda m: m["layers"][0].pop("placement"),
     ["layer 0 (fc1): missing field 'placement'"]),
    ("placement-extra", lambda m: m["layers"][0]["placement"].update(extra=0),
     ["placement: unexpected field 'extra'"]),
    ("layer-removed", drop_last_layer, ["memories.weight.depth is 20, expected 12"]),
    ("memory-width", lambda m: m["memories"]["bias"].update(width=20), ["memories.bias.width is 20, expected 16"]),
    ("memory-signed", lambda m: m["memories"]["k"].update(signed=True), ["memories.k.signed is true, expected false"]),
    ("memory-signed-int", lambda m: m["memories"]["weight"].update(signed=1),
     ["memories.weight.signed is 1, expected true"]),
    ("memory-extra", lambda m: m["memories"].update(index={}), ["memories: unexpected field 'index'"]),
    ("memories-list", lambda m: m.update(memories=[]), ["memories must be an object, not []"]),
    ("config-zero", lambda m: m["config"].update(n_pe=0), ["config: n_pe must be an integer >= 1, not 0"]),
    ("config-float", lambda m: m["config"].update(lanes=1.0), ["config: lanes must be an integer, not 1.0"]),
    ("config-negative", lambda m: m["config"].update(scan_width=-1),
     ["config: scan_width must be an integer >= 1, not -1"]),
    ("config-extra", lambda m: m["config"].update(clock=100), ["config: unexpected field 'clock'"]),
    ("config-missing", lambda m: m["config"].pop("scan_width"), ["config: missing field 'scan_width'"]),
    ("config-list", lambda m: m.update(config=[2, 1]), ["config must be an object, not [2, 1]"]),
    ("config-more-pes", lambda m: m["config"].update(n_pe=3), ["placement.slots is 2, expected 1"]),
]


@pytest.mark.parametrize("change, fragments", [c[1:] for c in ROM_CASES], ids=[c[0] for c in ROM_CASES])
def test_rom_layout_is_recomputed(rom_dir, change, fragments):
    folder, _ = rom_dir
    edit(folder, change)
    for read in (read_images, model_from_images):
        refused(read, folder, "manifest.json: ", *fragments)


IMAGE_CASES = [
    ("swapped-files", lambda m: swap(m, 0, 3, "file", "sha256"),
     ["images[0]: file 'pe1_lane0_weight.hex' is not the name of the PE 0 lane 0 weight image, "
      "which the RTL's $readmemh loads as 'pe0_lane0_weight.hex'"]),
    ("swapped-lanes", lambda m: swap(m, 1, 4, "pe"), ["images[1]: file 'pe0_lane0_k.hex' is not the name"]),
    ("duplicate", lambda m: m["images"].append(dict(m["images"][2])),
     ["images[6]: a second bias image for PE 0 lane 0 (the first is images[2])"]),
    ("dropped", lambda m: m["images"].pop(4), ["lists no k image for PE 1 lane 0 (1 image(s) missing)"]),
    ("parent-path", lambda m: m["images"][0].update(file="../pe0_lane0_weight.hex"),
     ["images[0]: file '../pe0_lane0_weight.hex' must be a plain file name"]),
    ("sub-path", lambda m: m["images"][0].update(file="sub/pe0_lane0_weight.hex"), ["must be a plain file name"]),
    ("dot-dot", lambda m: m["images"][0].update(file=".."), ["file '..' must be a plain file name"]),
    ("pe-range", lambda m: m["images"][0].update(pe=2),
     ["images[0]: PE 2 lane 0 is outside the engine's 2 PE x 1 lanes"]),
    ("pe-negative", lambda m: m["images"][0].update(pe=-1), ["images[0]: pe must be an integer >= 0, not -1"]),
    ("lane-float", lambda m: m["images"][0].update(lane=0.0), ["images[0]: lane must be an integer, not 0.0"]),
    ("memory", lambda m: m["images"][0].update(memory="w"),
     ["images[0]: memory must be one of weight, k, bias, not 'w'"]),
    ("sha-int", lambda m: m["images"][0].update(sha256=0), ["images[0]: sha256 must be a string, not 0"]),
    ("sha-short", lambda m: m["images"][0].update(sha256="abc"),
     ["images[0]: sha256 must be 64 lower-case hex digits, not 'abc'"]),
    ("width-string", lambda m: m["images"][0].update(width="16"), ["images[0]: width must be an integer"]),
    ("entry-list", lambda m: m["images"].__setitem__(0, []), ["images[0]: must be an object, not []"]),
    ("images-object", lambda m: m.update(images={}), ["images must be a list, not {}"]),
    ("file-missing", lambda m: m["images"][0].pop("file"), ["images[0]: missing field 'file'"]),
]


@pytest.mark.parametrize("change, fragments", [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES])
def test_rom_image_entries_are_checked(rom_dir, change, fragments):
    folder, _ = rom_dir
    edit(folder, change)
    for read in (read_images, model_from_images):
        refused(read, folder, "manifest.json: ", *fragments)


# -- the ROM folder: image files -------------------------------------------------------------------

def rewrite_image(folder, name, change):
    """Change the words of one image, and its sha256 in the manifest (a consistent forgery)."""
    path = folder / name
    lines = path.read_text().split("\n")
    change(lines)
    data = "\n".join(lines).encode()
    path.write_bytes(data)
    edit(folder, lambda m: m["images"][image_index(m, *parse(name))].update(
        sha256=hashlib.sha256(data).hexdigest()))
    return path


def parse(name):
    pe, lane, mem = name[:-4].split("_")
    return int(pe[2:]), int(lane[4:]), mem


def test_missing_final_newline_names_the_line(rom_dir):
    folder, _ = rom_dir
    path = folder / "pe1_lane0_k.hex"
    depth = path.read_text().count("\n")
    path.write_bytes(path.read_bytes()[:-1])
    for read in (read_images, model_from_images):
        refused(read, folder, f"pe1_lane0_k.hex: line {depth}: missing newline at the end of the file")
    with pytest.raises(PermdealError, match=r"^x\.hex: line 2: missing newline at the end of the file$"):
        decode_hex(b"01\n02", 8, 2, False, "x.hex")


def test_image_that_is_a_folder(rom_dir):
    folder, _ = rom_dir
    (folder / "pe0_lane0_bias.hex").unlink()
    (folder / "pe0_lane0_bias.hex").mkdir()
    refused(read_images, folder, "pe0_lane0_bias.hex: is a folder, not an image file")


def test_unreadable_image(rom_dir, monkeypatch):
    folder, _ = rom_dir
    target = folder / "pe1_lane0_weight.hex"
    real = pathlib.Path.read_bytes

    def read_bytes(self):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    refused(read_images, folder, "pe1_lane0_weight.hex: cannot read (Permission denied)")


@pytest.mark.parametrize("name, line, word, fragments", [
    # fc1 (6 x 5, p 2) has 3 block-rows on 2 lanes: lane 1's slot 1 is padding (k words from 3 =
    # N', weight words from 6 = N'*p); so are bias rows 6, 7
    ("pe1_lane0_k.hex", 3, "1", ["the images of layer 0 (fc1): the k memory holds non-zero words in "
                                 "the slots past block-row 3"]),
    ("pe1_lane0_bias.hex", 3, "0001", ["layer 0 (fc1): the bias memory holds non-zero words in the "
                                       "rows past output 6"]),
    ("pe1_lane0_weight.hex", 6, "0001", ["the weight memory holds non-zero words in the slots"]),
    # k words are 2 bits wide (fc2 has p = 4) but fc1's k must stay below 2
    ("pe0_lane0_k.hex", 0, "3", ["the images of layer 0 (fc1): k values must lie in [0, 2)"]),
], ids=["k-padding", "bias-padding", "weight-padding", "k-range"])
def test_forged_image_contents(rom_dir, name, line, word, fragments):
    folder, _ = rom_dir
    rewrite_image(folder, name, lambda lines: lines.__setitem__(line, word))
    read_images(folder)  # the files agree with the manifest...
    refused(model_from_images, folder, str(folder) + ": ", *fragments)  # ...but encode no model


# -- error context is given once -------------------------------------------------------------------

def test_layer_from_json_names_its_context_once(model_dir):
    folder, model = model_dir
    d = json.loads((folder / "manifest.json").read_text())["layers"][0]
    layer = model.layers[0]
    parts = (layer.matrix.k, layer.matrix.q, layer.bias)
    assert layer_from_json(d, *parts, what="x").fmts == layer.fmts
    d["formats"]["act"]["bits"] = 1
    with pytest.raises(PermdealError) as e:
        layer_from_json(d, *parts, what="t/manifest.json: layer 0")
    assert str(e.value) == ("t/manifest.json: layer 0 (fc1): formats.act: format bits must be an "
                            "integer in [2, 32], not 1")
