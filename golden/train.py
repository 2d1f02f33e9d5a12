"""Training of small MLPs with dense and permuted-diagonal layers (docs/design.md section 4.1).

An MLP is a chain of layers ``h_{l+1} = relu(W_l h_l + b_l)`` (no ReLU after the last) trained
with softmax cross-entropy and Adam. Every weight matrix is a :class:`PermDiag`; block size
``p = 1`` is a dense layer. The forward pass multiplies by the expanded matrix ``W = to_dense()``;
the gradient exists only for the stored weights::

    dL/dq[I, J, r] = dL/dW[I*p + r, J*p + cols[I, J, r]]

so ``k`` (the structure) never changes during training and padded weights stay exactly zero.

The three ways of obtaining PD weights are :func:`project` (max-energy projection of a trained
dense model), :func:`train` on a projected model (fine-tuning), and :func:`train` on
:func:`init_mlp` with ``p > 1`` (from scratch, ``k`` random and fixed). :func:`digits_study`
compares them on scikit-learn's digits.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from permdeal.atomic import write_bytes
from permdeal import checks
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.compress import QuantSpec, compress_permdiag, expand_p
from permdeal.golden.model import FloatLayer
from permdeal.golden.permdiag import PermDiag

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


# -- checks ------------------------------------------------------------------------------------

def _ints(name, v):
    """One integer or a sequence of them, as a list of integers ``>= 1``."""
    try:
        v = [v] if isinstance(v, (int, np.integer)) else list(v)
    except TypeError:
        raise PermdealError(f"{name} must be an integer or a sequence of them, not {v!r}") from None
    return [integer(x, name, 1) for x in v]


def _per_layer(ps, n_layers):
    """Block size of every layer ``fc1, fc2, ...`` from one ``p`` or a sequence of them."""
    return expand_p(ps, [f"fc{i + 1}" for i in range(n_layers)])


def _check_data(model, X, y):
    """``X`` as float64 (batch, inputs) and ``y`` as int64 labels of ``model``'s classes."""
    X, y = np.asarray(X), np.asarray(y)
    n_in, n_out = model.sizes[0], model.sizes[-1]
    if X.ndim != 2 or X.shape[1] != n_in or len(X) == 0:
        raise PermdealError(f"X must have shape (samples, {n_in}), not {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise PermdealError(f"X must be numbers, not {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise PermdealError("X holds NaN or infinite values")
    if y.shape != (len(X),):
        raise PermdealError(f"y must have shape ({len(X)},) to match X, not {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise PermdealError(f"labels y must be integers, not {y.dtype}")
    if y.min() < 0 or y.max() >= n_out:
        raise PermdealError(f"labels y must lie in [0, {n_out}), found {y.min()}..{y.max()}")
    return X.astype(np.float64), y.astype(np.int64)


# -- data --------------------------------------------------------------------------------------

def load_digits_split(seed: int = 0, test_fraction: float = 0.25
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1], split stratified by class.

    Returns ``(X_train, y_train, X_test, y_test)``; ``X`` is float64 (samples, 64).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    seed = checks.seed(seed)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
            0 < test_fraction < 1):
        raise PermdealError(f"test_fraction must lie in (0, 1), not {test_fraction!r}")
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    return X_tr, y_tr, X_te, y_te


# -- model -------------------------------------------------------------------------------------

class DenseForward:
    """The forward pass of an MLP whose layers expand to dense matrices: a subclass gives
    ``dense_weights()`` (``[(name, W out x in, b), ...]``) and gets ``to_mlp``, ``logits`` and
    ``predict`` (block-circulant, SmartDeal)."""

    def to_mlp(self) -> MLP:
        """The dense :class:`MLP` (block size 1) of the expanded weights."""
        ws = self.dense_weights()
        return MLP(tuple(PermDiag.from_dense(W, 1) for _, W, _ in ws), tuple(b for _, _, b in ws))

    def logits(self, X: npt.ArrayLike) -> np.ndarray:
        """Pre-softmax outputs for inputs ``X`` of shape (batch, inputs)."""
        return self.to_mlp().logits(X)

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """Most likely class of every row of ``X``."""
        return np.argmax(self.logits(X), axis=1)


def check_chain(what: str, layers: Sequence[Any], biases: Sequence[npt.ArrayLike],
                check_layer: Callable[[str, Any], None] | None = None) -> None:
    """Check that ``layers`` (anything with a ``shape``, ``out x in``) and ``biases`` form an MLP:
    one bias of the right length per layer, each layer taking the previous one's outputs.
    ``check_layer(name, layer)`` checks a layer's own type first. ``what`` names the model."""
    if len(layers) != len(biases) or not layers:
        raise PermdealError(f"{what} needs one bias per layer, got {len(layers)} layers and "
                            f"{len(biases)} biases")
    for i, (w, b) in enumerate(zip(layers, biases)):
        if check_layer is not None:
            check_layer(f"fc{i + 1}", w)
        if np.shape(b) != (w.shape[0],):
            raise PermdealError(f"fc{i + 1}: bias shape {np.shape(b)} does not match "
                                f"{w.shape[0]} outputs")
        if i and w.shape[1] != layers[i - 1].shape[0]:
            raise PermdealError(f"fc{i + 1} takes {w.shape[1]} inputs but fc{i} gives "
                                f"{layers[i - 1].shape[0]}")


@dataclass(frozen=True)
class MLP:
    """Float weights (one :class:`PermDiag` per layer, ``out x in``) and biases of an MLP."""

    weights: tuple
    biases: tuple

    def __post_init__(self):
        check_chain("an MLP", self.weights, self.biases)

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(inputs, hidden..., outputs)``."""
        return (self.weights[0].shape[1],) + tuple(w.shape[0] for w in self.weights)

    @property
    def ps(self) -> tuple[int, ...]:
        """Block size of every layer (1 = dense)."""
        return tuple(w.p for w in self.weights)

    @property
    def n_weights(self) -> int:
        """Stored weights of all layers (biases excluded)."""
        return sum(w.n_weights for w in self.weights)

    def logits(self, X: npt.ArrayLike) -> np.ndarray:
        """Pre-softmax outputs for inputs ``X`` of shape (batch, inputs)."""
        return _forward([w.to_dense() for w in self.weights], self.biases, X)[-1]

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """Most likely class of every row of ``X``."""
        return np.argmax(self.logits(X), axis=1)

    def dense_weights(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``[(name, W (out x in) float64, b), ...]`` with names ``fc1``, ``fc2``, ..."""
        return [(f"fc{i + 1}", w.to_dense().astype(np.float64), np.asarray(b, np.float64))
                for i, (w, b) in enumerate(zip(self.weights, self.biases))]


def init_mlp(sizes: Sequence[int], ps: int | Sequence[int] = 1, *, seed: int = 0) -> MLP:
    """He-initialised MLP with layer widths ``sizes = (inputs, hidden..., outputs)``.

    ``ps`` is one block size for all layers or one per layer. In a PD layer every block's ``k`` is
    drawn uniformly from ``[0, p)``; stored weights are normal with variance ``2 / fan_in``, where
    ``fan_in`` is the most stored weights in one row. Biases start at zero.
    """
    sizes = _ints("layer size", sizes)
    if len(sizes) < 2:
        raise PermdealError(f"sizes must list inputs, hidden widths and outputs, not {sizes!r}")
    ps = _per_layer(ps, len(sizes) - 1)
    rng = np.random.default_rng(integer(seed, "seed", 0))
    weights = []
    for n, m, p in zip(sizes, sizes[1:], ps):
        mb, nb = -(-m // p), -(-n // p)
        w = PermDiag((m, n), p, rng.integers(0, p, size=(mb, nb)), np.zeros((mb, nb, p)))
        std = math.sqrt(2.0 / w.max_terms)
        weights.append(w.with_q(rng.normal(0.0, std, size=w.q.shape) * w.stored_mask))
    return MLP(tuple(weights), tuple(np.zeros(m) for m in sizes[1:]))


def project(model: MLP, ps: int | Sequence[int]) -> MLP:
    """Max-energy projection (:meth:`PermDiag.from_dense`) of every layer onto block size ``ps``.

    ``ps`` is one block size for all layers or one per layer; biases are kept.
    """
    ps = _per_layer(ps, len(model.weights))
    return MLP(tuple(PermDiag.from_dense(w.to_dense(), p) for w, p in zip(model.weights, ps)),
               model.biases)


# -- training ----------------------------------------------------------------------------------

def _forward(Ws, bs, X):
    """Activations ``[X, h1, ..., logits]`` for dense weights ``Ws``."""
    hs = [X]
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = hs[-1] @ W.T + b
        hs.append(z if l == len(Ws) - 1 else np.maximum(z, 0.0))
    return hs


def _stored(dW, w):
    """``dW`` at the stored weights of ``w``: ``dW[I*p + r, J*p + cols[I, J, r]]``, 0 in padding."""
    (m, n), (pm, pn), (mb, nb), p = w.shape, w.padded_shape, w.blocks, w.p
    dW = np.pad(dW, ((0, pm - m), (0, pn - n)))
    return dW[np.arange(mb)[:, None, None] * p + np.arange(p), np.arange(nb)[:, None] * p + w.cols]


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits`` (batch, classes) against labels ``y`` and its
    gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    dz = np.exp(logp)
    dz[rows, y] -= 1.0
    return -logp[rows, y].mean(), dz / len(y)


def _loss_and_grads(weights, biases, X, y):
    """:func:`loss_and_grads` of unchecked arrays."""
    Ws = [w.to_dense() for w in weights]
    hs = _forward(Ws, biases, X)
    loss, dz = softmax_xent(hs[-1], y)
    dqs, dbs = [None] * len(Ws), [None] * len(Ws)
    for l in reversed(range(len(Ws))):
        dqs[l], dbs[l] = _stored(dz.T @ hs[l], weights[l]), dz.sum(axis=0)
        if l:
            dz = (dz @ Ws[l]) * (hs[l] > 0)
    return loss, dqs, dbs


def loss_and_grads(model: MLP, X: npt.ArrayLike,
                   y: npt.ArrayLike) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """Mean cross-entropy of ``model`` on ``(X, y)`` and its gradients ``(loss, dqs, dbs)``.

    ``dqs[l]`` has the shape of layer ``l``'s stored weights ``q`` (``M' x N' x p``):
    ``dqs[l][I, J, r] = dL/dW[I*p + r, J*p + cols[I, J, r]]``, zero for padded weights.
    """
    X, y = _check_data(model, X, y)
    return _loss_and_grads(model.weights, model.biases, X, y)


def adam_step(params: Sequence[np.ndarray], grads: Sequence[np.ndarray], m1: Sequence[np.ndarray],
              m2: Sequence[np.ndarray], step: int, lr: float) -> None:
    """One Adam update (:data:`ADAM_BETAS`, :data:`ADAM_EPS`, bias-corrected for ``step``, from
    1) of ``params`` in place, with moment estimates ``m1`` and ``m2`` (updated in place)."""
    b1, b2 = ADAM_BETAS
    for t, g, a, v in zip(params, grads, m1, m2):
        a += (1 - b1) * (g - a)
        v += (1 - b2) * (g * g - v)
        t -= lr * (a / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + ADAM_EPS)


def check_lr(lr: float) -> float:
    """``lr`` as a float, or a :class:`PermdealError` unless it is a positive finite number."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise PermdealError(f"lr must be a positive number, not {lr!r}")
    return float(lr)


def adam_loop(params: Sequence[np.ndarray],
              loss_and_grads: Callable[[np.ndarray, np.ndarray], tuple[float, list[np.ndarray]]],
              X: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, batch_size: int, seed: int,
              after_step: Callable[[], None] | None = None, what: str = "training") -> None:
    """Adam on seeded mini-batches: the one training loop of every structured trainer.

    ``params`` (float arrays) are updated in place. Every epoch draws a fresh random permutation
    of the rows of ``X`` (seeded by ``seed``) and cuts it into batches of ``batch_size``; for each,
    ``loss_and_grads(X_batch, y_batch)`` returns ``(loss, grads)`` at the current ``params`` (one
    gradient per parameter, in order), :func:`adam_step` applies them, and ``after_step()`` (if
    given) re-imposes a structure. A non-finite loss stops with an error naming ``what``.
    """
    epochs = integer(epochs, "epochs", 1)
    batch_size = integer(batch_size, "batch_size", 1)
    lr = check_lr(lr)
    rng = np.random.default_rng(integer(seed, "seed", 0))
    m1 = [np.zeros_like(t) for t in params]
    m2 = [np.zeros_like(t) for t in params]
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is caught below
                loss, grads = loss_and_grads(X[batch], y[batch])
            if not np.isfinite(loss):
                raise PermdealError(f"{what} diverged in epoch {epoch + 1} (loss {loss}); "
                                    f"lower lr (now {lr})")
            step += 1
            adam_step(params, grads, m1, m2, step, lr)
            if after_step is not None:
                after_step()


def train(model: MLP, X: npt.ArrayLike, y: npt.ArrayLike, *, epochs: int = 40, lr: float = 2e-3,
          batch_size: int = 32, seed: int = 0,
          grad_mask: Sequence[npt.ArrayLike] | None = None) -> MLP:
    """Train ``model`` with Adam on mini-batches (:func:`adam_loop`); returns the trained
    :class:`MLP`.

    Each layer's structure (``p``, ``k``) is kept: only stored weights and biases change. Start from
    :func:`init_mlp` to train from scratch, from :func:`project` to fine-tune. ``grad_mask`` (one
    boolean array per layer, the shape of its stored weights ``q``) freezes the weights where it is
    False: their gradients are zeroed, so a weight that starts at zero stays exactly zero (a pruned
    network retrained with its zero pattern kept).
    """
    X, y = _check_data(model, X, y)
    params = [np.array(w.q, np.float64) for w in model.weights] + \
             [np.array(b, np.float64) for b in model.biases]
    L = len(model.weights)
    keep = None
    if grad_mask is not None:
        keep = [np.asarray(mk, bool) for mk in grad_mask]
        if len(keep) != L or any(k.shape != w.q.shape for k, w in zip(keep, model.weights)):
            raise PermdealError("grad_mask needs one boolean array per layer, shaped as the "
                                "layer's stored weights")

    def grads(Xb, yb):
        weights = [w.with_q(q) for w, q in zip(model.weights, params[:L])]
        loss, dqs, dbs = _loss_and_grads(weights, params[L:], Xb, yb)
        if keep is not None:
            dqs = [g * k for g, k in zip(dqs, keep)]
        return loss, dqs + dbs

    adam_loop(params, grads, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return MLP(tuple(w.with_q(q) for w, q in zip(model.weights, params[:L])), tuple(params[L:]))


def accuracy(model: MLP, X: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Fraction of rows of ``X`` whose predicted class is ``y``."""
    X, y = _check_data(model, X, y)
    return float(np.mean(model.predict(X) == y))


def fixed_accuracy(model: MLP, X_cal: npt.ArrayLike, X: npt.ArrayLike, y: npt.ArrayLike,
                   bits: int = 16) -> float:
    """Accuracy of the bit-exact fixed-point form of ``model`` (what the hardware computes).

    Weights, biases and activations are ``bits`` wide; activation formats are fitted to the
    calibration inputs ``X_cal`` (see :func:`~permdeal.golden.compress.compress_permdiag`).
    """
    X, y = _check_data(model, X, y)
    layers = [FloatLayer(name, W, b) for name, W, b in model.dense_weights()]
    quant = compress_permdiag(layers, list(model.ps), QuantSpec(act=bits, weight=bits, bias=bits),
                              calibration=X_cal)
    return float(np.mean(np.argmax(quant.predict(X), axis=1) == y))


def save_npz(model: MLP, path: str | Path) -> None:
    """Write ``model`` as ``.npz``: keys ``fc1.weight`` (out x in), ``fc1.bias``, ... in order."""
    buf = io.BytesIO()
    np.savez(buf, **{f"{name}.{kind}": a for name, W, b in model.dense_weights()
                     for kind, a in (("weight", W), ("bias", b))})
    try:
        write_bytes(path, buf.getvalue())
    except OSError as e:
        raise PermdealError(f"cannot write {path}: {e.strerror}") from None


# -- study -------------------------------------------------------------------------------------

def digits_study(ps: int | Sequence[int] = (2, 4, 8), hidden: int | Sequence[int] = (128, 64),
                 seed: int = 0, *, epochs: int = 40, finetune_epochs: int = 30, lr: float = 2e-3,
                 batch_size: int = 32, compress_last: bool = True) -> list[dict]:
    """Test accuracy on digits of a dense MLP and its PD versions, one row per block size.

    Rows are dicts ``{p, weights, dense, projected, finetuned, scratch, fixed}``: ``weights`` counts
    stored weights; ``projected`` is the dense model after :func:`project` (no training),
    ``finetuned`` that model after ``finetune_epochs`` more, ``scratch`` a PD model with random
    fixed ``k`` trained for ``epochs``, and ``fixed`` the 16-bit fixed-point (golden, bit-exact)
    accuracy of the fine-tuned model (of the dense model in the first row). The first row is the dense model (``p = 1``, PD columns ``None``).
    ``compress_last=False`` keeps the output layer dense.
    """
    hidden, ps = _ints("hidden size", hidden), _ints("p", ps)
    X_tr, y_tr, X_te, y_te = load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    fit = dict(lr=lr, batch_size=batch_size, seed=seed)
    dense = train(init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, **fit)
    dense_acc = accuracy(dense, X_te, y_te)
    rows = [dict(p=1, weights=dense.n_weights, dense=dense_acc, projected=None, finetuned=None,
                 scratch=None, fixed=fixed_accuracy(dense, X_tr, X_te, y_te))]
    for p in ps:
        layer_ps = [p] * len(hidden) + [p if compress_last else 1]
        proj = project(dense, layer_ps)
        tuned = train(proj, X_tr, y_tr, epochs=finetune_epochs, **fit)
        scratch = train(init_mlp(sizes, layer_ps, seed=seed), X_tr, y_tr, epochs=epochs, **fit)
        rows.append(dict(p=p, weights=proj.n_weights, dense=dense_acc,
                         projected=accuracy(proj, X_te, y_te),
                         finetuned=accuracy(tuned, X_te, y_te),
                         scratch=accuracy(scratch, X_te, y_te),
                         fixed=fixed_accuracy(tuned, X_tr, X_te, y_te)))
    return rows
