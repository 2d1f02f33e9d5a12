"""SmartDeal fine-tuning of small MLPs (docs/design.md 5.1; docs/references.md, SmartDeal: "training keeps
the structure with a straight-through estimator on the rounded Ce, the sparsity mask frozen, and Ce
re-projected after each step").

A :class:`SmartDealMLP` is an :class:`~permdeal.golden.train.MLP` whose weight matrices are
:class:`~permdeal.golden.smartdeal.Decomposition` s (a layer may stay dense, e.g. the output layer):
layer ``l`` computes ``h_{l+1} = relu(W_l h_l + b_l)`` (no ReLU after the last) with the effective
weight ``W_l = from_blocks(Ce @ B)``. :func:`smartdeal_mlp` decomposes every layer of a trained
``MLP``.

Fine-tuning (:func:`finetune`) keeps the structure. Per decomposed layer it trains a latent
real-valued ``C`` (initialised from the decomposition's ``Ce``, which is on the grid), the bases
``B`` and the biases with Adam (train.py's constants). Every step::

    Q  = project_pow2(C, e_min, E, threshold) * keep    # the grid of the decomposition
    W  = from_blocks(Q @ B)                              # forward and loss on W (train.py)
    dX = to_blocks(dL/dW)                                # (blocks, h, S), padding 0
    dL/dQ = dX @ B',  dL/dB = Q' @ dX
    dL/dC = dL/dQ * keep                                 # straight-through estimator
    Adam step on C, B, biases; C *= keep; Q = project(C) * keep   # re-projection

``keep`` (the frozen sparsity mask) is ``Ce != 0`` of the model fine-tuning starts from: entries
that were zero after the decomposition, among them every pruned chunk (``Decomposition.pruned``)
and the zero padding chunks of a last block, stay exactly zero: their latent value is 0 and never
moves. A kept entry may still project to 0 while its latent magnitude is at or below the threshold
and come back later, so the density never exceeds the starting one. The latent ``C`` is not
overwritten by its projection: steps smaller than half a grid interval would otherwise be undone
and training could not move ``Ce``. The stored ``Ce`` of the result is the projection of the final
latent, so every entry is 0 or ``+-2**e`` with ``e`` in ``[e_min, e_max]`` and
:func:`~permdeal.golden.smartdeal.quantize` accepts the result. Layers kept dense train their full
weight matrix. Batches are a fresh random permutation every epoch (seeded): the same inputs give the
same bits.

:func:`smartdeal_digits_study` compares on scikit-learn's digits the dense MLP, its SmartDeal form
before and after fine-tuning and the fine-tuned form with ``b_B``-bit ``B``.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.smartdeal import (Decomposition, SmartDealCodes, block_layout, decompose,
                                       from_blocks, project_pow2, quantize, rebuild_float, report,
                                       storage_bits, to_blocks)
from permdeal.golden.train import (MLP, _check_data, _ints, _loss_and_grads, accuracy, adam_loop,
                                   DenseForward, check_chain, init_mlp, load_digits_split,
                                   train)

#: Bits per weight (and per weight of a layer kept dense) of the dense reference in the totals.
DENSE_BITS = 16


# -- model ----------------------------------------------------------------------------------------

def _check_layer(name, w):
    if isinstance(w, Decomposition):
        r, h, bpr = block_layout(w.shape, w.S, w.rows_per_block)
        want = (w.shape[0] * bpr, h, w.S)
        if w.ce.shape != want or w.b.shape != (want[0], w.S, w.S):
            raise PermdealError(f"{name}: Ce must have shape {want} and B "
                                f"{(want[0], w.S, w.S)}, not {w.ce.shape} and {w.b.shape}")
    elif not (isinstance(w, np.ndarray) and w.ndim == 2 and w.dtype == np.float64):
        raise PermdealError(f"{name}: a layer must be a Decomposition or a float64 2-D "
                            f"array, not {type(w).__name__}")


@dataclass(frozen=True, eq=False)
class SmartDealMLP(DenseForward):
    """An MLP whose layers are :class:`Decomposition` s or dense float ``out x in`` arrays.

    ``layers[l]`` is layer ``fc{l+1}``: a :class:`Decomposition` (effective weight
    ``dec.to_dense()``) or, for a layer kept dense, a float64 ``out x in`` array; ``biases[l]`` its
    bias.
    """

    layers: tuple
    biases: tuple

    def __post_init__(self):
        check_chain("a SmartDealMLP", self.layers, self.biases, _check_layer)

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(inputs, hidden..., outputs)``."""
        return (self.layers[0].shape[1],) + tuple(w.shape[0] for w in self.layers)

    @property
    def decomposed(self) -> tuple[bool, ...]:
        """Per layer: ``True`` for a SmartDeal layer, ``False`` for one kept dense."""
        return tuple(isinstance(w, Decomposition) for w in self.layers)

    def dense_weights(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``[(name, W (out x in) float64, b), ...]``: the effective weights ``Ce @ B``."""
        return [(f"fc{i + 1}", _effective(w), np.asarray(b, np.float64))
                for i, (w, b) in enumerate(zip(self.layers, self.biases))]



def _effective(w):
    return w.to_dense() if isinstance(w, Decomposition) else w


def _check_sd_model(model, what):
    if not isinstance(model, SmartDealMLP):
        raise PermdealError(f"{what} needs a SmartDealMLP (see smartdeal_mlp), not "
                            f"{type(model).__name__}")
    return model


def smartdeal_mlp(model: MLP, S: int = 3, E: int = 3, rows_per_block: int | None = None,
                  threshold: float | None = None, prune: float = 0.0, prune_group: int = 1, *,
                  compress_last: bool = True, max_iter: int = 30) -> SmartDealMLP:
    """Decompose every layer of the :class:`~permdeal.golden.train.MLP` ``model``.

    The options are those of :func:`~permdeal.golden.smartdeal.decompose`, the same for every
    layer (``e_min`` is each layer's default). ``compress_last=False`` keeps the output layer dense,
    as :func:`~permdeal.golden.train.digits_study` does for PD with the same flag (its default,
    like this one, compresses it). Biases are kept.
    """
    if not isinstance(model, MLP):
        raise PermdealError(f"smartdeal_mlp needs a trained MLP (golden.train), not "
                            f"{type(model).__name__}")
    if not isinstance(compress_last, (bool, np.bool_)):
        raise PermdealError(f"compress_last must be True or False, not {compress_last!r}")
    layers = []
    for i, (_, W, _) in enumerate(model.dense_weights()):
        if i == len(model.weights) - 1 and not compress_last:
            layers.append(W)
        else:
            layers.append(decompose(W, S, E, rows_per_block, threshold=threshold,
                                    max_iter=max_iter, prune=prune, prune_group=prune_group))
    return SmartDealMLP(tuple(layers), tuple(np.array(b, np.float64) for b in model.biases))


# -- gradients ------------------------------------------------------------------------------------

def _grads(layers, bases, qs, biases, keeps, X, y):
    """Loss and gradients of the unchecked model: per layer ``Q`` (or dense ``W``) and ``B``.

    ``qs[l]``: projected Ce (or the dense W), ``bases[l]``: B (None when dense), ``keeps[l]``: the
    frozen mask (None when dense). Returns ``(loss, dqs, dbases, dbiases)`` with ``dqs[l]`` the
    straight-through gradient of the latent Ce (masked), or ``dL/dW`` of a dense layer.
    """
    Ws = [from_blocks(q @ b, w.shape) if b is not None else q
          for w, q, b in zip(layers, qs, bases)]
    dense = [PermDiag(W.shape, 1, np.zeros(W.shape, np.int64), W[..., None]) for W in Ws]
    loss, dws, dbs = _loss_and_grads(dense, biases, X, y)
    dqs, dbases = [], []
    for w, q, b, keep, dw in zip(layers, qs, bases, keeps, dws):
        dW = dw[..., 0]
        if b is None:
            dqs.append(dW)
            dbases.append(None)
            continue
        dX = to_blocks(dW, w.S, w.rows_per_block)
        dqs.append((dX @ np.swapaxes(b, 1, 2)) * keep)
        dbases.append(np.swapaxes(q, 1, 2) @ dX)
    return loss, dqs, dbases, dbs


def _unpack(model):
    qs = [w.ce if isinstance(w, Decomposition) else w for w in model.layers]
    bases = [w.b if isinstance(w, Decomposition) else None for w in model.layers]
    keeps = [w.ce != 0 if isinstance(w, Decomposition) else None for w in model.layers]
    return qs, bases, keeps


def smartdeal_loss_and_grads(model: SmartDealMLP, X: npt.ArrayLike, y: npt.ArrayLike
                             ) -> tuple[float, list[np.ndarray], list[np.ndarray | None],
                                        list[np.ndarray]]:
    """Mean cross-entropy of the :class:`SmartDealMLP` ``model`` on ``(X, y)`` and its gradients.

    Returns ``(loss, dces, dbases, dbiases)``. For a SmartDeal layer ``dces[l]`` (shape of ``Ce``)
    is the straight-through gradient of the latent Ce: ``dL/dCe`` at the stored ``Ce`` (the dense
    gradient mapped through ``B``, ``to_blocks(dL/dW) @ B'``) times the frozen mask ``Ce != 0``,
    and ``dbases[l] = Ce' @ to_blocks(dL/dW)`` (shape of ``B``). For a layer kept dense
    ``dces[l] = dL/dW`` and ``dbases[l] = None``.
    """
    model = _check_sd_model(model, "smartdeal_loss_and_grads")
    X, y = _check_data(model, X, y)
    qs, bases, keeps = _unpack(model)
    return _grads(model.layers, bases, qs, model.biases, keeps, X, y)


# -- fine-tuning ----------------------------------------------------------------------------------

def _project(w, c, keep):
    return project_pow2(c, w.e_min, w.E, w.threshold) * keep


def finetune(model: SmartDealMLP, X: npt.ArrayLike, y: npt.ArrayLike, *, epochs: int = 20,
             lr: float = 1e-3, batch_size: int = 32, seed: int = 0) -> SmartDealMLP:
    """Fine-tune the :class:`SmartDealMLP` ``model`` with its structure kept (module docstring).

    Adam on mini-batches (as :func:`~permdeal.golden.train.train`) of the latent Ce, B and the
    biases (and of the weights of layers kept dense); the forward pass uses the projected Ce,
    the backward pass the straight-through estimator, entries of Ce that are zero in ``model``
    stay zero. Returns a new :class:`SmartDealMLP` whose decompositions keep their shape, ``S``,
    ``E``, ``e_min``, threshold, pruning and the decomposition's ``iterations``/``converged``, with
    the new ``Ce`` (on the grid) and ``B``.
    """
    model = _check_sd_model(model, "finetune")
    X, y = _check_data(model, X, y)
    layers, L = model.layers, len(model.layers)
    qs, bases, keeps = _unpack(model)
    latent = [np.array(q, np.float64) for q in qs]
    bases = [None if b is None else np.array(b, np.float64) for b in bases]
    biases = [np.array(b, np.float64) for b in model.biases]
    params = latent + [b for b in bases if b is not None] + biases
    # The weights of the forward pass: the projected latent Ce, or a dense layer's own weights.
    qs = [latent[l] if keeps[l] is None else _project(layers[l], latent[l], keeps[l])
          for l in range(L)]

    def grads(Xb, yb):
        loss, dqs, dbases, dbs = _grads(layers, bases, qs, biases, keeps, Xb, yb)
        return loss, dqs + [g for g in dbases if g is not None] + dbs

    def reproject():  # every SmartDeal layer's Ce back on the grid, its mask kept
        for l in range(L):
            if keeps[l] is not None:
                latent[l] *= keeps[l]
                qs[l] = _project(layers[l], latent[l], keeps[l])

    adam_loop(params, grads, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
              after_step=reproject, what="fine-tuning")
    out = [dataclasses.replace(w, ce=q, b=b) if b is not None else q
           for w, q, b in zip(layers, qs, bases)]
    return SmartDealMLP(tuple(out), tuple(biases))


# -- quantized form and storage -------------------------------------------------------------------

def quantized_mlp(model: SmartDealMLP, b_bits: int = 8) -> tuple[MLP, list[SmartDealCodes | None]]:
    """The quantized form of ``model``: ``(MLP, codes)``.

    Every SmartDeal layer is :func:`~permdeal.golden.smartdeal.quantize` d (Ce codes, ``b_bits``-bit
    B, the default B scale) and its weights are :func:`~permdeal.golden.smartdeal.rebuild_float` of
    the codes; layers kept dense stay float. ``codes[l]`` is the layer's
    :class:`~permdeal.golden.smartdeal.SmartDealCodes` (None when dense). Biases stay float.
    """
    model = _check_sd_model(model, "quantized_mlp")
    codes = [quantize(w, b_bits) if isinstance(w, Decomposition) else None for w in model.layers]
    Ws = [rebuild_float(c) if c is not None else w for w, c in zip(model.layers, codes)]
    return MLP(tuple(PermDiag.from_dense(W, 1) for W in Ws),
               tuple(np.array(b, np.float64) for b in model.biases)), codes


def storage_totals(model: SmartDealMLP, b_bits: int = 8, dense_bits: int = DENSE_BITS) -> dict:
    """Weight storage of the whole model in bits (biases excluded), a dict fit for JSON.

    ``dense``: ``dense_bits`` per weight of every layer; ``smartdeal_authors`` and
    ``smartdeal_fixed``: :func:`~permdeal.golden.smartdeal.storage_bits` of every SmartDeal layer
    plus ``dense_bits`` per weight of the layers kept dense; ``ratio``: dense over each.
    """
    model = _check_sd_model(model, "storage_totals")
    dense_bits = integer(dense_bits, "dense bits", 1, 64)
    tot = {"dense": 0, "smartdeal_authors": 0, "smartdeal_fixed": 0}
    for w in model.layers:
        m, n = w.shape
        if isinstance(w, Decomposition):
            bits = storage_bits(w, b_bits, dense_bits=dense_bits)
            tot["smartdeal_authors"] += bits["smartdeal_authors"]
            tot["smartdeal_fixed"] += bits["smartdeal_fixed"]
        else:
            tot["smartdeal_authors"] += m * n * dense_bits
            tot["smartdeal_fixed"] += m * n * dense_bits
        tot["dense"] += m * n * dense_bits
    tot["ratio"] = {f"dense/{sd}": tot["dense"] / tot[f"smartdeal_{sd}"]
                    for sd in ("authors", "fixed")}
    return tot


# -- study ----------------------------------------------------------------------------------------

def smartdeal_digits_study(hidden: int | Sequence[int] = (128, 64), seed: int = 0, *,
                           epochs: int = 40, finetune_epochs: int = 20, lr: float = 2e-3,
                           finetune_lr: float = 1e-3, batch_size: int = 32, S: int = 3, E: int = 3,
                           rows_per_block: int | None = None, threshold: float | None = None,
                           prune: float = 0.0, prune_group: int = 1, b_bits: int = 8,
                           compress_last: bool = True) -> dict:
    """Test accuracy on digits of a dense MLP and its SmartDeal forms.

    The dense MLP is trained as in :func:`~permdeal.golden.train.digits_study` (``epochs``,
    ``lr``), decomposed by :func:`smartdeal_mlp` (``S``, ``E``, ``rows_per_block``, ``threshold``,
    ``prune``, ``prune_group``, ``compress_last``) and fine-tuned by :func:`finetune`
    (``finetune_epochs``, ``finetune_lr``). Returns a dict with the float accuracies ``dense``,
    ``smartdeal`` (decomposed, no fine-tuning), ``finetuned``, ``smartdeal_quantized`` and
    ``finetuned_quantized`` (:func:`quantized_mlp` with ``b_bits``-bit B), ``layers`` (per layer:
    ``name``, ``decomposed`` and ``finetuned``: :func:`~permdeal.golden.smartdeal.report` of the
    decomposition before and after fine-tuning against the dense layer's weights, with its
    quantized codes, or None for a layer kept dense) and ``storage`` (:func:`storage_totals` of the
    fine-tuned model; the fine-tuned Ce can only be sparser).
    """
    hidden = _ints("hidden size", hidden)
    X_tr, y_tr, X_te, y_te = load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    dense = train(init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, lr=lr,
                  batch_size=batch_size, seed=seed)
    sd = smartdeal_mlp(dense, S, E, rows_per_block, threshold, prune, prune_group,
                       compress_last=compress_last)
    tuned = finetune(sd, X_tr, y_tr, epochs=finetune_epochs, lr=finetune_lr,
                     batch_size=batch_size, seed=seed)
    sd_q, sd_codes = quantized_mlp(sd, b_bits)
    tuned_q, tuned_codes = quantized_mlp(tuned, b_bits)
    layers = []
    for (name, W, _), w0, c0, w1, c1 in zip(dense.dense_weights(), sd.layers, sd_codes,
                                             tuned.layers, tuned_codes):
        dec = isinstance(w0, Decomposition)
        layers.append({"name": name,
                       "decomposed": report(w0, W, b_bits, enc=c0) if dec else None,
                       "finetuned": report(w1, W, b_bits, enc=c1) if dec else None})
    return {"dense": accuracy(dense, X_te, y_te),
            "smartdeal": accuracy(sd.to_mlp(), X_te, y_te),
            "finetuned": accuracy(tuned.to_mlp(), X_te, y_te),
            "smartdeal_quantized": accuracy(sd_q, X_te, y_te),
            "finetuned_quantized": accuracy(tuned_q, X_te, y_te),
            "b_bits": b_bits, "layers": layers, "storage": storage_totals(tuned, b_bits)}
