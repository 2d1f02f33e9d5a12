"""``permdeal compare`` of a conv network (docs/design.md 14.7) and the digits CNN through the
golden flow (``permdeal train --cnn``, ONNX export, import, compress, folders read back): counts
against loops written here, folders equal to the networks in memory on all 450 test images."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from permdeal.api import compare_conv
from permdeal.api.compare import CompareOptions
from permdeal.cli import main
from permdeal.golden import float_model
from permdeal.golden.conv import ConvShape, Pool
from permdeal.golden.conv_model import QuantConvLayer, block_sizes
from permdeal.golden.conv_train import accuracy
from permdeal.golden.float_model import FloatLayer
from permdeal.golden.onnx_import import import_model
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.train import load_digits_split

SEED = 1807


def rng(offset=0):
    print(f"seed {SEED + offset}")
    return np.random.default_rng(SEED + offset)


def small_cnn(r):
    """conv 3x3 3->8 pad 1 (6x6) + avg pool 2 (3x3), conv 3x3 8->4 (1x1), FC 4 -> 3."""
    c1 = ConvShape((3, 6, 6), 8, (3, 3), (1, 1), (1, 1, 1, 1))
    c2 = ConvShape((8, 3, 3), 4, (3, 3))
    return [FloatLayer("a", r.normal(0, 0.5, c1.weight_shape), r.normal(0, 0.1, 8), c1,
                       Pool("avg", (2, 2), (2, 2))),
            FloatLayer("b", r.normal(0, 0.3, c2.weight_shape), r.normal(0, 0.1, 4), c2),
            FloatLayer("c", r.normal(0, 0.3, (3, 4)), r.normal(0, 0.1, 3))]


def naive_counts(l, fmt_bits):
    """(stored weights, storage bits, MACs per image) of one compressed layer, by loops."""
    if isinstance(l, QuantConvLayer):
        mats, pixels = (l.weights.mats if l.is_permdiag else None), l.conv.positions
    else:
        mats, pixels = ([l.matrix] if hasattr(l, "matrix") else None), 1
    if mats is None:  # SmartDeal: every weight stored as Ce and B codes
        c = l.codes
        n = int(np.prod(l.conv.weight_shape if isinstance(l, QuantConvLayer) else l.shape))
        return n, c.codes.size * (c.E + 2) + c.b_int.size * c.b_bits, n * pixels
    stored = bits = 0
    for m in mats:
        (o, c), p = m.shape, m.p
        mb, nb = m.blocks
        for i in range(mb):
            for j in range(nb):
                bits += p * fmt_bits + (p - 1).bit_length()
                for r in range(p):
                    if i * p + r < o and j * p + (r + int(m.k[i, j])) % p < c:
                        stored += 1
    return stored, bits, stored * pixels


def test_counts_per_layer_against_loops():
    r = rng(1)
    layers = small_cnn(r)
    out, res, X = compare_conv.compare_conv(CompareOptions(model="m.npz", p=4), layers,
                                            CompareOptions())
    assert out["settings"]["p"] == [1, 4, 4] == block_sizes(layers, 4)  # 3 channels < p: dense
    assert [f["accuracy"] for f in out["formats"]] == [None] * 3 and len(X) == 4
    for f in out["formats"]:
        net = res[f["format"]]["net"]
        for l, row, fl in zip(net.layers, f["layers"], layers):
            stored, bits, macs = naive_counts(l, l.fmts.weight.bits)
            assert (row["weights_stored"], row["bits"], row["macs"]) == (stored, bits, macs)
            assert row["weights_dense"] == fl.weight.size
            pixels = fl.conv.positions if fl.is_conv else 1
            assert row["macs_dense"] == fl.weight.size * pixels
        assert f["total"]["macs"] == sum(row["macs"] for row in f["layers"])
    # conv b: 4 x 8 at p = 4, 9 positions of 2 blocks of 4 weights; 1 output pixel
    pd = out["formats"][1]["layers"][1]
    assert pd["weights_stored"] == 9 * 2 * 4 and pd["macs"] == 72


def wide_cnn(r):
    """conv 3x3 2->4 pad 1 (5x4), max pool 2 (2x2), FC 16 -> 8: an FC layer whose input order
    matters (4 channels x 2 x 2 pixels)."""
    c1 = ConvShape((2, 5, 4), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    return [FloatLayer("a", r.normal(0, 0.5, c1.weight_shape), r.normal(0, 0.1, 4), c1,
                       Pool("max", (2, 2), (2, 2))),
            FloatLayer("f", r.normal(0, 0.3, (8, 16)), r.normal(0, 0.1, 8))]


def hwc_columns_by_loops(w, shape):
    """An FC weight over a (C, H, W)-flattened feature map, columns reordered pixel by pixel."""
    cs, hs, ws = shape
    out = np.zeros_like(w)
    for c in range(cs):
        for h in range(hs):
            for x in range(ws):
                out[:, (h * ws + x) * cs + c] = w[:, (c * hs + h) * ws + x]
    return out


def test_fc_after_conv_in_hwc_order_and_dense_exact():
    """compare's three networks: the FC layer after the convolution takes the feature map pixel by
    pixel; PD projects the float weight with its columns in that order (by loops here); dense's
    outputs equal, value by value, the float order's (CHW feature map, float columns) by loops."""
    r = rng(5)
    layers = wide_cnn(r)
    out, res, X = compare_conv.compare_conv(CompareOptions(model="m.npz", p=2, vectors=6),
                                            layers, CompareOptions())
    assert out["settings"]["p"] == [2, 2]
    w_hwc = hwc_columns_by_loops(layers[1].weight, (4, 2, 2))
    pd_fc = res["permdiag"]["net"].layers[1]
    np.testing.assert_array_equal(pd_fc.matrix.k, PermDiag.from_dense(w_hwc, 2).k)
    assert not np.array_equal(pd_fc.matrix.k, PermDiag.from_dense(layers[1].weight, 2).k)
    for key, order in (("dense", "hwc"), ("permdiag", "hwc"), ("smartdeal", "chw")):
        assert res[key]["net"].flatten == order
        assert res[key]["layers"][1].weight.shape == (8, 16)  # float layers: the float order
    net = res["dense"]["net"]
    codes, _ = net.quantize_input(X)
    conv, fc = net.layers
    fmap = conv.forward(codes)                                   # (C, H, W) flattened
    w = fc.matrix.to_dense()                                     # HWC columns
    want = np.zeros((len(X), 8), np.int64)
    for b in range(len(X)):
        for o in range(8):
            acc = 0
            for c in range(4):
                for h in range(2):
                    for x in range(2):
                        acc += int(w[o, (h * 2 + x) * 4 + c]) * int(fmap[b, (c * 2 + h) * 2 + x])
            v = acc + (int(fc.bias[o]) << fc.fmts.bias_shift)
            s = fc.fmts.acc_frac - fc.fmts.out.frac
            v = (v + (1 << (s - 1))) >> s if s > 0 else v << -s
            want[b, o] = min(max(v, -(1 << (fc.fmts.out.bits - 1))),
                             (1 << (fc.fmts.out.bits - 1)) - 1)
    np.testing.assert_array_equal(net.forward(codes), want)
    # the dense FC's codes are the float weight's, columns in HWC order
    wq = fc.fmts.weight.quantize(hwc_columns_by_loops(layers[1].weight, (4, 2, 2)))[0]
    np.testing.assert_array_equal(w, wq)


@pytest.mark.parametrize("argv, message", [
    (["--k", "8"], "--k does not apply to a conv network"),
    (["--plot", "x.png"], "--plot draws the FC comparison"),
    (["--data", "digits"], "--data digits needs a model of 64 inputs and 10 outputs; "),
    (["--data", "digits", "--vectors", "3"], "--vectors sets random inputs"),
    (["--p", "0"], "--p must be"),
])
def test_refused_options(tmp_path, capsys, argv, message):
    float_model.save(small_cnn(rng(2)), tmp_path / "m.npz")
    assert main(["compare", "--model", str(tmp_path / "m.npz"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_outputs_never_overwrite_the_model(tmp_path, capsys):
    model = tmp_path / "m.npz"
    float_model.save(small_cnn(rng(3)), model)
    before = model.read_bytes()
    for argv in (["--json", str(model)], ["-o", str(model)], ["-o", str(tmp_path)]):
        assert main(["compare", "--model", str(model), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(model.parent) in err, err
    assert model.read_bytes() == before


def test_digits_cnn_through_the_golden_flow(tmp_path, capsys):
    """permdeal train --cnn (1 epoch here) writes the ONNX file torch.onnx.export would; it
    matches onnxruntime, imports to the same layers, and compare -o on digits writes PD and
    SmartDeal folders whose reader gives the in-memory networks' outputs on all 450 images."""
    onnx_path = tmp_path / "cnn.onnx"
    assert main(["train", "--cnn", "--epochs", "1", "-o", str(onnx_path)]) == 0
    assert "dense digits CNN (conv1 8x1x3x3, conv2 16x8x3x3 + max pool, fc 10x256)" in \
        capsys.readouterr().out
    layers = import_model(onnx_path)
    _, _, X_te, y_te = load_digits_split(0)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": X_te.reshape(-1, 1, 8, 8).astype(np.float32)})[0]
    ours = float_model.forward(layers, X_te.astype(np.float32))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert [l.name for l in layers] == ["0", "2", "6"]
    out_dir = tmp_path / "cmp"
    assert main(["compare", "--model", str(onnx_path), "--data", "digits", "--finetune-epochs",
                 "1", "-o", str(out_dir)]) == 0
    text = capsys.readouterr().out
    for key in ("permdiag", "smartdeal"):
        assert f"{key}/: read back, 450/450 outputs equal to the network in memory" in text
    res = json.loads((out_dir / "compare.json").read_text())
    assert res["folders"] == {k: {"equal": 450, "inputs": 450} for k in ("permdiag",
                                                                          "smartdeal")}
    dense = res["formats"][0]
    assert dense["accuracy"]["float"] == accuracy(layers, X_te, y_te)
    man = json.loads((out_dir / "permdiag" / "manifest.json").read_text())
    assert man["source"]["file"] == "cnn.onnx" and man["layers"][1]["p"] == 4
    assert man["format_version"] == 3 and man["flatten"] == "hwc"
    assert main(["check", str(out_dir / "smartdeal")]) == 0
    assert main(["rom", str(out_dir / "permdiag"), "--pes", "2", "--lanes", "2", "-o",
                 str(tmp_path / "rom")]) == 0


def test_train_cnn_refuses_mlp_flags(tmp_path, capsys):
    assert main(["train", "--cnn", "--hidden", "32", "-o", str(tmp_path / "m.npz")]) == 2
    assert "--hidden does not apply to --cnn" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()
