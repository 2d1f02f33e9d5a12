"""Convolutions in the golden model (docs/design.md 14): float conv and pooling, permuted-diagonal
and SmartDeal conv weights, bit-exact integer inference, each against a naive loop written here,
and the float-model .npz with conv layers."""

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden import float_model
from permdeal.golden import smartdeal as sd
from permdeal.golden.compress import QuantSpec
from permdeal.golden.conv import ConvPermDiag, ConvShape, Pool, conv2d, hwc_order, matrix_view
from permdeal.golden.conv_model import ConvNet, QuantConvLayer, compress_network
from permdeal.golden.float_model import FloatLayer
from permdeal.golden.formats import Fixed
from permdeal.golden.model import QuantLayer, load_float_model
from permdeal.golden.permdiag import PermDiag

SEED = 1418


def rng(offset=0):
    print(f"seed {SEED + offset}")
    return np.random.default_rng(SEED + offset)


# -- naive references, one value at a time ---------------------------------------------------

def naive_conv(x, w, b, stride, pad):
    """Plain loops over batch, output channel, output pixel and kernel; Python numbers."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    t, l, bo, r = pad
    oh, ow = (h + t + bo - kh) // stride[0] + 1, (wd + l + r - kw) // stride[1] + 1
    out = np.zeros((n, o, oh, ow), dtype=object)
    for bi in range(n):
        for oc in range(o):
            for i in range(oh):
                for j in range(ow):
                    s = b[oc]
                    for ic in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                y, xx = i * stride[0] + u - t, j * stride[1] + v - l
                                if 0 <= y < h and 0 <= xx < wd:
                                    s += w[oc, ic, u, v] * x[bi, ic, y, xx]
                    out[bi, oc, i, j] = s
    return out


def naive_pool(x, kind, k, s, codes=False):
    n, c, h, w = x.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    out = np.zeros((n, c, oh, ow), dtype=object)
    for idx in np.ndindex(n, c, oh, ow):
        bi, ci, i, j = idx
        vals = [x[bi, ci, i * s[0] + u, j * s[1] + v] for u in range(k[0]) for v in range(k[1])]
        if kind == "max":
            out[idx] = max(vals)
        elif codes:  # round half up: floor(mean + 1/2), exactly
            out[idx] = (2 * int(sum(vals)) + len(vals)) // (2 * len(vals))
        else:
            out[idx] = sum(vals) / len(vals)
    return out


def naive_writeback(acc, bias, fmts, relu):
    """docs/design.md section 3, one Python integer at a time."""
    v = int(acc) + (int(bias) << fmts.bias_shift)
    s = fmts.acc_frac - fmts.out.frac
    v = (v + (1 << (s - 1))) >> s if s > 0 else v << -s
    v = min(max(v, -(1 << (fmts.out.bits - 1))), (1 << (fmts.out.bits - 1)) - 1)
    return max(v, 0) if relu else v


def naive_int_layer(layer, x_codes, w_codes):
    """A quantized conv layer's output codes from its dense weight codes, by loops."""
    x = x_codes.reshape(len(x_codes), *layer.conv.in_shape).astype(object)
    acc = naive_conv(x, w_codes.astype(object), np.zeros(w_codes.shape[0], dtype=object),
                     layer.conv.stride, layer.conv.padding)
    y = np.vectorize(lambda a, b: naive_writeback(a, b, layer.fmts, layer.relu), otypes=[object])(
        acc, layer.bias[None, :, None, None])
    if layer.pool is not None:
        y = naive_pool(y, layer.pool.kind, layer.pool.size, layer.pool.stride, codes=True)
    return y.reshape(len(x_codes), -1)


def loop_hwc(a, shape):
    """The last axis of ``a``, a ``(C, H, W)`` feature map flattened channel by channel (or an FC
    weight's columns over it), reordered pixel by pixel: entry (h*W + w)*C + c, by loops."""
    cs, hs, ws = shape
    out = np.zeros_like(a)
    for c in range(cs):
        for h in range(hs):
            for w in range(ws):
                out[..., (h * ws + w) * cs + c] = a[..., (c * hs + h) * ws + w]
    return out


def loop_chw(a, shape):
    """Inverse of :func:`loop_hwc`, by loops."""
    cs, hs, ws = shape
    out = np.zeros_like(a)
    for c in range(cs):
        for h in range(hs):
            for w in range(ws):
                out[..., (c * hs + h) * ws + w] = a[..., (h * ws + w) * cs + c]
    return out


GEOMETRIES = [  # (in C, H, W), out channels, kernel, stride, padding (top, left, bottom, right)
    ((1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1)),
    ((3, 9, 7), 5, (5, 3), (2, 1), (2, 0, 1, 1)),
    ((2, 6, 6), 3, (1, 1), (2, 2), (0, 0, 0, 0)),
    ((4, 5, 8), 6, (2, 4), (1, 3), (0, 2, 1, 0)),
]


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: f"{g[2][0]}x{g[2][1]}s{g[3][0]}{g[3][1]}")
def test_float_conv_against_loops(geo):
    r = rng()
    in_shape, o, kernel, stride, pad = geo
    shape = ConvShape(in_shape, o, kernel, stride, pad)
    x = r.normal(size=(2, *in_shape))
    w = r.normal(size=shape.weight_shape)
    b = r.normal(size=o)
    got = conv2d(x, w, b, shape)
    want = naive_conv(x, w, b, stride, pad).astype(np.float64)
    assert got.shape == (2, *shape.out_shape) == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size, stride", [((2, 2), (2, 2)), ((3, 2), (1, 2))])
def test_pooling_against_loops(kind, size, stride):
    r = rng(1)
    x = r.normal(size=(2, 3, 7, 6))
    pool = Pool(kind, size, stride)
    np.testing.assert_allclose(pool(x), naive_pool(x, kind, size, stride).astype(np.float64),
                               rtol=1e-12)
    codes = r.integers(-9, 10, size=(2, 3, 7, 6))  # small codes: many exact halves (ties)
    want = naive_pool(codes, kind, size, stride, codes=True).astype(np.int64)
    np.testing.assert_array_equal(pool.codes(codes), want)


def test_avg_pool_codes_round_half_up():
    pool = Pool("avg", (2, 2), (2, 2))
    x = np.array([[1, 1], [0, 0]]) * np.ones((1, 1, 1, 1), np.int64)  # mean 0.5 -> 1
    assert pool.codes(x).item() == 1
    assert pool.codes(-x).item() == 0  # -0.5 -> 0 (half up)
    assert pool.codes(np.full((1, 1, 2, 2), -3) + np.array([[0, 0], [0, 1]])).item() == -3


def test_permdiag_per_kernel_position():
    r = rng(2)
    w = r.normal(size=(8, 8, 3, 3))
    pd = ConvPermDiag.from_dense(w, 4)
    dense = pd.to_dense()
    for u in range(3):
        for v in range(3):
            ref = PermDiag.from_dense(w[:, :, u, v], 4)
            np.testing.assert_array_equal(dense[:, :, u, v], ref.to_dense())
            blocks = dense[:, :, u, v].reshape(2, 4, 2, 4)
            assert np.all(np.count_nonzero(blocks, axis=(1,)) <= 1)  # one per block column
            assert np.all(np.count_nonzero(blocks, axis=(3,)) <= 1)  # one per block row
    assert pd.n_weights == 9 * 8 * 8 // 4
    # the float product per position is the dense convolution of the projected weights
    shape = ConvShape((8, 5, 5), 8, (3, 3), (1, 1), (1, 1, 1, 1))
    x = r.normal(size=(2, 8, 5, 5))
    got = pd.apply(shape.patches(x)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, conv2d(x, dense, np.zeros(8), shape), rtol=1e-12, atol=1e-12)


def test_smartdeal_matrix_view_is_the_authors_layout():
    """Row o of the matrix view, chunk c*KH + u (S = 3), is kernel row W[o, c, u, :]: one block
    Ce (C*KH x 3) @ B (3 x 3) per output channel."""
    r = rng(3)
    w = r.normal(size=(4, 5, 3, 3))
    blocks = sd.to_blocks(matrix_view(w), S=3)
    assert blocks.shape == (4, 15, 3)
    for o in range(4):
        for c in range(5):
            for u in range(3):
                np.testing.assert_array_equal(blocks[o, c * 3 + u], w[o, c, u])
    dec = sd.decompose(matrix_view(w), S=3)
    assert dec.ce.shape == (4, 15, 3) and dec.b.shape == (4, 3, 3)


def conv_net(r, pool="max"):
    """conv3x3 1->4 (pad 1), pool, conv3x3 4->6, FC -> 5 on 1x8x8 inputs."""
    c1 = ConvShape((1, 8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    p1 = Pool(pool, (2, 2), (2, 2))
    c2 = ConvShape((4, 4, 4), 6, (3, 3), (1, 1), (0, 0, 0, 0))
    return [FloatLayer("c1", r.normal(0, 0.5, c1.weight_shape), r.normal(0, 0.1, 4), c1, p1),
            FloatLayer("c2", r.normal(0, 0.3, c2.weight_shape), r.normal(0, 0.1, 6), c2),
            FloatLayer("fc", r.normal(0, 0.3, (5, 24)), r.normal(0, 0.1, 5))]


@pytest.mark.parametrize("method, pool", [("permdiag", "max"), ("permdiag", "avg"),
                                          ("smartdeal", "max")])
def test_integer_inference_is_bit_exact(method, pool):
    r = rng(4)
    layers = conv_net(r, pool)
    x = r.uniform(0, 1, size=(5, 64))
    spec = QuantSpec(act=12, weight=10, bias=12)
    net = compress_network(layers, method, p=2, spec=spec, calibration=x)
    codes, _ = net.quantize_input(x)
    trace = net.forward(codes, trace=True)
    for i, layer in enumerate(net.layers[:2]):
        assert isinstance(layer, QuantConvLayer)
        w = layer.weights.to_dense() if method == "permdiag" else layer.weights
        want = naive_int_layer(layer, trace[i], np.asarray(w, np.int64)).astype(np.int64)
        if i == 1 and method == "permdiag":  # PD's FC reads c2's map pixel by pixel (14.3)
            want = loop_hwc(want, layer.out_shape)
        np.testing.assert_array_equal(trace[i + 1], want)
    fc = net.layers[2]
    acc = trace[2].astype(object) @ (fc.matrix.to_dense() if method == "permdiag"
                                     else fc.weights).T.astype(object)
    want = [[naive_writeback(a, b, fc.fmts, False) for a, b in zip(row, fc.bias)] for row in acc]
    np.testing.assert_array_equal(trace[3], np.array(want, np.int64))
    # the fixed-point net follows the float net of its own (compressed) weights
    approx = [FloatLayer(l.name, _float_weights(q), l.bias, l.conv, l.pool)
              for l, q in zip(layers, net.layers)]
    if method == "permdiag":   # HWC columns to the float order
        approx[2].weight = loop_chw(approx[2].weight, (6, 2, 2))
    ref = float_model.forward(approx, x)
    assert np.max(np.abs(net.predict(x) - ref)) < 0.05 * np.max(np.abs(ref))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 4), (16, 4, 4), (5, 3, 1), (1, 7, 2)])
def test_hwc_order_against_a_loop(shape):
    want = loop_hwc(np.arange(int(np.prod(shape))), shape)
    assert hwc_order(shape).tolist() == want.tolist()
    x = rng(8).integers(-50, 50, size=(3, int(np.prod(shape))))
    np.testing.assert_array_equal(x[:, hwc_order(shape)], loop_hwc(x, shape))
    for bad in ((2, 3), (0, 2, 2), "chw"):
        with pytest.raises(PermdealError, match="a feature map's shape must be"):
            hwc_order(bad)


@pytest.mark.parametrize("method", ["permdiag", "smartdeal"])
def test_fc_after_conv_is_compressed_over_its_engines_columns(method):
    """The FC layer after a convolution: PD's float weight's columns put in HWC order (by loops),
    then projected (the PermDNN engine's order); SmartDeal's decomposed in the float model's
    (C, H, W) order (the SmartDeal engine's); the convolutions themselves as before."""
    r = rng(9)
    layers = conv_net(r)
    layers[2].weight, layers[2].bias = r.normal(0, 0.3, (8, 24)), r.normal(0, 0.1, 8)
    net = compress_network(layers, method, p=2, spec=QuantSpec(act=Fixed(16, 8)))
    assert net.flatten == {"permdiag": "hwc", "smartdeal": "chw"}[method]
    w_hwc = loop_hwc(layers[2].weight, (6, 2, 2))
    fc = net.layers[2]
    if method == "permdiag":
        ref, chw = PermDiag.from_dense(w_hwc, 2), PermDiag.from_dense(layers[2].weight, 2)
        np.testing.assert_array_equal(fc.matrix.k, ref.k)
        assert not np.array_equal(ref.k, chw.k)  # the order matters to the pattern
        np.testing.assert_array_equal(fc.matrix.to_dense() != 0, ref.to_dense() != 0)
    else:
        ref = sd.quantize(sd.decompose(layers[2].weight, S=3, E=3), 8)
        np.testing.assert_array_equal(fc.codes.codes, ref.codes)
        np.testing.assert_array_equal(fc.codes.b_int, ref.b_int)
    conv_only = compress_network(layers[:2], method, p=2, spec=QuantSpec(act=Fixed(16, 8)))
    for a, b in zip(net.layers[:2], conv_only.layers):
        np.testing.assert_array_equal(*(np.asarray(l.weights.to_dense() if method == "permdiag"
                                                   else l.weights) for l in (a, b)))


def test_dense_net_equals_the_float_order_exactly():
    """Dense (p = 1, as compare's dense format): the HWC network's outputs equal, value by value,
    those of the same codes with the FC layer over the CHW feature map, computed by loops."""
    r = rng(10)
    layers = conv_net(r)
    x = r.uniform(0, 1, size=(6, 64))
    net = compress_network(layers, "permdiag", p=1, spec=QuantSpec(act=12, weight=10, bias=12),
                           calibration=x)
    codes, _ = net.quantize_input(x)
    c1, c2, fc = net.layers
    y1 = naive_int_layer(c1, codes, np.asarray(c1.weights.to_dense(), np.int64))
    y2 = naive_int_layer(c2, y1, np.asarray(c2.weights.to_dense(), np.int64))  # CHW, (6, 24)
    w_chw = loop_chw(fc.matrix.to_dense(), (6, 2, 2))  # the float order's columns
    want = np.zeros((len(x), 5), np.int64)
    for b in range(len(x)):
        for o in range(5):
            acc = sum(int(w_chw[o, j]) * int(y2[b, j]) for j in range(24))
            want[b, o] = naive_writeback(acc, fc.bias[o], fc.fmts, False)
    np.testing.assert_array_equal(net.forward(codes), want)
    # the same network read the old way (CHW flatten, columns put back) gives the same codes
    chw = QuantLayer(fc.name, PermDiag((5, 24), 1, np.zeros((5, 24), np.int64),
                                       w_chw[:, :, None].astype(np.int64)),
                     fc.bias, fc.fmts, fc.relu)
    old = ConvNet([c1, c2, chw], flatten="chw")
    np.testing.assert_array_equal(old.forward(codes), want)
    # and in floats the permutation with the matching flatten is the float model's product
    w = layers[2].weight
    fmap = float_model.forward(layers[:2], x)  # (C, H, W) flattened, before the ReLU
    got = np.maximum(loop_hwc(fmap, (6, 2, 2)), 0) @ loop_hwc(w, (6, 2, 2)).T + layers[2].bias
    np.testing.assert_allclose(got, float_model.forward(layers, x), rtol=1e-12, atol=1e-12)


def _float_weights(q):
    if isinstance(q, QuantConvLayer):
        w = q.weights.to_dense() if isinstance(q.weights, ConvPermDiag) else q.weights
        return np.asarray(w, np.float64) * q.fmts.weight.step
    w = q.matrix.to_dense() if hasattr(q, "matrix") else q.weights
    return np.asarray(w, np.float64) * q.fmts.weight.step


def test_counts_and_storage():
    r = rng(5)
    layers = conv_net(r)
    pd = compress_network(layers, "permdiag", p=2, spec=QuantSpec(act=Fixed(16, 8)))
    c1, c2, fc = pd.report()
    assert c1["weights_dense"] == 4 * 1 * 9 and c1["macs_dense"] == 36 * 64
    # 4x1 matrices at p = 2: 2 blocks of 2 weights, one of each in the padding column
    assert c1["weights_stored"] == 9 * 2 and c1["macs"] == 18 * 64
    assert c2["weights_stored"] == 6 * 4 * 9 // 2 and c2["macs"] == c2["weights_stored"] * 4
    assert c2["bits"] == 9 * (3 * 2) * (2 * pd.layers[1].fmts.weight.bits + 1)
    assert fc["weights_stored"] == 5 * 24 // 2  # 3 x 12 blocks, the last block-row half padding
    assert fc["bits"] == 3 * 12 * (2 * pd.layers[2].fmts.weight.bits + 1)
    sdn = compress_network(layers, "smartdeal", spec=QuantSpec(act=Fixed(16, 8)))
    c2 = sdn.report()[1]
    assert c2["bits"] == 6 * 12 * 3 * 5 + 6 * 9 * 8  # Ce codes of 5 bits, B codes of 8


def test_smartdeal_needs_kernel_rows_of_S():
    r = rng(6)
    c = ConvShape((2, 6, 6), 3, (3, 2))
    layer = FloatLayer("odd", r.normal(size=c.weight_shape), np.zeros(3), c)
    with pytest.raises(PermdealError, match="layer odd: SmartDeal splits kernel rows into chunks "
                       "of S = 3; the 3x2 kernel's rows are 2 wide"):
        compress_network([layer], "smartdeal")


# -- the float-model .npz with conv layers -------------------------------------------------------

def test_npz_round_trip(tmp_path):
    layers = conv_net(rng(7), "avg")
    layers[1].conv = ConvShape((4, 4, 4), 6, (3, 3), (2, 1), (1, 0, 0, 1))
    layers[2].weight = np.ones((5, 6 * 2 * 3))
    float_model.save(layers, tmp_path / "m.npz")
    again = load_float_model(tmp_path / "m.npz")
    for a, b in zip(layers, again):
        assert (a.name, a.conv, a.pool) == (b.name, b.conv, b.pool)
        np.testing.assert_array_equal(a.weight, b.weight)
    with np.load(tmp_path / "m.npz") as z:
        assert z.files[:3] == ["input_shape", "c1.weight", "c1.bias"]
        assert z["c1.avgpool"].tolist() == [2, 2, 2, 2] and z["c2.padding"].tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize("arrays, message", [
    ({"c.weight": np.ones((2, 1, 3, 3))}, "c is a convolution but the model has no input_shape"),
    ({"input_shape": np.array([2, 5, 5]), "c.weight": np.ones((2, 1, 3, 3))},
     "layers do not chain: c.weight takes 1 channels but input_shape gives 2"),
    ({"fc.weight": np.ones((2, 2)), "fc.stride": np.array([1, 1])},
     "fc.stride belongs to a convolution, but fc.weight is 2-D"),
    ({"input_shape": np.array([1, 5, 5]), "c.weight": np.ones((2, 1, 3, 3)),
      "c.maxpool": np.array([2, 2, 2, 2]), "c.avgpool": np.array([2, 2, 2, 2])},
     "c has both c.maxpool and c.avgpool"),
    ({"input_shape": np.array([1, 5, 5]), "c.weight": np.ones((2, 1, 3, 3)),
      "c.padding": np.array([1, 1])}, "c.padding must be 4 integers >= 0"),
    ({"input_shape": np.array([1, 5, 5]), "c.weight": np.ones((2, 1, 3, 3)),
      "c.maxpool": np.array([4, 4, 1, 1])}, "layer c: max pool 4x4 does not fit a 3x3 input"),
    ({"input_shape": np.array([1, 5, 5]), "c.weight": np.ones((2, 1, 3, 3)),
      "fc.weight": np.ones((3, 19))},
     "c gives 18 outputs (2x3x3 flattened) but fc.weight takes 19"),
    ({"fc.weight": np.ones((4, 3)), "c.weight": np.ones((2, 1, 1, 1))},
     "c is a convolution after the fully connected layer fc"),
])
def test_npz_conv_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(PermdealError) as e:
        load_float_model(tmp_path / "m.npz")
    assert message in str(e.value) and "m.npz" in str(e.value)
