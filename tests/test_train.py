"""Training of dense and permuted-diagonal MLPs (golden/train.py)."""

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.train import (MLP, accuracy, digits_study, init_mlp, load_digits_split,
                                   loss_and_grads, project, save_npz, train)

# 7 x 5 with p=3 and 3 x 7 with p=2: both pad rows and columns.
TINY_SIZES, TINY_PS = (5, 7, 3), (3, 2)


def _tiny_data(seed=1, n=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, TINY_SIZES[0])), rng.integers(0, TINY_SIZES[-1], size=n)


def _structure(w):
    """Bool ``m x n``: where ``w`` may be non-zero."""
    return w.with_q(w.stored_mask.astype(float)).to_dense() != 0


def _with_layer(model, l, q=None, b=None):
    ws, bs = list(model.weights), list(model.biases)
    if q is not None:
        ws[l] = ws[l].with_q(q)
    if b is not None:
        bs[l] = b
    return MLP(tuple(ws), tuple(bs))


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def dense_model(digits):
    X_tr, y_tr, _, _ = digits
    return train(init_mlp((64, 128, 64, 10), seed=0), X_tr, y_tr, seed=0)


def test_gradient_matches_finite_differences():
    model = init_mlp(TINY_SIZES, TINY_PS, seed=3)
    model = MLP(model.weights, tuple(np.random.default_rng(4).normal(size=b.shape) * 0.1
                                     for b in model.biases))
    X, y = _tiny_data()
    _, dqs, dbs = loss_and_grads(model, X, y)
    eps = 1e-6
    for l, w in enumerate(model.weights):
        assert dqs[l].shape == w.q.shape
        assert np.all(dqs[l][~w.stored_mask] == 0.0), "padded weights must get no gradient"
        assert np.any(~w.stored_mask), "the tiny net must exercise padding"
        for idx in zip(*np.nonzero(w.stored_mask)):
            q_hi, q_lo = w.q.copy(), w.q.copy()
            q_hi[idx] += eps
            q_lo[idx] -= eps
            num = (loss_and_grads(_with_layer(model, l, q=q_hi), X, y)[0]
                   - loss_and_grads(_with_layer(model, l, q=q_lo), X, y)[0]) / (2 * eps)
            assert dqs[l][idx] == pytest.approx(num, rel=1e-5, abs=1e-8)
        for i in range(len(dbs[l])):
            b_hi, b_lo = model.biases[l].copy(), model.biases[l].copy()
            b_hi[i] += eps
            b_lo[i] -= eps
            num = (loss_and_grads(_with_layer(model, l, b=b_hi), X, y)[0]
                   - loss_and_grads(_with_layer(model, l, b=b_lo), X, y)[0]) / (2 * eps)
            assert dbs[l][i] == pytest.approx(num, rel=1e-5, abs=1e-8)


def test_gradient_is_dense_gradient_at_stored_weights():
    """grad_q[I, J, r] = dL/dW[I*p + r, J*p + cols[I, J, r]] of the same net taken as dense."""
    pd = init_mlp(TINY_SIZES, TINY_PS, seed=5)
    dense = MLP(tuple(PermDiag.from_dense(w.to_dense(), 1) for w in pd.weights), pd.biases)
    X, y = _tiny_data()
    loss_pd, dqs, _ = loss_and_grads(pd, X, y)
    loss_dense, dWs, _ = loss_and_grads(dense, X, y)
    assert loss_pd == pytest.approx(loss_dense, rel=1e-12)
    for w, dq, dW in zip(pd.weights, dqs, dWs):
        got = w.with_q(dq).to_dense()
        np.testing.assert_allclose(got, np.where(_structure(w), dW[..., 0], 0.0), rtol=1e-12)


def test_training_keeps_structure_and_padding():
    start = init_mlp(TINY_SIZES, TINY_PS, seed=3)
    before = [w.q.copy() for w in start.weights]
    X, y = _tiny_data(n=40)
    trained = train(start, X, y, epochs=5, lr=1e-2, batch_size=8, seed=0)
    for w0, w, q0 in zip(start.weights, trained.weights, before):
        assert w.p == w0.p and w.shape == w0.shape
        np.testing.assert_array_equal(w.k, w0.k)
        assert np.all(w.q[~w.stored_mask] == 0.0)
        assert not np.any(w.to_dense()[~_structure(w)])
        assert not np.array_equal(w.q, q0), "training must move the stored weights"
        np.testing.assert_array_equal(w0.q, q0)  # the starting model is not modified
    assert loss_and_grads(trained, X, y)[0] < loss_and_grads(start, X, y)[0]


def test_init_draws_structure_from_seed():
    a, b = init_mlp((64, 32, 10), 4, seed=0), init_mlp((64, 32, 10), 4, seed=1)
    assert a.ps == (4, 4) and a.sizes == (64, 32, 10)
    assert not np.array_equal(a.weights[0].k, b.weights[0].k)
    assert len(np.unique(a.weights[0].k)) == 4
    assert init_mlp((64, 32, 10), (1, 2)).ps == (1, 2)


def test_training_is_deterministic():
    X, y = _tiny_data(n=40)
    start = init_mlp(TINY_SIZES, TINY_PS, seed=3)
    runs = [train(start, X, y, epochs=3, lr=1e-2, batch_size=8, seed=s) for s in (7, 7, 8)]
    for w0, w1, w2 in zip(*(r.weights for r in runs)):
        np.testing.assert_array_equal(w0.q, w1.q)
        assert not np.array_equal(w0.q, w2.q)
    for b0, b1 in zip(runs[0].biases, runs[1].biases):
        np.testing.assert_array_equal(b0, b1)
    for w0, w1 in zip(init_mlp(TINY_SIZES, TINY_PS, seed=9).weights,
                      init_mlp(TINY_SIZES, TINY_PS, seed=9).weights):
        np.testing.assert_array_equal(w0.k, w1.k)
        np.testing.assert_array_equal(w0.q, w1.q)


def test_project_is_max_energy_projection(dense_model):
    pd = project(dense_model, (4, 4, 2))
    assert pd.ps == (4, 4, 2)
    for w, wd, p in zip(pd.weights, dense_model.weights, (4, 4, 2)):
        ref = PermDiag.from_dense(wd.to_dense(), p)
        np.testing.assert_array_equal(w.k, ref.k)
        np.testing.assert_array_equal(w.q, ref.q)
    for b, bd in zip(pd.biases, dense_model.biases):
        np.testing.assert_array_equal(b, bd)
    np.testing.assert_array_equal(project(dense_model, 1).weights[1].to_dense(),
                                  dense_model.weights[1].to_dense())


def test_digits_accuracy(digits, dense_model):
    X_tr, y_tr, X_te, y_te = digits
    assert X_tr.shape[1] == 64 and 0.0 <= X_tr.min() and X_tr.max() <= 1.0
    assert len(X_te) == 450 and set(np.unique(y_te)) == set(range(10))
    assert accuracy(dense_model, X_te, y_te) >= 0.95
    projected = project(dense_model, 4)
    tuned = train(projected, X_tr, y_tr, epochs=30, seed=0)
    assert tuned.n_weights == dense_model.n_weights // 4
    assert accuracy(tuned, X_te, y_te) >= 0.93
    assert accuracy(tuned, X_te, y_te) > accuracy(projected, X_te, y_te)


def test_save_npz(tmp_path):
    model = init_mlp((6, 5, 4, 3), (2, 1, 3), seed=0)
    path = tmp_path / "model.npz"
    save_npz(model, path)
    with np.load(path) as f:
        assert list(f.keys()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                  "fc3.weight", "fc3.bias"]
        for name, W, b in model.dense_weights():
            np.testing.assert_array_equal(f[f"{name}.weight"], W)
            np.testing.assert_array_equal(f[f"{name}.bias"], b)
        assert f["fc1.weight"].shape == (5, 6) and f["fc3.weight"].shape == (3, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    with pytest.raises(PermdealError, match="cannot write"):
        save_npz(model, tmp_path / "missing" / "model.npz")


def _bad_calls():
    model = init_mlp(TINY_SIZES, TINY_PS, seed=0)
    X, y = _tiny_data()
    fit = dict(epochs=1, lr=1e-3, batch_size=4, seed=0)
    return [
        (lambda: init_mlp((5, 0, 3)), "layer size must be an integer >= 1"),
        (lambda: init_mlp((5, 2.5, 3)), "layer size must be an integer >= 1"),
        (lambda: init_mlp((5,)), "sizes must list"),
        (lambda: init_mlp(TINY_SIZES, 0), "p of fc1 must be an integer >= 1"),
        (lambda: init_mlp(TINY_SIZES, (2, 1.5)), "p of fc2 must be an integer >= 1"),
        (lambda: init_mlp(TINY_SIZES, (2, 2, 2)), "3 block sizes p for 2 layers"),
        (lambda: project(model, -1), "p of fc1"),
        (lambda: train(model, X, y, **{**fit, "epochs": 0}), "epochs must be an integer >= 1"),
        (lambda: train(model, X, y, **{**fit, "lr": 0.0}), "lr must be a positive number"),
        (lambda: train(model, X, y, **{**fit, "lr": float("nan")}), "lr must be a positive"),
        (lambda: train(model, X, y, **{**fit, "batch_size": 0}), "batch_size"),
        (lambda: train(model, X, y, **{**fit, "lr": 1e300}), "diverged"),
        (lambda: train(model, X[:, :4], y, **fit), r"X must have shape \(samples, 5\)"),
        (lambda: train(model, X, y[:-1], **fit), r"y must have shape \(12,\)"),
        (lambda: train(model, X, y + 0.5, **fit), "labels y must be integers"),
        (lambda: train(model, X, y + 3, **fit), r"labels y must lie in \[0, 3\)"),
        (lambda: accuracy(model, np.full_like(X, np.nan), y), "NaN"),
        (lambda: load_digits_split(test_fraction=1.0), "test_fraction"),
        (lambda: digits_study(hidden=(64, -1)), "hidden size must be an integer >= 1"),
        (lambda: digits_study(ps=(2, 0)), "p must be an integer >= 1"),
        (lambda: digits_study(ps="4"), "p must be an integer"),
    ]


@pytest.mark.parametrize("i", range(len(_bad_calls())))
def test_bad_input_raises(i):
    call, match = _bad_calls()[i]
    with pytest.raises(PermdealError, match=match):
        call()


def test_grad_mask_keeps_the_zero_pattern():
    from permdeal.golden import train as tr
    # A pruned dense network retrained with its mask: every masked weight stays exactly zero, the
    # others move, and a wrong mask is refused.
    X_tr, y_tr, _, _ = tr.load_digits_split(0)
    model = tr.init_mlp([64, 16, 10], seed=3)
    rng = np.random.default_rng(3)
    masks = [rng.random(w.q.shape) < 0.3 for w in model.weights]
    pruned = tr.MLP(tuple(w.with_q(w.q * m) for w, m in zip(model.weights, masks)), model.biases)
    out = tr.train(pruned, X_tr, y_tr, epochs=2, seed=1, grad_mask=masks)
    for w_in, w_out, m in zip(pruned.weights, out.weights, masks):
        assert np.all(w_out.q[~m] == 0)
        # (some digits pixels are always 0, so their weights get no gradient at all)
        assert np.count_nonzero(w_out.q[m] != w_in.q[m]) > 0.5 * m.sum()
    with pytest.raises(PermdealError, match="grad_mask needs one boolean array per layer"):
        tr.train(pruned, X_tr, y_tr, epochs=1, grad_mask=masks[:1])
