"""SmartDeal fine-tuning of MLPs (golden/smartdeal_train.py)."""

import dataclasses
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.smartdeal import (Decomposition, from_blocks, quantize, rebuild_float,
                                       to_blocks)
from permdeal.golden.smartdeal_train import (SmartDealMLP, finetune, quantized_mlp,
                                             smartdeal_digits_study, smartdeal_loss_and_grads,
                                             smartdeal_mlp, storage_totals)
from permdeal.golden.train import (MLP, init_mlp, load_digits_split, loss_and_grads, train)

# 8 x 7 and 3 x 8 with S = 3: r = 3 chunks per row (the last padded), blocks of 2 chunks (the last
# block of a row padded with a zero chunk); pruning one chunk of 3 per output gives frozen zeros.
TINY_SIZES = (7, 8, 3)
TINY_OPTS = dict(S=3, E=3, rows_per_block=2, prune=0.34)


def exact(msg):
    return "^" + re.escape(msg) + "$"


def _tiny_data(seed=1, n=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, TINY_SIZES[0])), rng.integers(0, TINY_SIZES[-1], size=n)


def _tiny_model(compress_last=True):
    dense = init_mlp(TINY_SIZES, seed=3)
    rng = np.random.default_rng(4)
    dense = MLP(dense.weights, tuple(rng.normal(size=b.shape) * 0.1 for b in dense.biases))
    return smartdeal_mlp(dense, **TINY_OPTS, compress_last=compress_last)


def _replace(model, l, **kw):
    layers, biases = list(model.layers), list(model.biases)
    if "bias" in kw:
        biases[l] = kw.pop("bias")
    if "dense" in kw:
        layers[l] = kw.pop("dense")
    if kw:
        layers[l] = dataclasses.replace(layers[l], **kw)
    return SmartDealMLP(tuple(layers), tuple(biases))


def _loss(model, X, y):
    return smartdeal_loss_and_grads(model, X, y)[0]


def _numeric(model, X, y, l, field, value, eps=1e-6):
    """Central differences of the loss w.r.t. every entry of ``value`` (field of layer ``l``)."""
    out = np.zeros_like(value)
    for idx in np.ndindex(value.shape):
        hi, lo = value.copy(), value.copy()
        hi[idx] += eps
        lo[idx] -= eps
        out[idx] = (_loss(_replace(model, l, **{field: hi}), X, y)
                    - _loss(_replace(model, l, **{field: lo}), X, y)) / (2 * eps)
    return out


def _pruned_rows(dec):
    """``(blocks, h)`` bool: Ce rows of chunks pruned by structured sparsity."""
    m, _ = dec.shape
    chunks = np.repeat(dec.pruned, dec.S, axis=1)  # (m, r * S): the layout of the padded W
    return to_blocks(chunks, dec.S, dec.rows_per_block).any(axis=-1)


def _on_grid(dec):
    c = np.abs(dec.ce[dec.ce != 0])
    f, k = np.frexp(c)
    return bool(np.all(f == 0.5) and np.all(k - 1 >= dec.e_min) and np.all(k - 1 <= dec.e_max))


@pytest.fixture(scope="module")
def digits_small():
    """A small digits subset and a briefly trained dense MLP on it."""
    X_tr, y_tr, X_te, y_te = load_digits_split(seed=0)
    X, y = X_tr[:300], y_tr[:300]
    return X, y, train(init_mlp((64, 32, 10), seed=0), X, y, epochs=15, seed=0)


# -- model ----------------------------------------------------------------------------------------

def test_conversion_decomposes_every_layer():
    model = _tiny_model()
    assert model.decomposed == (True, True)
    assert model.sizes == TINY_SIZES
    for (_, W, _), dec in zip(model.dense_weights(), model.layers):
        assert isinstance(dec, Decomposition) and dec.pruned is not None and dec.pruned.any()
        np.testing.assert_array_equal(W, from_blocks(dec.ce @ dec.b, dec.shape))
        assert _on_grid(dec)
    X, _ = _tiny_data()
    np.testing.assert_array_equal(model.logits(X), model.to_mlp().logits(X))


def test_compress_last_false_keeps_the_output_layer_dense():
    dense = init_mlp(TINY_SIZES, seed=3)
    model = smartdeal_mlp(dense, compress_last=False)
    assert model.decomposed == (True, False)
    np.testing.assert_array_equal(model.layers[1], dense.weights[1].to_dense())


# -- gradients ------------------------------------------------------------------------------------

def test_ste_gradient_is_the_dense_gradient_mapped_through_b():
    model = _tiny_model()
    X, y = _tiny_data()
    loss, dces, dbases, dbiases = smartdeal_loss_and_grads(model, X, y)
    dense_loss, dws, dbs = loss_and_grads(model.to_mlp(), X, y)
    assert loss == pytest.approx(dense_loss, rel=1e-12)
    for dec, dce, dbase, dw, db, dbias in zip(model.layers, dces, dbases, dws, dbs, dbiases):
        dX = to_blocks(dw[..., 0], dec.S, dec.rows_per_block)
        np.testing.assert_allclose(dce, (dX @ np.swapaxes(dec.b, 1, 2)) * (dec.ce != 0),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dbase, np.swapaxes(dec.ce, 1, 2) @ dX, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dbias, db, rtol=1e-12, atol=1e-15)


def test_gradient_matches_finite_differences():
    model = _tiny_model()
    X, y = _tiny_data()
    _, dces, dbases, dbiases = smartdeal_loss_and_grads(model, X, y)
    for l, dec in enumerate(model.layers):
        np.testing.assert_allclose(dbases[l], _numeric(model, X, y, l, "b", dec.b),
                                   rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(dbiases[l], _numeric(model, X, y, l, "bias", model.biases[l]),
                                   rtol=1e-5, atol=1e-8)
        # STE: the latent Ce gets dL/dCe at the stored (projected) Ce, zero outside the mask.
        keep = dec.ce != 0
        assert np.any(~keep), "the tiny net must have frozen zeros"
        num = _numeric(model, X, y, l, "ce", dec.ce)
        np.testing.assert_allclose(dces[l][keep], num[keep], rtol=1e-5, atol=1e-8)
        assert np.all(dces[l][~keep] == 0.0)


def test_dense_layer_gradient_matches_finite_differences():
    model = _tiny_model(compress_last=False)
    X, y = _tiny_data()
    _, dces, dbases, _ = smartdeal_loss_and_grads(model, X, y)
    assert dbases[1] is None and dces[1].shape == (3, 8)
    np.testing.assert_allclose(dces[1], _numeric(model, X, y, 1, "dense", model.layers[1]),
                               rtol=1e-5, atol=1e-8)


# -- fine-tuning ----------------------------------------------------------------------------------

def test_mask_stays_frozen_and_ce_stays_on_the_grid():
    model = _tiny_model()
    X, y = _tiny_data(n=40)
    tuned = finetune(model, X, y, epochs=30, lr=3e-2, batch_size=8, seed=0)
    moved = 0
    for before, after in zip(model.layers, tuned.layers):
        assert after.ce.shape == before.ce.shape and after.b.shape == before.b.shape
        assert (after.e_min, after.E, after.threshold) == (before.e_min, before.E, before.threshold)
        assert np.all(after.ce[before.ce == 0] == 0.0), "frozen zeros must stay zero"
        pruned = _pruned_rows(before)
        assert pruned.any() and np.all(after.ce[pruned] == 0.0), "pruned rows must stay zero"
        assert _on_grid(after)
        moved += int(np.count_nonzero(after.ce != before.ce))
        enc = quantize(after, 8)  # a valid Decomposition: encode_ce accepts every Ce entry
        np.testing.assert_allclose(rebuild_float(enc), after.to_dense(), atol=0.05)
    assert moved, "fine-tuning must change some Ce entries"


def test_finetune_does_not_change_its_input():
    model = _tiny_model()
    ce = [d.ce.copy() for d in model.layers]
    b = [d.b.copy() for d in model.layers]
    X, y = _tiny_data()
    finetune(model, X, y, epochs=2, lr=1e-2)
    for d, c0, b0 in zip(model.layers, ce, b):
        np.testing.assert_array_equal(d.ce, c0)
        np.testing.assert_array_equal(d.b, b0)


def test_finetune_lowers_the_training_loss(digits_small):
    X, y, dense = digits_small
    model = smartdeal_mlp(dense)
    before = _loss(model, X, y)
    tuned = finetune(model, X, y, epochs=10, lr=1e-3, seed=0)
    after = _loss(tuned, X, y)
    assert after < 0.7 * before, (before, after)
    assert all(_on_grid(d) for d in tuned.layers)


def test_finetune_trains_a_layer_kept_dense(digits_small):
    X, y, dense = digits_small
    model = smartdeal_mlp(dense, compress_last=False)
    tuned = finetune(model, X[:64], y[:64], epochs=2, seed=0)
    assert tuned.decomposed == (True, False)
    assert not np.array_equal(tuned.layers[1], model.layers[1])
    assert _loss(tuned, X[:64], y[:64]) < _loss(model, X[:64], y[:64])


def test_finetune_is_deterministic():
    model = _tiny_model()
    X, y = _tiny_data(n=30)
    a = finetune(model, X, y, epochs=5, lr=1e-2, batch_size=7, seed=5)
    b = finetune(model, X, y, epochs=5, lr=1e-2, batch_size=7, seed=5)
    c = finetune(model, X, y, epochs=5, lr=1e-2, batch_size=7, seed=6)
    for da, db in zip(a.layers, b.layers):
        assert da.ce.tobytes() == db.ce.tobytes() and da.b.tobytes() == db.b.tobytes()
    for ba, bb in zip(a.biases, b.biases):
        assert ba.tobytes() == bb.tobytes()
    assert any(not np.array_equal(da.b, dc.b) for da, dc in zip(a.layers, c.layers))


# -- quantized form, storage, study ---------------------------------------------------------------

def test_quantized_mlp_rebuilds_the_codes():
    model = _tiny_model(compress_last=False)
    mlp, codes = quantized_mlp(model, 8)
    assert codes[1] is None and codes[0].b_bits == 8
    np.testing.assert_array_equal(mlp.weights[0].to_dense(), rebuild_float(codes[0]))
    np.testing.assert_array_equal(mlp.weights[1].to_dense(), model.layers[1])


def test_storage_totals():
    model = _tiny_model(compress_last=False)
    dec = model.layers[0]
    tot = storage_totals(model, b_bits=8)
    assert tot["dense"] == (8 * 7 + 3 * 8) * 16
    assert tot["smartdeal_fixed"] == dec.ce.size * 5 + dec.b.size * 8 + 3 * 8 * 16
    assert tot["smartdeal_authors"] == (dec.ce.size + np.count_nonzero(dec.ce) * 4
                                        + dec.b.size * 8 + 3 * 8 * 16)
    assert tot["ratio"]["dense/fixed"] == tot["dense"] / tot["smartdeal_fixed"]


def test_study_small():
    out = smartdeal_digits_study(hidden=(16,), epochs=3, finetune_epochs=1)
    for key in ("dense", "smartdeal", "finetuned", "smartdeal_quantized", "finetuned_quantized"):
        assert isinstance(out[key], float) and 0.0 <= out[key] <= 1.0
    assert [l["name"] for l in out["layers"]] == ["fc1", "fc2"]
    rep = out["layers"][0]["finetuned"]
    assert rep["shape"] == [16, 64] and "rel_error_quantized" in rep
    assert out["storage"]["dense"] == (16 * 64 + 10 * 16) * 16
    assert out["dense"] > 0.5


# -- errors ---------------------------------------------------------------------------------------

def test_bad_inputs():
    model = _tiny_model()
    X, y = _tiny_data()
    dense = init_mlp(TINY_SIZES, seed=0)
    cases = [
        (lambda: finetune(model, X, y, epochs=0), "epochs must be an integer >= 1, not 0"),
        (lambda: finetune(model, X, y, epochs=1.5), "epochs must be an integer >= 1, not 1.5"),
        (lambda: finetune(model, X, y, lr=0), "lr must be a positive number, not 0"),
        (lambda: finetune(model, X, y, batch_size=0), "batch_size must be an integer >= 1, not 0"),
        (lambda: finetune(model, X, y, seed=-1), "seed must be an integer >= 0, not -1"),
        (lambda: finetune(dense, X, y),
         "finetune needs a SmartDealMLP (see smartdeal_mlp), not MLP"),
        (lambda: smartdeal_loss_and_grads("net", X, y),
         "smartdeal_loss_and_grads needs a SmartDealMLP (see smartdeal_mlp), not str"),
        (lambda: quantized_mlp(dense),
         "quantized_mlp needs a SmartDealMLP (see smartdeal_mlp), not MLP"),
        (lambda: smartdeal_mlp(model),
         "smartdeal_mlp needs a trained MLP (golden.train), not SmartDealMLP"),
        (lambda: smartdeal_mlp(dense, compress_last=0),
         "compress_last must be True or False, not 0"),
        (lambda: smartdeal_mlp(dense, E=6), "exponent bits E must be an integer in [1, 5], not 6"),
        (lambda: finetune(model, X[:, :3], y), "X must have shape (samples, 7), not (12, 3)"),
        (lambda: finetune(model, X, y + 3), "labels y must lie in [0, 3), found 3..5"),
        (lambda: SmartDealMLP((model.layers[0],), (np.zeros(3),)),
         "fc1: bias shape (3,) does not match 8 outputs"),
        (lambda: SmartDealMLP((model.layers[1], model.layers[0]), model.biases[::-1]),
         "fc2 takes 7 inputs but fc1 gives 3"),
        (lambda: SmartDealMLP((np.zeros((3, 7), np.float32),), (np.zeros(3),)),
         "fc1: a layer must be a Decomposition or a float64 2-D array, not ndarray"),
        (lambda: SmartDealMLP((), ()),
         "a SmartDealMLP needs one bias per layer, got 0 layers and 0 biases"),
        (lambda: SmartDealMLP((dataclasses.replace(model.layers[0], b=model.layers[0].b[:1]),),
                              (np.zeros(8),)),
         "fc1: Ce must have shape (16, 2, 3) and B (16, 3, 3), not (16, 2, 3) and (1, 3, 3)"),
    ]
    for call, msg in cases:
        with pytest.raises(PermdealError, match=exact(msg)):
            call()
