"""Training of small MLPs with block-circulant layers, the structure kept (CirCNN; issue 7).

A :class:`CirculantMLP` computes ``h_{l+1} = relu(W_l h_l + b_l)`` (no ReLU after the last) with
``W_l = to_dense()`` of a :class:`~permdeal.golden.circulant.BlockCirculant` of block size ``k_l``
(``k = 1`` is a dense layer). The loss and ``dL/dW`` are :mod:`~permdeal.golden.train`'s (softmax
cross-entropy on the expanded matrices). The parameters are the first columns: by the chain rule
through ``W[I*k + r, J*k + s] = c[I, J, (r - s) mod k]``::

    dL/dc[I, J, d] = sum of dL/dW[I*k + r, J*k + s] over the (r, s) inside the matrix
                     with (r - s) mod k = d
                   = diagonal_sums(dL/dW, k)[I, J, d]

the sum along each wrapped diagonal, i.e. the adjoint of ``to_dense``. A step therefore moves a
whole diagonal at once, so ``W`` stays block-circulant, and a value whose diagonal lies wholly in the
zero padding has gradient 0 and stays 0. Adam (:func:`~permdeal.golden.train.adam_step`) updates
``c`` and the biases; batches are a fresh seeded permutation every epoch, as in
:func:`~permdeal.golden.train.train`.

:func:`circulant_digits_study` compares on scikit-learn's digits the dense MLP with its
block-circulant projection (:meth:`BlockCirculant.from_dense`, Frobenius-nearest), that projection
fine-tuned, and a block-circulant MLP trained from scratch.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.circulant import BlockCirculant, diagonal_sums, used_mask
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.train import (MLP, _check_data, _ints, _loss_and_grads, accuracy, adam_loop,
                                   DenseForward, check_chain, init_mlp, load_digits_split,
                                   train)


def _per_layer(ks, n_layers):
    """Block size ``k`` of every layer ``fc1, fc2, ...`` from one ``k`` or one per layer."""
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = [ks] * n_layers
    else:
        try:
            ks = list(ks)
        except TypeError:
            raise PermdealError(f"block size k must be an integer or one per layer, not "
                                f"{ks!r}") from None
    if len(ks) != n_layers:
        raise PermdealError(f"got {len(ks)} block sizes k for {n_layers} layers")
    return [integer(k, f"block size k of fc{i + 1}", 1) for i, k in enumerate(ks)]


# -- model ----------------------------------------------------------------------------------------

def _check_layer(name, w):
    if not isinstance(w, BlockCirculant):
        raise PermdealError(f"{name}: a layer must be a BlockCirculant, not {type(w).__name__}")


@dataclass(frozen=True, eq=False)
class CirculantMLP(DenseForward):
    """Block-circulant weights (one :class:`BlockCirculant` per layer, ``out x in``) and biases."""

    layers: tuple
    biases: tuple

    def __post_init__(self):
        check_chain("a CirculantMLP", self.layers, self.biases, _check_layer)

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(inputs, hidden..., outputs)``."""
        return (self.layers[0].shape[1],) + tuple(w.shape[0] for w in self.layers)

    @property
    def ks(self) -> tuple[int, ...]:
        """Block size of every layer (1 = dense)."""
        return tuple(w.k for w in self.layers)

    @property
    def n_weights(self) -> int:
        """Stored weights that reach the matrices, all layers (biases excluded)."""
        return sum(w.n_weights for w in self.layers)

    def dense_weights(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``[(name, W (out x in) float64, b), ...]`` with names ``fc1``, ``fc2``, ..."""
        return [(f"fc{i + 1}", w.to_dense().astype(np.float64), np.asarray(b, np.float64))
                for i, (w, b) in enumerate(zip(self.layers, self.biases))]



def _check_model(model, what):
    if not isinstance(model, CirculantMLP):
        raise PermdealError(f"{what} needs a CirculantMLP (see circulant_mlp), not "
                            f"{type(model).__name__}")
    return model


def circulant_mlp(model: MLP, ks: int | Sequence[int]) -> CirculantMLP:
    """The Frobenius-nearest block-circulant form of every layer of the trained ``model``.

    ``model`` is a :class:`~permdeal.golden.train.MLP`; ``ks`` one block size for all layers or
    one per layer (1 keeps a layer dense). Biases are kept.
    """
    if not isinstance(model, MLP):
        raise PermdealError(f"circulant_mlp needs a trained MLP (golden.train), not "
                            f"{type(model).__name__}")
    ks = _per_layer(ks, len(model.weights))
    return CirculantMLP(tuple(BlockCirculant.from_dense(W, k)
                              for (_, W, _), k in zip(model.dense_weights(), ks)),
                        tuple(np.array(b, np.float64) for b in model.biases))


def init_circulant_mlp(sizes: Sequence[int], ks: int | Sequence[int] = 1, *,
                       seed: int = 0) -> CirculantMLP:
    """He-initialised block-circulant MLP with layer widths ``sizes = (inputs, hidden..., outputs)``.

    ``ks`` is one block size for all layers or one per layer. A row of a block-circulant layer
    meets every input, so first-column values are normal with variance ``2 / inputs`` (values
    wholly in the padding are 0). Biases start at zero.
    """
    sizes = _ints("layer size", sizes)
    if len(sizes) < 2:
        raise PermdealError(f"sizes must list inputs, hidden widths and outputs, not {sizes!r}")
    ks = _per_layer(ks, len(sizes) - 1)
    rng = np.random.default_rng(integer(seed, "seed", 0))
    layers = []
    for n, m, k in zip(sizes, sizes[1:], ks):
        mask = used_mask((m, n), k)
        c = rng.normal(0.0, math.sqrt(2.0 / n), mask.shape) * mask
        layers.append(BlockCirculant((m, n), k, c))
    return CirculantMLP(tuple(layers), tuple(np.zeros(m) for m in sizes[1:]))


# -- gradients ------------------------------------------------------------------------------------

def _grads(layers, biases, X, y):
    """Loss and ``(dcs, dbs)`` of unchecked layers: train.py's loss on the expanded matrices,
    then the diagonal sums of every ``dL/dW``."""
    dense = [PermDiag(w.shape, 1, np.zeros(w.shape, np.int64), w.to_dense()[..., None])
             for w in layers]
    loss, dws, dbs = _loss_and_grads(dense, biases, X, y)
    return loss, [diagonal_sums(dw[..., 0], w.k) for w, dw in zip(layers, dws)], dbs


def circulant_loss_and_grads(model: CirculantMLP, X: npt.ArrayLike,
                             y: npt.ArrayLike) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """Mean cross-entropy of the :class:`CirculantMLP` ``model`` on ``(X, y)`` and its gradients.

    Returns ``(loss, dcs, dbs)``: ``dcs[l]`` has the shape of layer ``l``'s first columns ``c``
    (``M' x N' x k``) and is ``diagonal_sums(dL/dW_l, k)`` (module docstring); ``dbs[l] = dL/db_l``.
    """
    model = _check_model(model, "circulant_loss_and_grads")
    X, y = _check_data(model, X, y)
    return _grads(model.layers, model.biases, X, y)


def train_circulant(model: CirculantMLP, X: npt.ArrayLike, y: npt.ArrayLike, *, epochs: int = 30,
                    lr: float = 2e-3, batch_size: int = 32, seed: int = 0) -> CirculantMLP:
    """Train the :class:`CirculantMLP` ``model`` with Adam, the block-circulant structure kept.

    Only the first columns and biases change; every layer keeps its shape and ``k``. Start from
    :func:`init_circulant_mlp` to train from scratch, from :func:`circulant_mlp` to fine-tune.
    Returns the trained :class:`CirculantMLP`.
    """
    model = _check_model(model, "train_circulant")
    X, y = _check_data(model, X, y)
    params = [np.array(w.c, np.float64) for w in model.layers] + \
             [np.array(b, np.float64) for b in model.biases]
    L = len(model.layers)

    def grads(Xb, yb):
        layers = [w.with_c(c) for w, c in zip(model.layers, params[:L])]
        loss, dcs, dbs = _grads(layers, params[L:], Xb, yb)
        return loss, dcs + dbs

    adam_loop(params, grads, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return CirculantMLP(tuple(w.with_c(c) for w, c in zip(model.layers, params[:L])),
                        tuple(params[L:]))


def circulant_accuracy(model: CirculantMLP, X: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Fraction of rows of ``X`` whose predicted class (by the :class:`CirculantMLP`) is ``y``."""
    return accuracy(_check_model(model, "circulant_accuracy").to_mlp(), X, y)


# -- study ----------------------------------------------------------------------------------------

def circulant_digits_study(ks: int | Sequence[int] = (2, 4, 8),
                           hidden: int | Sequence[int] = (128, 64), seed: int = 0, *,
                           epochs: int = 40, finetune_epochs: int = 30, lr: float = 2e-3,
                           batch_size: int = 32, compress_last: bool = True,
                           scratch: bool = True) -> list[dict]:
    """Test accuracy on digits of a dense MLP and its block-circulant versions, one row per ``k``.

    The dense MLP is :func:`~permdeal.golden.train.digits_study`'s (same sizes, ``epochs``, ``lr``,
    seed). Rows are dicts ``{k, weights, stored, dense, projected, finetuned, scratch}``:
    ``weights`` counts the first-column values that reach the matrices and ``stored`` all of them
    (``M' N' k`` per layer; they differ only when a block is mostly padding); ``projected`` is the
    dense model after :func:`circulant_mlp` (no training), ``finetuned`` that model after
    ``finetune_epochs`` of :func:`train_circulant`, and ``scratch`` a block-circulant model trained
    from :func:`init_circulant_mlp` for ``epochs`` (None when ``scratch=False``). The first row is
    the dense model (``k = 1``; block-circulant columns None). ``compress_last=False`` keeps the
    output layer dense (its 10 outputs are otherwise zero-padded to a multiple of ``k``).
    """
    hidden, ks = _ints("hidden size", hidden), _ints("k", ks)
    if not isinstance(scratch, (bool, np.bool_)):
        raise PermdealError(f"scratch must be True or False, not {scratch!r}")
    if not isinstance(compress_last, (bool, np.bool_)):
        raise PermdealError(f"compress_last must be True or False, not {compress_last!r}")
    X_tr, y_tr, X_te, y_te = load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    fit = dict(lr=lr, batch_size=batch_size, seed=seed)
    dense = train(init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, **fit)
    dense_acc = accuracy(dense, X_te, y_te)
    rows = [dict(k=1, weights=dense.n_weights, stored=dense.n_weights, dense=dense_acc,
                 projected=None, finetuned=None, scratch=None)]
    for k in ks:
        layer_ks = [k] * len(hidden) + [k if compress_last else 1]
        proj = circulant_mlp(dense, layer_ks)
        tuned = train_circulant(proj, X_tr, y_tr, epochs=finetune_epochs, **fit)
        scr = None
        if scratch:
            scr = circulant_accuracy(train_circulant(init_circulant_mlp(sizes, layer_ks, seed=seed),
                                                     X_tr, y_tr, epochs=epochs, **fit), X_te, y_te)
        rows.append(dict(k=k, weights=proj.n_weights,
                         stored=sum(w.n_stored for w in proj.layers), dense=dense_acc,
                         projected=circulant_accuracy(proj, X_te, y_te),
                         finetuned=circulant_accuracy(tuned, X_te, y_te), scratch=scr))
    return rows
