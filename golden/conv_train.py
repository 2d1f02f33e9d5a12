"""Training of small conv networks with their compressed structure kept (docs/design.md 14.5).

A network is a list of float layers (:mod:`.float_model`: convolutions, non-overlapping max
pooling, FC layers, ReLU between them) trained with softmax cross-entropy and Adam
(:func:`~.train.adam_loop`). Each layer's weight is given by a *parametrization*:

- dense: the weight itself;
- permuted-diagonal (:func:`pd_params`): the weight with a fixed 0/1 mask, the pattern of
  ``ConvPermDiag`` / ``PermDiag`` (one permuted-diagonal pattern per kernel position); the
  gradient is masked, so weights off the pattern stay exactly zero and projecting the result
  again gives the same structure;
- SmartDeal (:func:`sd_params`): a latent ``Ce`` and the bases ``B`` of the decomposition of the
  layer's matrix view; the forward pass uses ``Q = project(Ce) * keep`` and ``W = Q @ B``, the
  backward pass the straight-through estimator, ``Ce`` re-projected every step (as
  :mod:`.smartdeal_train` does for FC layers).

The FC layer right after a convolution keeps its structure over the columns in its method's
order (docs/design.md 14.3, 14.5; PD HWC, SmartDeal ``(C, H, W)``), as
:func:`~.conv_model.compress_network` projects it: its parametrization holds the weight with the
columns permuted (``cols``, :func:`~.conv_model.input_orders`) and gives the float network, which
flattens in ``(C, H, W)`` order, the columns put back.

The backward pass of a convolution works on the same patches as the forward pass: ``dW =
sum dY * patches``, ``dX`` by adding ``dY @ W`` back onto the padded input at every kernel
position. :func:`digits_cnn_study` trains conv3x3 1->8, conv3x3 8->16, max pool 2x2, FC -> 10 on
scikit-learn's digits and compares dense, permuted-diagonal and SmartDeal accuracy, float and
bit-exact fixed point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.errors import PermdealError

from . import smartdeal as sd
from .compress import QuantSpec
from .conv import METHOD_FLATTEN, ConvPermDiag, ConvShape, Pool, matrix_view
from .conv_model import compress_network, input_orders, permute_columns, unpermute_columns
from .float_model import FloatLayer
from .float_model import forward as float_forward
from .permdiag import PermDiag
from .train import adam_loop, load_digits_split, softmax_xent


# -- parametrizations -------------------------------------------------------------------------

@dataclass
class Params:
    """How a layer's weight is made from trainable arrays (module docstring)."""

    shape: tuple
    arrays: list
    mask: np.ndarray | None = None
    dec: sd.Decomposition | None = None
    keep: np.ndarray | None = None
    cols: np.ndarray | None = None

    def weight(self) -> np.ndarray:
        """The float layer's weight (columns in ``(C, H, W)`` order)."""
        return unpermute_columns(self.structured(), self.cols)

    def structured(self) -> np.ndarray:
        """The weight as the structure holds it (an FC layer's columns in ``cols`` order)."""
        if self.dec is None:
            return self.arrays[0] if self.mask is None else self.arrays[0] * self.mask
        m, n = self.shape[0], int(np.prod(self.shape[1:]))
        return sd.from_blocks(self.q @ self.arrays[1], (m, n)).reshape(self.shape)

    @property
    def q(self) -> np.ndarray:
        d = self.dec
        return sd.project_pow2(self.arrays[0], d.e_min, d.E, d.threshold) * self.keep

    def grads(self, dW: np.ndarray) -> list[np.ndarray]:
        dW = permute_columns(dW, self.cols)
        if self.dec is None:
            return [dW if self.mask is None else dW * self.mask]
        dX = sd.to_blocks(dW.reshape(self.shape[0], -1), self.dec.S, self.dec.rows_per_block)
        q, b = self.q, self.arrays[1]
        return [(dX @ np.swapaxes(b, 1, 2)) * self.keep, np.swapaxes(q, 1, 2) @ dX]

    def after_step(self) -> None:
        if self.dec is not None:
            self.arrays[0] *= self.keep

    def decomposition(self) -> sd.Decomposition | None:
        """The SmartDeal form of the trained weights (None for dense and PD), of the weight with
        its columns in ``cols`` order."""
        if self.dec is None:
            return None
        return dataclasses.replace(self.dec, ce=self.q, b=self.arrays[1].copy())


def dense_params(w: npt.ArrayLike) -> Params:
    w = np.array(w, np.float64)
    return Params(w.shape, [w])


def pd_params(w: npt.ArrayLike, p: int, cols: np.ndarray | None = None) -> Params:
    """The permuted-diagonal projection of ``w`` (per kernel position for a conv weight; an FC
    weight with its columns in ``cols`` order) and its pattern as the mask."""
    w = permute_columns(np.asarray(w, np.float64), cols)
    if w.ndim == 4:
        pd = ConvPermDiag.from_dense(w, p)
        ones = pd.with_q([m.stored_mask.astype(np.float64) for m in pd.mats])
    else:
        pd = PermDiag.from_dense(w, p)
        ones = pd.with_q(pd.stored_mask.astype(np.float64))
    mask = ones.to_dense() != 0
    return Params(w.shape, [pd.to_dense()], mask=mask, cols=cols)


def sd_params(w: npt.ArrayLike, S: int = 3, E: int = 3, cols: np.ndarray | None = None) -> Params:
    """The SmartDeal decomposition of ``w``'s matrix view (an FC weight with its columns in
    ``cols`` order); Ce latent, B trainable."""
    w = permute_columns(np.asarray(w, np.float64), cols)
    dec = sd.decompose(matrix_view(w), S=S, E=E)
    return Params(w.shape, [dec.ce.copy(), dec.b.copy()], dec=dec, keep=dec.ce != 0, cols=cols)


# -- forward and backward ------------------------------------------------------------------------

def _pool_backward(pool, pre, dy):
    """Gradient of non-overlapping max pooling: to the first maximum of each window."""
    n, c, h, w = pre.shape
    (kh, kw) = pool.size
    ho, wo = h // kh, w // kw
    win = pre[:, :, :ho * kh, :wo * kw].reshape(n, c, ho, kh, wo, kw).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(n, c, ho, wo, kh * kw)
    onehot = np.zeros_like(win)
    np.put_along_axis(onehot, win.argmax(axis=-1)[..., None], 1.0, axis=-1)
    dx = np.zeros_like(pre)
    grad = (onehot * dy[..., None]).reshape(n, c, ho, wo, kh, kw).transpose(0, 1, 2, 4, 3, 5)
    dx[:, :, :ho * kh, :wo * kw] = grad.reshape(n, c, ho * kh, wo * kw)
    return dx


def _conv_backward(shape: ConvShape, patches, w, dz, need_dx):
    """``(dW, dX)`` of a convolution from ``dz`` ``(N, O, OH, OW)``."""
    dz = dz.transpose(0, 2, 3, 1)  # (N, OH, OW, O)
    dw = np.tensordot(dz, patches, axes=([0, 1, 2], [0, 1, 2]))
    if not need_dx:
        return dw, None
    dp = np.tensordot(dz, w, axes=([3], [0]))  # (N, OH, OW, C, KH, KW)
    c, h, wd = shape.in_shape
    t, l, b, r = shape.padding
    (sh, sw), (oh, ow) = shape.stride, shape.out_hw
    dx = np.zeros((len(dz), c, h + t + b, wd + l + r))
    for u in range(shape.kernel[0]):
        for v in range(shape.kernel[1]):
            dx[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += dp[..., u, v].transpose(0, 3, 1, 2)
    return dw, dx[:, :, t:t + h, l:l + wd]


def loss_and_grads(layers: Sequence[FloatLayer], X: np.ndarray, y: np.ndarray):
    """Mean cross-entropy of the float network on ``(X, y)`` and ``(dWs, dbs)``."""
    acts, cache = [X], []
    for i, l in enumerate(layers):
        a = acts[-1]
        if l.is_conv:
            patches = l.conv.patches(a)
            z = np.tensordot(patches, l.weight, axes=([3, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
            z = z + l.bias[:, None, None]
        else:
            patches, z = None, a @ l.weight.T + l.bias
        last = i == len(layers) - 1
        h = z if last else np.maximum(z, 0.0)
        cache.append((patches, z, h))
        out = l.pool(h) if l.pool is not None else h
        acts.append(out.reshape(len(X), -1))
    loss, d = softmax_xent(acts[-1], y)
    dws, dbs = [None] * len(layers), [None] * len(layers)
    for i in reversed(range(len(layers))):
        l = layers[i]
        patches, z, h = cache[i]
        if l.pool is not None:
            d = _pool_backward(l.pool, h, d.reshape(len(X), *l.out_shape))
        d = d.reshape(z.shape)
        if i < len(layers) - 1:
            d = d * (z > 0)
        if l.is_conv:
            dbs[i] = d.sum(axis=(0, 2, 3))
            dws[i], d = _conv_backward(l.conv, patches, l.weight, d, need_dx=i > 0)
        else:
            dws[i], dbs[i] = d.T @ acts[i], d.sum(axis=0)
            d = d @ l.weight
    return loss, dws, dbs


def _check_pools(layers):
    for l in layers:
        if l.pool is not None and (l.pool.kind != "max" or l.pool.size != l.pool.stride):
            raise PermdealError(f"layer {l.name}: the trainer takes non-overlapping max pooling "
                                f"only, not {l.pool.kind} {l.pool.size} stride {l.pool.stride}")


def train(layers: Sequence[FloatLayer], params: Sequence[Params], X: npt.ArrayLike,
          y: npt.ArrayLike, *, epochs: int = 20, lr: float = 2e-3, batch_size: int = 32,
          seed: int = 0) -> list[FloatLayer]:
    """Train the network whose layer ``i`` takes its weight from ``params[i]`` (biases from
    ``layers[i]``); the parametrizations are updated in place, and the trained float layers
    returned."""
    _check_pools(layers)
    X, y = np.asarray(X, np.float64), np.asarray(y, np.int64)
    biases = [np.array(l.bias, np.float64) for l in layers]
    flat = [a for p in params for a in p.arrays] + biases

    def current():
        return [dataclasses.replace(l, weight=p.weight(), bias=b)
                for l, p, b in zip(layers, params, biases)]

    def grads(Xb, yb):
        loss, dws, dbs = loss_and_grads(current(), Xb, yb)
        return loss, [g for p, dw in zip(params, dws) for g in p.grads(dw)] + dbs

    def after():
        for p in params:
            p.after_step()

    adam_loop(flat, grads, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
              after_step=after, what="conv training")
    return current()


def init_cnn(seed: int = 0) -> list[FloatLayer]:
    """conv3x3 1->8 (pad 1), conv3x3 8->16 (pad 1), max pool 2x2, FC 256 -> 10 on 1x8x8 inputs,
    He-initialised."""
    rng = np.random.default_rng(seed)
    c1 = ConvShape((1, 8, 8), 8, (3, 3), (1, 1), (1, 1, 1, 1))
    c2 = ConvShape((8, 8, 8), 16, (3, 3), (1, 1), (1, 1, 1, 1))

    def he(shape):
        return rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)

    return [FloatLayer("conv1", he(c1.weight_shape), np.zeros(8), c1),
            FloatLayer("conv2", he(c2.weight_shape), np.zeros(16), c2, Pool("max", (2, 2), (2, 2))),
            FloatLayer("fc", he((10, 256)), np.zeros(10))]


def accuracy(layers: Sequence[FloatLayer], X: npt.ArrayLike, y: npt.ArrayLike) -> float:
    return float(np.mean(np.argmax(float_forward(layers, X), axis=1) == np.asarray(y)))


def compare_formats(dense: Sequence[FloatLayer], calibration: npt.ArrayLike,
                    p: Sequence[int], spec: QuantSpec | None = None, data: tuple | None = None,
                    finetune_epochs: int = 20, seed: int = 0, S: int = 3, E: int = 3,
                    b_bits: int = 8) -> dict:
    """The float CNN ``dense`` dense, permuted-diagonal (block size per layer ``p``) and SmartDeal
    (``S``, ``E``, ``b_bits``): per format (``"dense"``, ``"permdiag"``, ``"smartdeal"``) its
    bit-exact :class:`~.conv_model.ConvNet` (``"net"``, formats of ``spec``, default 16-bit
    activations fitted to ``calibration`` and 16-bit weights and biases) and its float layers
    (``"layers"``). With ``data`` ``(X_train, y_train, X_test, y_test)`` PD and SmartDeal are
    fine-tuned ``finetune_epochs`` on the training split with the structure kept, and each format
    has its test accuracies: ``"projected"`` (PD, SmartDeal: before fine-tuning), ``"float"`` and
    ``"fixed"`` (None without data). Each network's FC layer after a convolution takes the
    feature map in its engine's order, its structure over those columns (PD HWC, SmartDeal
    ``(C, H, W)``, docs/design.md 14.3); its float layers stay in the float model's order."""
    spec = spec or QuantSpec(act=16, weight=16, bias=16)
    tune = data is not None and finetune_epochs > 0

    def acc(layers):
        return None if data is None else accuracy(layers, data[2], data[3])

    def entry(layers, method, projected=None, **kw):
        net = compress_network(layers, method, spec=spec, calibration=calibration, **kw)
        fixed = None
        if data is not None:
            codes, _ = net.quantize_input(data[2])
            fixed = float(np.mean(np.argmax(net.forward(codes), axis=1) == data[3]))
        return {"layers": list(layers), "net": net, "projected": projected,
                "float": acc(layers), "fixed": fixed}

    def structured(params):
        projected = [dataclasses.replace(l, weight=q.weight()) for l, q in zip(dense, params)]
        tuned = train(dense, params, data[0], data[1], epochs=finetune_epochs, lr=1e-3,
                      seed=seed) if tune else projected
        return acc(projected), tuned

    out = {"dense": entry(dense, "permdiag", p=1)}
    orders = input_orders(dense, METHOD_FLATTEN["permdiag"])   # HWC columns (design.md 14.3)
    pd = [pd_params(l.weight, pi, o) for l, pi, o in zip(dense, p, orders)]
    projected, tuned = structured(pd)
    out["permdiag"] = entry(tuned, "permdiag", projected, p=list(p))
    sd_orders = input_orders(dense, METHOD_FLATTEN["smartdeal"])   # the SmartDeal engine's order
    sdp = [sd_params(l.weight, S, E, o) for l, o in zip(dense, sd_orders)]
    projected, tuned = structured(sdp)
    out["smartdeal"] = entry(tuned, "smartdeal", projected, S=S, E=E, b_bits=b_bits,
                             decompositions=[q.decomposition() for q in sdp])
    return out


def train_cnn(seed: int = 0, epochs: int = 15) -> list[FloatLayer]:
    """:func:`init_cnn` trained dense on the digits training split of ``seed``."""
    X_tr, y_tr, _, _ = load_digits_split(seed)
    layers = init_cnn(seed)
    return train(layers, [dense_params(l.weight) for l in layers], X_tr, y_tr, epochs=epochs,
                 seed=seed)


def digits_cnn_study(p: Sequence[int] = (1, 4, 4), seed: int = 0, epochs: int = 15,
                     finetune_epochs: int = 20, spec: QuantSpec | None = None) -> dict:
    """Dense, permuted-diagonal (block size per layer ``p``; projected, then fine-tuned) and
    SmartDeal (decomposed, then fine-tuned) accuracy of :func:`init_cnn` trained on the digits
    (:func:`train_cnn`), on the test split, float and bit-exact fixed point
    (:func:`compare_formats`)."""
    data = load_digits_split(seed)
    res = compare_formats(train_cnn(seed, epochs), data[0], p, spec, data, finetune_epochs, seed)
    d, pd, sdr = res["dense"], res["permdiag"], res["smartdeal"]
    return {"dense": d["float"], "dense_fixed": d["fixed"], "pd_projected": pd["projected"],
            "pd": pd["float"], "pd_fixed": pd["fixed"], "pd_report": pd["net"].report(),
            "sd_projected": sdr["projected"], "sd": sdr["float"], "sd_fixed": sdr["fixed"],
            "sd_report": sdr["net"].report()}
