"""Conv networks in compressed-model folders and ROM images (docs/design.md 14.6): the patch
order against loops, the patch-order matrix, folders and images read back bit for bit, and
folders that disagree with themselves refused in one line."""

import hashlib
import io
import json

import numpy as np
import pytest

from permdeal.api import models as mdl
from permdeal.cli import main
from permdeal.errors import PermdealError
from permdeal.golden import float_model, rom
from permdeal.golden.compress import QuantSpec
from permdeal.golden.conv import ConvPermDiag, ConvShape, Pool, im2col, matrix_view, patch_order
from permdeal.golden.conv_model import ConvNet, QuantConvLayer, compress_network
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.float_model import FloatLayer
from permdeal.golden.model import QuantModel

SEED = 1806


def rng(offset=0):
    print(f"seed {SEED + offset}")
    return np.random.default_rng(SEED + offset)


def conv_net(r):
    """conv 3x3 1->4 pad 1 + max pool 2 (8x8 -> 4x4), conv 3x3 4->6 (-> 2x2), FC 24 -> 5."""
    c1 = ConvShape((1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    c2 = ConvShape((4, 4, 4), 6, (3, 3))
    return [FloatLayer("c1", r.normal(0, 0.5, c1.weight_shape), r.normal(0, 0.1, 4), c1,
                       Pool("max", (2, 2), (2, 2))),
            FloatLayer("c2", r.normal(0, 0.3, c2.weight_shape), r.normal(0, 0.1, 6), c2),
            FloatLayer("fc", r.normal(0, 0.3, (5, 24)), r.normal(0, 0.1, 5))]


# -- the patch order --------------------------------------------------------------------------

@pytest.mark.parametrize("geo, p", [
    (((1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1)), 2),
    (((3, 9, 7), 5, (5, 3), (2, 1), (2, 0, 1, 1)), 2),
    (((4, 5, 8), 6, (2, 4), (1, 3), (0, 2, 1, 0)), 4),
    (((5, 6, 6), 3, (3, 3), (2, 2), (1, 1, 1, 1)), 3),
])
def test_im2col_is_the_patch_order(geo, p):
    """Entry (u*KW + v)*C' + c of pixel i*OW + j is channel c of the padded input at (i*sh + u,
    j*sw + v); zero for the channels c >= C that pad C up to C' (a multiple of p)."""
    shape = ConvShape(*geo)
    (c, h, w), (kh, kw), (sh, sw), (t, l, _, _) = shape.in_shape, shape.kernel, shape.stride, \
        shape.padding
    x = rng(1).integers(-50, 50, size=(2, c * h * w))
    cols = im2col(shape, x, p)
    cp = -(-c // p) * p
    oh, ow = shape.out_hw
    assert cols.shape == (2, oh * ow, kh * kw * cp)
    xi = x.reshape(2, c, h, w)
    for b in range(2):
        for i in range(oh):
            for j in range(ow):
                for u in range(kh):
                    for v in range(kw):
                        for ch in range(cp):
                            y, xx = i * sh + u - t, j * sw + v - l
                            want = xi[b, ch, y, xx] if ch < c and 0 <= y < h and 0 <= xx < w \
                                else 0
                            assert cols[b, i * ow + j, (u * kw + v) * cp + ch] == want


def test_patch_order_matrix_holds_the_patterns():
    """Column (u*KW + v)*C' + c of the matrix is W[:, c, u, v] (zero in the channel padding),
    it is the permuted-diagonal matrix of the per-position patterns, and back again."""
    r = rng(2)
    w = r.normal(size=(6, 3, 2, 3))
    cpd = ConvPermDiag.from_dense(w, 2)
    mat = cpd.to_matrix()
    assert mat.shape == (6, 2 * 3 * 4) and mat.p == 2
    dense, W = mat.to_dense(), cpd.to_dense()
    for o in range(6):
        for u in range(2):
            for v in range(3):
                for c in range(4):
                    want = W[o, c, u, v] if c < 3 else 0.0
                    assert dense[o, (u * 3 + v) * 4 + c] == want
    order = patch_order((2, 3), 3, 2)
    np.testing.assert_array_equal(dense, np.where(order >= 0, matrix_view(W)[:, order], 0.0))
    back = ConvPermDiag.from_matrix(mat, (2, 3), 3)
    for a, b in zip(back.mats, cpd.mats):
        np.testing.assert_array_equal(a.k, b.k)
        np.testing.assert_array_equal(a.q, b.q)
    q = mat.q.copy()
    q[:, 1, :] = 1.0  # block-column 1: channels 2, 3 of position (0, 0); 3 is padding
    with pytest.raises(PermdealError, match=r"kernel position \(0, 0\): q has non-zero weights "
                       r"in the zero padding .*\(the channel padding of the patch order\)"):
        ConvPermDiag.from_matrix(mat.with_q(q), (2, 3), 3)
    with pytest.raises(PermdealError, match="a 3x3 kernel over 3 channels at p = 2 makes 36 "
                       "patch entries, the matrix has 24 columns"):
        ConvPermDiag.from_matrix(mat, (3, 3), 3)


@pytest.mark.parametrize("method", ["permdiag", "smartdeal"])
def test_hardware_product_equals_the_convolution(method):
    """Every conv layer's accumulators as the engine will compute them (the matrix layer times
    each pixel's patch) equal the golden convolution's, value by value."""
    r = rng(3)
    x = r.uniform(0, 1, size=(4, 64))
    net = compress_network(conv_net(r), method, p=2, spec=QuantSpec(act=12, weight=10, bias=12),
                           calibration=x)
    trace = net.forward(net.quantize_input(x)[0], trace=True)
    for i, l in enumerate(net.layers[:2]):
        np.testing.assert_array_equal(l.im2col_accumulate(trace[i]), l.accumulate(trace[i]))


# -- folders ----------------------------------------------------------------------------------

def same_layers(a, b):
    assert type(a) is type(b) and len(a.layers) == len(b.layers) and a.method == b.method
    for x, y in zip(a.layers, b.layers):
        assert type(x) is type(y) and x.name == y.name and x.relu == y.relu
        assert x.fmts == y.fmts and x.saturated == y.saturated
        np.testing.assert_array_equal(x.bias, y.bias)
        if isinstance(x, QuantConvLayer):
            assert x.conv == y.conv and x.pool == y.pool
            if x.is_permdiag:
                for m, n in zip(x.weights.mats, y.weights.mats):
                    np.testing.assert_array_equal(m.k, n.k)
                    np.testing.assert_array_equal(m.q, n.q)
            else:
                np.testing.assert_array_equal(x.weights, y.weights)
                np.testing.assert_array_equal(x.codes.codes, y.codes.codes)
                np.testing.assert_array_equal(x.codes.b_int, y.codes.b_int)
        elif hasattr(x, "matrix"):
            np.testing.assert_array_equal(x.matrix.k, y.matrix.k)
            np.testing.assert_array_equal(x.matrix.q, y.matrix.q)
        else:
            np.testing.assert_array_equal(x.weights, y.weights)


def write_cnn(tmp_path, method="permdiag", **kw):
    r = rng(4)
    float_model.save(conv_net(r), tmp_path / "cnn.npz")
    x = r.uniform(0, 1, size=(16, 64))
    np.save(tmp_path / "cal.npy", x)
    if method == "permdiag":
        kw.setdefault("p", 2)
    res = mdl.compress_run(tmp_path / "cnn.npz", method, calibration=tmp_path / "cal.npy",
                           output=tmp_path / method, **kw)
    return res.model, x, tmp_path / method


@pytest.mark.parametrize("method, kw", [("permdiag", {}), ("smartdeal", {}),
                                        ("smartdeal", {"rows_per_block": 2})])
def test_folder_round_trip(tmp_path, method, kw):
    net, x, folder = write_cnn(tmp_path, method, **kw)
    assert isinstance(net, ConvNet)
    back = mdl.load(folder)
    same_layers(net, back)
    codes = net.quantize_input(x)[0]
    np.testing.assert_array_equal(back.forward(codes), net.forward(codes))
    man = json.loads((folder / "manifest.json").read_text())
    assert man["format_version"] == 3 and man["method"] == method
    order = {"permdiag": "hwc", "smartdeal": "chw"}[method]   # the method's engine's order
    assert man["flatten"] == order and back.flatten == net.flatten == order
    c1 = man["layers"][0]
    if kw:  # c1's matrix view has 3 chunks: blocks of 2 and 1 per output channel
        assert c1["smartdeal"]["rows_per_block"] == 2 and c1["smartdeal"]["blocks"] == 8
    assert c1["conv"] == {"input": [1, 8, 8], "kernel": [3, 3], "stride": [1, 1],
                          "padding": [1, 1, 1, 1],
                          "pool": {"kind": "max", "size": [2, 2], "stride": [2, 2]},
                          "output": [4, 4, 4]}
    # the matrix layer: 9 positions of C' = 2 channels at p = 2; SmartDeal's matrix view 1*3*3
    assert (c1["in"], c1["out"]) == ((18, 4) if method == "permdiag" else (9, 4))
    assert "conv" not in man["layers"][2]
    assert main(["check", str(folder)]) == 0


def test_pd_rom_images_round_trip(tmp_path):
    net, x, folder = write_cnn(tmp_path)
    for groups in (None, 2):
        out = tmp_path / f"rom{groups}"
        man, _ = mdl.write_rom(folder, out, pes=2, lanes=2, groups=groups)
        assert man["format_version"] == 4 and man["flatten"] == "hwc"
        assert [("conv" in d) for d in man["layers"]] == [True, True, False]
        back = rom.model_from_images(out)
        same_layers(net, back)
        assert back.flatten == "hwc"
        assert main(["check", str(out)]) == 0
    # a conv layer's words are those of its matrix layer as an FC model's
    cfg = EngineConfig(2, 2)
    for l in net.layers[:2]:
        one = rom.lane_contents(ConvNet([l]), cfg)
        fc = rom.lane_contents(QuantModel([l.matrix_layer()]), cfg)
        for mem in rom.MEMORIES:
            np.testing.assert_array_equal(one[mem], fc[mem])


# -- folders that disagree with themselves ---------------------------------------------------

def edit_json(path, fn):
    man = json.loads(path.read_text())
    fn(man)
    path.write_text(json.dumps(man))


CONV = lambda m, i=0: m["layers"][i]["conv"]


@pytest.mark.parametrize("edit, message", [
    (lambda m: CONV(m).update(output=[4, 8, 8]),
     "layer 0 (c1): conv.output is [4, 8, 8], expected [4, 4, 4] (from input, out, kernel, "
     "stride, padding and pool)"),
    (lambda m: CONV(m).update(input=[3, 8, 8]),
     "layer 0 (c1): in is 18, but a 3x3 kernel over 3 channel(s) at p 2 (the patch order) makes "
     "36 patch entries"),
    (lambda m: CONV(m)["pool"].update(kind="min"),
     "layer 0 (c1): conv: pool kind must be one of max, avg, not 'min'"),
    (lambda m: CONV(m).update(dilation=[1, 1]), "layer 0 (c1): conv: unexpected field 'dilation'"),
    (lambda m: CONV(m).update(stride=[1]),
     "layer 0 (c1): conv: stride must be 2 integers >= 1, not [1]"),
    (lambda m: CONV(m, 1).update(input=[4, 4, 5], output=[6, 2, 3]),
     "layer 1 (c2): in is 80, but layer 0 (c1) gives 64 outputs"),
    (lambda m: m.update(format_version=1),
     "layer 0 has a conv field, but format_version 1 holds fully connected layers only"),
    (lambda m: [d.pop("conv", None) for d in m["layers"]] and m.update(format_version=2),
     "layer 1 (c2): in is 36, but layer 0 (c1) gives 4 outputs"),
    (lambda m: m.update(flatten="whc"), 'flatten must be one of "chw", "hwc", not "whc"'),
    (lambda m: m.update(flatten=["hwc"]), 'flatten must be one of "chw", "hwc", not ["hwc"]'),
    (lambda m: m.update(flatten=None), 'flatten must be one of "chw", "hwc", not null'),
    (lambda m: m.pop("flatten"), "missing field 'flatten' (format_version 3: the order the FC "
     "layer after a convolution takes its inputs in)"),
    (lambda m: m.update(format_version=2), "unexpected field 'flatten' in format_version 2, "
     "which flattens in (C, H, W) order"),
    (lambda m: m.update(format_version=4), "written by a newer permdeal: format_version 4, this "
     "reader knows conv networks up to 3"),
])
def test_edited_manifest_is_refused(tmp_path, capsys, edit, message):
    _, _, folder = write_cnn(tmp_path)
    edit_json(folder / "manifest.json", edit)
    with pytest.raises(PermdealError) as e:
        mdl.load(folder)
    assert str(e.value) == f"{folder / 'manifest.json'}: {message}" or \
        str(e.value).startswith(f"{folder / 'manifest.json'}: {message}")
    capsys.readouterr()
    assert main(["check", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_shape_mismatch_between_conv_layers(tmp_path):
    """Same flattened size, other shape: the second conv's input must be the first's output."""
    _, _, folder = write_cnn(tmp_path)
    edit_json(folder / "manifest.json", lambda m: CONV(m, 1).update(
        input=[4, 2, 8], padding=[1, 0, 1, 0], stride=[1, 4]))  # output still 6x2x2
    with pytest.raises(PermdealError, match=r"layer 1 \(c2\): conv.input is \[4, 2, 8\], but "
                       r"layer 0 \(c1\) gives \[4, 4, 4\]"):
        mdl.load(folder)


def test_weights_in_the_channel_padding_are_refused(tmp_path):
    """c1 has C = 1 channel padded to C' = 2 at p = 2: a weight there is refused."""
    _, _, folder = write_cnn(tmp_path)
    npz = folder / "model.npz"
    arrays = dict(np.load(npz))
    k, q = arrays["c1.k"], arrays["c1.q"].copy()
    # block (0, 0): position (0, 0); the weight of column 1 (padding) sits in row (1 - k) mod 2
    q[0, 0, (1 - k[0, 0]) % 2] = 7
    arrays["c1.q"] = q
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz.write_bytes(buf.getvalue())
    edit_json(folder / "manifest.json", lambda m: m["files"]["model.npz"].update(
        sha256=hashlib.sha256(buf.getvalue()).hexdigest()))
    with pytest.raises(PermdealError, match=r"manifest.json: layer 0 \(c1\): kernel position "
                       r"\(0, 0\): q has non-zero weights in the zero padding"):
        mdl.load(folder)


def test_rom_manifest_edits_are_refused(tmp_path):
    _, _, folder = write_cnn(tmp_path)
    mdl.write_rom(folder, tmp_path / "rom", pes=2, lanes=2)
    path = tmp_path / "rom" / "manifest.json"
    good = path.read_text()
    edit_json(path, lambda m: m.update(format_version=2))
    with pytest.raises(PermdealError, match="layer 0 has a conv field, but format_version 2 "
                       "holds fully connected layers only"):
        rom.model_from_images(tmp_path / "rom")
    path.write_text(good)
    edit_json(path, lambda m: CONV(m).update(padding=[0, 0, 0, 0]))
    with pytest.raises(PermdealError, match=r"layer 0 \(c1\): conv.output is \[4, 4, 4\], "
                       r"expected \[4, 3, 3\]"):
        rom.model_from_images(tmp_path / "rom")
    for edit, message in [
        (lambda m: m.update(flatten="CHW"), 'flatten must be one of "chw", "hwc", not "CHW"'),
        (lambda m: m.pop("flatten"), "missing field 'flatten' (format_version 4"),
        (lambda m: m.update(format_version=3), "unexpected field 'flatten' in format_version 3"),
        (lambda m: m.update(format_version=5), "written by a newer permdeal: format_version 5, "
         "this reader knows conv networks up to 4"),
    ]:
        path.write_text(good)
        edit_json(path, edit)
        with pytest.raises(PermdealError) as e:
            rom.model_from_images(tmp_path / "rom")
        assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


def fc_outputs_by_loops(net, codes, order):
    """The FC layer's output codes from the last conv layer's CHW output codes (the layer's own
    forward, tested against loops in tests/test_conv.py), its input flattened in ``order``
    ("chw" or "hwc") by loops over (c, h, w), then a dot product and write-back per output."""
    y = net.layers[1].forward(net.layers[0].forward(codes))
    fc = net.layers[2]
    w = fc.matrix.to_dense()
    cs, hs, ws = net.layers[1].out_shape
    out = np.zeros((len(codes), fc.shape[0]), np.int64)
    for b in range(len(codes)):
        acc = [0] * fc.shape[0]
        for c in range(cs):
            for h in range(hs):
                for wi in range(ws):
                    col = (c * hs + h) * ws + wi if order == "chw" else (h * ws + wi) * cs + c
                    for o in range(fc.shape[0]):
                        acc[o] += int(w[o, col]) * int(y[b, (c * hs + h) * ws + wi])
        row = [(a + (int(bias) << fc.fmts.bias_shift)) for a, bias in zip(acc, fc.bias)]
        s = fc.fmts.acc_frac - fc.fmts.out.frac
        lo, hi = -(1 << (fc.fmts.out.bits - 1)), (1 << (fc.fmts.out.bits - 1)) - 1
        out[b] = [min(max((v + (1 << (s - 1))) >> s if s > 0 else v << -s, lo), hi) for v in row]
    return out


def test_outputs_follow_the_hwc_order(tmp_path):
    net, x, folder = write_cnn(tmp_path)
    codes = net.quantize_input(x)[0]
    want = fc_outputs_by_loops(net, codes, "hwc")
    np.testing.assert_array_equal(net.forward(codes), want)
    np.testing.assert_array_equal(mdl.load(folder).forward(codes), want)


def test_format_2_folders_and_format_3_images_still_read_as_chw(tmp_path):
    """A folder written before the flatten field (format 2, as the released code writes it: this
    manifest without flatten) keeps its meaning, (C, H, W) order; so do its ROM images (format 3);
    and a format-3 folder / format-4 images may say "chw" themselves."""
    net, x, _ = write_cnn(tmp_path)
    old = ConvNet(net.layers, "permdiag", flatten="chw")
    codes = net.quantize_input(x)[0]
    want = fc_outputs_by_loops(old, codes, "chw")
    assert not np.array_equal(want, fc_outputs_by_loops(net, codes, "hwc"))  # the order matters
    folder = tmp_path / "old"
    folder.mkdir()
    old.write(folder)
    man = json.loads((folder / "manifest.json").read_text())
    assert man["format_version"] == 3 and man["flatten"] == "chw"
    np.testing.assert_array_equal(mdl.load(folder).forward(codes), want)
    edit_json(folder / "manifest.json", lambda m: (m.pop("flatten"), m.update(format_version=2)))
    back = mdl.load(folder)
    assert back.flatten == "chw"
    np.testing.assert_array_equal(back.forward(codes), want)
    assert main(["check", str(folder)]) == 0
    man, _ = mdl.write_rom(folder, tmp_path / "rom", pes=2, lanes=2)
    assert man["format_version"] == 4 and man["flatten"] == "chw"
    np.testing.assert_array_equal(rom.model_from_images(tmp_path / "rom").forward(codes), want)
    edit_json(tmp_path / "rom" / "manifest.json",
              lambda m: (m.pop("flatten"), m.update(format_version=3)))
    back = rom.model_from_images(tmp_path / "rom")
    assert back.flatten == "chw"
    np.testing.assert_array_equal(back.forward(codes), want)


def test_cli_compress_cnn_and_its_errors(tmp_path, capsys):
    net, _, _ = write_cnn(tmp_path)
    src = tmp_path / "cnn.npz"
    assert main(["compress", str(src), "--method", "smartdeal", "-o", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "4x4x4 -> 6x2x2" in out and "rom/ with 9 images" in out
    for argv, message in [
        (["--method", "smartdeal", "--prune", "0.5"], "--prune does not apply to a network "
         "with convolutions"),
        (["--p", "2", "--calibrate", str(tmp_path / "cal.npy"), "-o", str(src)],
         "cnn.npz: exists and is not a folder; not overwriting it"),
    ]:
        argv = ["compress", str(src)] + argv + ([] if "-o" in argv else ["-o",
                                                                          str(tmp_path / "x")])
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x").exists()
    # the PermDNN engine runs a PD CNN (docs/design.md 15), the SmartDeal engine a SmartDeal one
    # (16), with the layer units refused
    assert main(["gen", "--model", str(tmp_path / "permdiag"), "--pes", "2", "--lanes", "2",
                 "-o", str(tmp_path / "d")]) == 0
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert [w and w["kernel"] for w in man["conv"]["walks"]] == [[3, 3], [3, 3], [2, 2]]
    assert man["conv"]["pools"] == [["max", 4], None, None]
    capsys.readouterr()
    assert main(["gen", "--model", str(tmp_path / "s"), "--pes", "2", "--lanes", "2", "-o",
                 str(tmp_path / "d2")]) == 0
    man = json.loads((tmp_path / "d2" / "manifest.json").read_text())
    assert man["layers"][0]["conv"]["kernel"] == [3, 3]
    capsys.readouterr()
    err_gen = main(["gen", "--model", str(tmp_path / "s"), "--arch", "units", "--lanes", "2",
                    "-o", str(tmp_path / "d3")])
    assert err_gen == 2
    assert "layer c1 is a convolution; --arch units takes fully connected layers only so far" \
        in capsys.readouterr().err
