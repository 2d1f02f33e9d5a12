"""Conv training with the structure kept (golden/conv_train.py, docs/design.md 14.5): gradients
against finite differences, structures kept, and the digits study's accuracies."""

import dataclasses

import numpy as np

from permdeal.golden import conv_train as ct
from permdeal.golden import smartdeal as sd
from permdeal.golden.conv import ConvPermDiag, ConvShape, Pool
from permdeal.golden.float_model import FloatLayer
from permdeal.golden.permdiag import PermDiag

SEED = 1405


def tiny(r):
    c1 = ConvShape((2, 6, 5), 3, (3, 2), (1, 1), (1, 0, 1, 1))
    c2 = ConvShape((3, 3, 2), 4, (2, 2), (2, 1), (1, 1, 0, 0))
    return [FloatLayer("c1", r.normal(0, 0.6, c1.weight_shape), r.normal(0, 0.1, 3), c1,
                       Pool("max", (2, 2), (2, 2))),
            FloatLayer("c2", r.normal(0, 0.6, c2.weight_shape), r.normal(0, 0.1, 4), c2),
            FloatLayer("fc", r.normal(0, 0.6, (5, 4 * 2 * 2)), r.normal(0, 0.1, 5))]


def test_gradients_against_finite_differences():
    print(f"seed {SEED}")
    r = np.random.default_rng(SEED)
    layers = tiny(r)
    X, y = r.normal(size=(4, 60)), r.integers(0, 5, size=4)
    _, dws, dbs = ct.loss_and_grads(layers, X, y)
    eps = 1e-6
    for i, l in enumerate(layers):
        for what, arr, grad in (("weight", l.weight, dws[i]), ("bias", l.bias, dbs[i])):
            for idx in list(np.ndindex(arr.shape))[::3]:
                def loss(delta, i=i, what=what, idx=idx):
                    a = getattr(layers[i], what).copy()
                    a[idx] += delta
                    changed = dataclasses.replace(layers[i], **{what: a})
                    return ct.loss_and_grads(layers[:i] + [changed] + layers[i + 1:], X, y)[0]
                num = (loss(eps) - loss(-eps)) / (2 * eps)
                assert abs(num - grad[idx]) <= 1e-6 + 1e-5 * abs(num), (l.name, what, idx)


def test_structures_are_kept():
    print(f"seed {SEED + 1}")
    r = np.random.default_rng(SEED + 1)
    layers = tiny(r)
    X, y = r.normal(size=(16, 60)), r.integers(0, 5, size=16)
    pd = [ct.dense_params(layers[0].weight), ct.pd_params(layers[1].weight, 2),
          ct.pd_params(layers[2].weight, 2)]
    trained = ct.train(layers, pd, X, y, epochs=3, seed=0)
    w = trained[1].weight
    assert np.all(w[~pd[1].mask] == 0) and np.any(w != layers[1].weight)
    again = ConvPermDiag.from_dense(w, 2)  # the same pattern, every weight kept
    np.testing.assert_array_equal(again.to_dense(), w)
    sdp = [ct.sd_params(l.weight) for l in layers[:2]] + [ct.dense_params(layers[2].weight)]
    keep0 = sdp[1].keep.copy()
    trained = ct.train(layers, sdp, X, y, epochs=3, seed=0)
    dec = sdp[1].decomposition()
    assert np.all(dec.ce[~keep0] == 0)
    sd.encode_ce(dec.ce, dec.e_min, dec.E)  # every Ce on the grid (refuses anything else)
    np.testing.assert_allclose(trained[1].weight.reshape(4, -1), dec.to_dense(), rtol=1e-12)


def hwc_by_loops(shape):
    """HWC index -> CHW index of a (C, H, W) feature map, by loops."""
    cs, hs, ws = shape
    out = [0] * (cs * hs * ws)
    for c in range(cs):
        for h in range(hs):
            for w in range(ws):
                out[(h * ws + w) * cs + c] = (c * hs + h) * ws + w
    return np.array(out)


def test_fc_structure_is_kept_over_hwc_columns():
    """The FC layer after the convolutions keeps its PD pattern / SmartDeal chunks over the
    feature map's HWC columns; the float layers it gives stay in (C, H, W) order."""
    print(f"seed {SEED + 2}")
    r = np.random.default_rng(SEED + 2)
    layers = tiny(r)
    X, y = r.normal(size=(16, 60)), r.integers(0, 5, size=16)
    cols = hwc_by_loops((4, 2, 2))
    assert ct.input_orders(layers)[2].tolist() == cols.tolist()
    pd = [ct.dense_params(layers[0].weight), ct.dense_params(layers[1].weight),
          ct.pd_params(layers[2].weight, 2, cols)]
    before = pd[2].structured().copy()
    np.testing.assert_array_equal(pd[2].weight()[:, cols], before)
    trained = ct.train(layers, pd, X, y, epochs=3, seed=0)
    w_hwc = trained[2].weight[:, cols]
    assert np.all(w_hwc[~pd[2].mask] == 0) and np.any(w_hwc != before)
    again = PermDiag.from_dense(w_hwc, 2)  # the pattern over HWC columns, every weight kept
    np.testing.assert_array_equal(again.to_dense(), w_hwc)
    sdp = [ct.dense_params(layers[0].weight), ct.dense_params(layers[1].weight),
           ct.sd_params(layers[2].weight, 4, 3, cols)]
    trained = ct.train(layers, sdp, X, y, epochs=3, seed=0)
    dec = sdp[2].decomposition()
    np.testing.assert_allclose(trained[2].weight[:, cols], dec.to_dense(), rtol=1e-12)
    # gradient: the float network's dW (CHW columns) reaches the structure in HWC order
    dW = r.normal(size=(5, 16))
    np.testing.assert_array_equal(pd[2].grads(dW)[0], dW[:, cols] * pd[2].mask)


def test_digits_cnn_study():
    """conv3x3 1->8, conv3x3 8->16, pool, FC->10: dense float >= 98%; PD (p = 1, 4, 4) and
    SmartDeal, fine-tuned, in bit-exact 16-bit fixed point within 1.5 points of dense."""
    res = ct.digits_cnn_study(seed=0)
    print({k: v for k, v in res.items() if not k.endswith("report")})
    assert res["dense"] >= 0.98
    assert res["pd_fixed"] >= res["dense"] - 0.015
    assert res["sd_fixed"] >= res["dense"] - 0.015
    conv2 = res["pd_report"][1]
    assert conv2["weights_stored"] * 4 == conv2["weights_dense"]
