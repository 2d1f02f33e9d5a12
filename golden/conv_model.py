"""Quantized convolutional networks: conv and FC layers compressed with permuted-diagonal or
SmartDeal weights, and their bit-exact integer inference (docs/design.md section 14.3).

A conv layer computes, on integer activation codes, the exact ``int64`` accumulator of every
output pixel and channel (:meth:`QuantConvLayer.accumulate`: the patches of :mod:`.conv` times the
weight codes), then the write-back of docs/design.md section 3 per value (bias, round half up,
saturate, ReLU), then the pooling on codes (max, or the average rounded half up). The formats are
those of the FC layers: one ``LayerFormats`` per layer, activations chaining, ``max_terms`` the
longest dot product of one output (``C*KH*KW`` for dense and SmartDeal weights, the most stored
weights of one output channel for permuted-diagonal ones).

FC layers of the network are the FC models' own (:class:`~.model.QuantLayer`,
:class:`~.smartdeal_model.SmartDealLayer`), so a conv network's FC part computes exactly what an
FC-only model does. :class:`ConvNet` chains them. Each conv layer is also its *matrix layer*
(:meth:`QuantConvLayer.matrix_layer`): the FC layer of the same codes that one output pixel's
patch meets (permuted-diagonal: the patch-order matrix of :mod:`.conv`; SmartDeal: the codes of
the ``O x C*KH*KW`` matrix view), which is what compressed-model folders and ROM images hold
(:mod:`.conv_folder`).

The FC layer right after a convolution takes the (pooled) feature map flattened in the network's
``flatten`` order (docs/design.md 14.3, 14.6), the order of the feature map in the method's engine:
``"hwc"`` for permuted-diagonal networks, pixel by pixel as the PermDNN engine's activation banks
hold it (:func:`~.conv.hwc_order`; :func:`compress_network` permutes that layer's weight columns
from the float model's ``(C, H, W)`` order before projecting them), ``"chw"`` for SmartDeal
networks, channel by channel as the SmartDeal engine's lists hold it (and for format-2 folders
and format-3 ROM images, written before the order changed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer
from permdeal.errors import PermdealError

from . import smartdeal as sd
from .compress import QuantSpec, _fit_or_fixed, _layer_formats, expand_p
from .conv import (FLATTEN, FLATTEN_ORDERS, METHOD_FLATTEN, ConvPermDiag, ConvShape, Pool, hwc_order, im2col,
                   matrix_view)
from .float_model import FloatLayer
from .formats import Fixed, LayerFormats, writeback
from .model import QuantLayer, QuantModel
from .permdiag import PermDiag, index_bits
from .smartdeal_model import SmartDealLayer

METHODS = ("permdiag", "smartdeal")


@dataclass(eq=False)
class QuantConvLayer:
    """One quantized conv layer: ``weights`` are a :class:`ConvPermDiag` of integer codes or a
    dense ``(O, C, KH, KW)`` array of codes (SmartDeal's rebuilt weights, ``codes`` their
    Ce/B codes of the ``O x C*KH*KW`` matrix view); ``bias`` codes, formats, ReLU, pooling."""

    name: str
    conv: ConvShape
    weights: ConvPermDiag | np.ndarray
    bias: np.ndarray
    fmts: LayerFormats
    relu: bool
    pool: Pool | None = None
    saturated: dict = field(default_factory=dict)
    codes: sd.SmartDealCodes | None = None

    def __post_init__(self):
        w_shape = self.weights.shape
        if tuple(w_shape) != self.conv.weight_shape:
            raise PermdealError(f"layer {self.name}: weights {list(w_shape)} do not fit the conv "
                                f"geometry {list(self.conv.weight_shape)}")
        self.bias = np.asarray(self.bias, dtype=np.int64)
        if self.bias.shape != (self.conv.out_channels,):
            raise PermdealError(f"layer {self.name}: bias has shape {self.bias.shape}, expected "
                                f"({self.conv.out_channels},)")
        codes = np.concatenate([m.q.ravel() for m in self.weights.mats]) \
            if isinstance(self.weights, ConvPermDiag) else np.asarray(self.weights).ravel()
        if not np.issubdtype(codes.dtype, np.integer):
            raise PermdealError(f"layer {self.name}: weights must be integer codes")
        for what, c, fmt in (("weight", codes, self.fmts.weight), ("bias", self.bias,
                                                                     self.fmts.bias)):
            if c.size and (c.min() < fmt.min or c.max() > fmt.max):
                raise PermdealError(f"layer {self.name}: {what} codes {c.min()}..{c.max()} do not "
                                    f"fit format {fmt}")
        if self.fmts.max_terms < self.max_terms:
            raise PermdealError(f"layer {self.name}: formats sized for {self.fmts.max_terms} "
                                f"terms, the layer has dot products of {self.max_terms}")

    @property
    def max_terms(self) -> int:
        if isinstance(self.weights, ConvPermDiag):
            return self.weights.max_terms
        return int(np.prod(self.conv.weight_shape[1:]))

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.conv.out_shape
        return (c, *self.pool.out_hw(h, w)) if self.pool else (c, h, w)

    @property
    def shape(self) -> tuple[int, int]:
        """``(outputs, inputs)``, both flattened: the layer as the linear map it is."""
        return int(np.prod(self.out_shape)), int(np.prod(self.conv.in_shape))

    @property
    def is_permdiag(self) -> bool:
        return isinstance(self.weights, ConvPermDiag)

    def matrix_layer(self) -> QuantLayer | SmartDealLayer:
        """The FC layer one output pixel computes: permuted-diagonal weights as the patch-order
        matrix (:meth:`ConvPermDiag.to_matrix`), SmartDeal codes of the matrix view; the same
        bias, formats, ReLU and saturation counts."""
        if self.is_permdiag:
            return QuantLayer(self.name, self.weights.to_matrix(), self.bias, self.fmts,
                              self.relu, dict(self.saturated))
        return SmartDealLayer(self.name, self.codes, self.bias, self.fmts, self.relu,
                              dict(self.saturated))

    @classmethod
    def from_matrix_layer(cls, ml: QuantLayer | SmartDealLayer, conv: ConvShape,
                          pool: Pool | None) -> QuantConvLayer:
        """Inverse of :meth:`matrix_layer` for the geometry ``conv`` and pooling ``pool``."""
        try:
            if isinstance(ml, QuantLayer):
                w = ConvPermDiag.from_matrix(ml.matrix, conv.kernel, conv.in_shape[0])
                if w.shape != conv.weight_shape:
                    raise PermdealError(f"weights {list(w.shape)} do not fit the conv geometry "
                                        f"{list(conv.weight_shape)}")
                return cls(ml.name, conv, w, ml.bias, ml.fmts, ml.relu, pool,
                           dict(ml.saturated))
            if ml.shape != matrix_view(np.zeros(conv.weight_shape)).shape:
                raise PermdealError(f"codes of a {ml.shape[0]} x {ml.shape[1]} matrix, the conv "
                                    f"geometry's matrix view is {conv.out_channels} x "
                                    f"{int(np.prod(conv.weight_shape[1:]))}")
            return cls(ml.name, conv, ml.weights.reshape(conv.weight_shape), ml.bias, ml.fmts,
                       ml.relu, pool, dict(ml.saturated), codes=ml.codes)
        except PermdealError as e:
            msg = str(e).removeprefix(f"layer {ml.name}: ")
            raise PermdealError(f"layer {ml.name}: {msg}") from None

    def im2col_accumulate(self, x: npt.ArrayLike) -> np.ndarray:
        """:meth:`accumulate` as the hardware will compute it: the matrix layer's integer
        product with every output pixel's patch in the patch order (``(batch, OH, OW, O)``)."""
        ml = self.matrix_layer()
        x = np.asarray(x, np.int64).reshape(len(x), -1)
        if self.is_permdiag:
            y = ml.matrix.int_matvec(im2col(self.conv, x, ml.matrix.p))
        else:
            cols = self.conv.patches(x).reshape(len(x), self.conv.positions, -1)
            y = cols @ ml.weights.T
        return y.reshape(len(x), *self.conv.out_hw, -1)

    def accumulate(self, x: npt.ArrayLike) -> np.ndarray:
        """Exact ``int64`` accumulators ``(batch, OH, OW, O)`` of input codes ``(batch, C*H*W)``
        (``fmts.acc_frac`` fraction bits, no bias)."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise PermdealError(f"layer {self.name}: integer activation codes needed, not "
                                f"{x.dtype}")
        patches = self.conv.patches(x.astype(np.int64).reshape(len(x), -1))
        if isinstance(self.weights, ConvPermDiag):
            return self.weights.apply(patches, integer=True)
        return np.tensordot(patches, np.asarray(self.weights, np.int64),
                            axes=([3, 4, 5], [1, 2, 3]))

    def forward(self, x: npt.ArrayLike) -> np.ndarray:
        """Integer codes in (``fmts.act``, ``(batch, C*H*W)``), codes out (``fmts.out``,
        ``(batch, n_out)`` in ``(C, H, W)`` order), bit-exact."""
        x = np.asarray(x)
        single = x.ndim == 1
        x = x.reshape(1 if single else len(x), -1)
        y = writeback(self.accumulate(x), self.bias, self.fmts, self.relu).transpose(0, 3, 1, 2)
        if self.pool is not None:
            y = self.pool.codes(y)
        y = y.reshape(len(x), -1)
        return y[0] if single else y


def input_orders(layers: Sequence, flatten: str = FLATTEN) -> list[np.ndarray | None]:
    """Per layer (float or quantized), the order its inputs come in as indices into the previous
    layer's ``(C, H, W)``-flattened outputs: for the FC layer right after a convolution,
    :func:`~.conv.hwc_order` of that convolution's (pooled) output shape when ``flatten`` is
    ``"hwc"``; None for every other layer (and for every layer with ``"chw"``)."""
    if flatten not in FLATTEN_ORDERS:
        raise PermdealError(f"flatten must be one of {', '.join(map(repr, FLATTEN_ORDERS))}, not "
                            f"{flatten!r}")
    out = [None] * len(layers)
    for i, (prev, l) in enumerate(zip(layers, layers[1:]), start=1):
        conv_in = getattr(prev, "conv", None) is not None and getattr(l, "conv", None) is None
        if conv_in and flatten == "hwc":
            out[i] = hwc_order(prev.out_shape)
    return out


def permute_columns(weight: npt.ArrayLike, order: np.ndarray | None) -> np.ndarray:
    """``weight[:, order]``: an FC weight of ``(C, H, W)``-ordered inputs as the weight of inputs
    in ``order`` (:func:`input_orders`); the weight itself when ``order`` is None."""
    w = np.asarray(weight)
    return w if order is None else w[:, order]


def unpermute_columns(weight: npt.ArrayLike, order: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`permute_columns`: the weight of ``(C, H, W)``-ordered inputs."""
    w = np.asarray(weight)
    if order is None:
        return w
    out = np.empty_like(w)
    out[:, order] = w
    return out


class ConvNet(QuantModel):
    """A chain of quantized conv and FC layers (:class:`QuantModel`'s inference, on flattened
    ``C*H*W`` inputs); ``config`` holds a SmartDeal network's compression settings (as
    :class:`~.smartdeal_model.SmartDealModel`'s); ``flatten`` is the order the FC layer right
    after a convolution takes the feature map in (``"hwc"``, or ``"chw"`` for folders written
    before the order changed; docs/design.md 14.6). Compressed-model folders:
    :mod:`.conv_folder`."""

    def __init__(self, layers, method="permdiag", config=None, flatten=FLATTEN):
        super().__init__(layers, method)
        self.config = config
        self._orders = input_orders(self.layers, flatten)
        self.flatten = flatten

    def forward(self, x: npt.ArrayLike, trace: bool = False) -> np.ndarray | list[np.ndarray]:
        """Bit-exact inference on input codes (``(n,)`` or ``(batch, n)``, ``(C, H, W)``
        flattened): the last layer's output codes, or with ``trace`` every layer's input and
        output codes (``[x, y1, y2, ...]``), a conv layer's output flattened as the next layer
        reads it (in the ``flatten`` order before an FC layer)."""
        acts = [np.asarray(x, dtype=np.int64)]
        for layer, order in zip(self.layers, self._orders[1:] + [None]):
            y = layer.forward(acts[-1])
            acts.append(y if order is None else y[..., order])
        return acts if trace else acts[-1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of a network that starts with a convolution, else ``(n,)``."""
        l = self.layers[0]
        return l.conv.in_shape if isinstance(l, QuantConvLayer) else (l.shape[1],)

    def matrix_layers(self) -> list:
        """Every layer as the FC layer its ROM words and folder arrays hold."""
        return [l.matrix_layer() if isinstance(l, QuantConvLayer) else l for l in self.layers]

    def write(self, folder, source=None) -> dict:
        """Write ``model.npz`` and ``manifest.json`` into ``folder`` (:mod:`.conv_folder`)."""
        from .conv_folder import write_net
        return write_net(self, folder, source)

    def write_folder(self, folder, source=None) -> tuple[dict, None]:
        """The compressed-model folder (no ROM images: a SmartDeal conv layer has none yet)."""
        return self.write(folder, source), None

    def manifest(self, arrays_sha256, source=None) -> dict:
        from .conv_folder import net_manifest
        return net_manifest(self, arrays_sha256, source)

    def table(self) -> str:
        """One line per layer: kind, geometry, pooling, shapes, block size or SmartDeal, weights
        stored, MACs per inference, formats, ReLU, saturations."""
        from permdeal.tables import table
        rows = []
        for l, c in zip(self.layers, self.report()):
            if isinstance(l, QuantConvLayer):
                g = l.conv
                geo = (f"{'x'.join(map(str, g.kernel))} s{'x'.join(map(str, g.stride))} "
                       f"p{','.join(map(str, g.padding))}")
                pool = f"{l.pool.kind} {'x'.join(map(str, l.pool.size))}" if l.pool else ""
                shape = f"{'x'.join(map(str, g.in_shape))} -> {'x'.join(map(str, l.out_shape))}"
            else:
                geo, pool, shape = "", "", f"{l.shape[1]} -> {l.shape[0]}"
            f = l.fmts
            rows.append([l.name, c["kind"], shape, geo, pool, c["method"], c["weights_stored"],
                         c["macs"], f.act, f.weight, f.out, f"{f.acc_bits}:{f.acc_frac}",
                         "yes" if l.relu else "no", sum(l.saturated.values())])
        return table(["layer", "kind", "in -> out", "kernel", "pool", "weights as", "stored",
                      "MACs", "act", "weight", "out", "acc", "relu", "saturated"], rows,
                     "llllll" + "r" * 8)

    def report(self) -> list[dict]:
        """Per layer: weights and MACs per inference, dense and as stored, and storage in bits
        (dense at the layer's weight width; PD with its index bits; SmartDeal's Ce and B codes,
        docs/design.md 5.1)."""
        return [_counts(l) for l in self.layers]


def _counts(l) -> dict:
    conv = isinstance(l, QuantConvLayer)
    uses = l.conv.positions if conv else 1
    shape = l.conv.weight_shape if conv else l.shape
    dense_w = int(np.prod(shape))
    wbits = l.fmts.weight.bits
    w = l.weights if conv else getattr(l, "matrix", None)
    codes = l.codes if conv else getattr(l, "codes", None)
    if isinstance(w, (ConvPermDiag, PermDiag)):
        stored = w.n_weights
        mats = w.mats if conv else [w]
        mb, nb = mats[0].blocks
        bits = len(mats) * mb * nb * (w.p * wbits + index_bits(w.p))
        method = f"permdiag p={w.p}"
    else:
        stored = dense_w
        bits = codes.codes.size * (codes.E + 2) + codes.b_int.size * codes.b_bits
        method = "smartdeal"
    return {"name": l.name, "kind": "conv" if conv else "fc", "method": method,
            "weight_shape": list(shape), "weights_dense": dense_w, "weights_stored": stored,
            "macs_dense": dense_w * uses, "macs": stored * uses,
            "bits_dense": dense_w * wbits, "bits": int(bits)}


# -- compression ------------------------------------------------------------------------------

def block_sizes(layers: Sequence[FloatLayer], p: int) -> list[int]:
    """PD block size ``p`` for every layer but those with fewer inputs per kernel position (a
    convolution's channels, an FC layer's inputs) than ``p``, which stay dense (``p = 1``): a
    permuted-diagonal ``O x C`` pattern with ``C < p`` would leave most outputs without a weight
    (the digits CNN's 1-channel first layer)."""
    return [1 if (l.conv.in_shape[0] if l.is_conv else l.n_in) < p else p for l in layers]


def _structure(l, method, p, S, E, b_bits, rows_per_block, dec=None):
    """``(compressed form, float weights it stands for)`` of one float layer (SmartDeal: of its
    decomposition ``dec`` when given)."""
    try:
        if method == "permdiag":
            w = ConvPermDiag.from_dense(l.weight, p) if l.is_conv else \
                PermDiag.from_dense(l.weight, p)
            return w, w.to_dense()
        if l.is_conv and l.weight.shape[3] != S:
            raise PermdealError(f"SmartDeal splits kernel rows into chunks of S = {S}; the "
                                f"{l.weight.shape[2]}x{l.weight.shape[3]} kernel's rows are "
                                f"{l.weight.shape[3]} wide")
        if dec is None:
            dec = sd.decompose(matrix_view(l.weight), S=S, E=E, rows_per_block=rows_per_block)
        elif dec.shape != matrix_view(l.weight).shape:
            raise PermdealError(f"the decomposition is of a {dec.shape[0]} x {dec.shape[1]} "
                                f"matrix, the weights' matrix view is "
                                f"{' x '.join(map(str, matrix_view(l.weight).shape))}")
        enc = sd.quantize(dec, b_bits)
        return enc, sd.rebuild_float(enc).reshape(l.weight.shape)
    except PermdealError as e:
        raise PermdealError(f"layer {l.name}: {e}") from None


def _boundaries(layers, x, relus):
    """The float activations at every layer boundary (each layer's output before pooling; its
    range is the pooled output's too)."""
    acts, a = [x], x
    for l, relu in zip(layers, relus):
        y = l.linear(a)
        y = np.maximum(y, 0.0) if relu else y
        acts.append(y)
        y = l.pool(y) if l.pool is not None else y
        a = y.reshape(len(y), -1)
    return acts


def compress_network(layers: Sequence[FloatLayer], method: str = "permdiag", p: int = 4,
                     spec: QuantSpec | None = None, calibration: npt.ArrayLike | None = None,
                     relu_last: bool = False, S: int = 3, E: int = 3, b_bits: int = 8,
                     rows_per_block: int | None = None,
                     decompositions: Sequence[sd.Decomposition | None] | None = None) -> ConvNet:
    """Compress float layers (conv and FC, :mod:`.float_model`) to a :class:`ConvNet`.

    ``method`` ``"permdiag"``: every layer projected with block size ``p`` (one, or one per
    layer), a conv layer per kernel position. ``"smartdeal"``: every layer's matrix view
    decomposed (``S``, ``E``, ``rows_per_block``; a conv kernel's rows must be ``S`` wide) and B
    quantized to ``b_bits``; ``decompositions`` (one per layer, or None) gives a layer's
    decomposition instead, e.g. a fine-tuned one (:mod:`.conv_train`). Formats as
    :func:`~.compress.compress_permdiag` fits them (``calibration``: ``(batch, n_in)`` float
    inputs, needed when ``spec.act`` is a width).

    The FC layer right after a convolution takes the feature map in the order of the method's
    engine (:data:`~.conv.METHOD_FLATTEN`, docs/design.md 14.3): permuted-diagonal in HWC order,
    its weight columns permuted (:func:`input_orders`) before projection, so that its pattern is
    over HWC columns; SmartDeal in the float model's ``(C, H, W)`` order. The network computes what the
    float layers do: the same products, only the inputs of that layer in another order.
    """
    spec = QuantSpec() if spec is None else spec
    if method not in METHODS:
        raise PermdealError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not layers:
        raise PermdealError("a model needs at least one layer")
    ps = expand_p(p, [l.name for l in layers])
    S = integer(S, "chunk width S", 1, sd.MAX_S)
    E, b_bits = sd._check_E(E), sd._check_b_bits(b_bits)
    relus = [True] * (len(layers) - 1) + [relu_last]
    decs = list(decompositions) if decompositions is not None else [None] * len(layers)
    if len(decs) != len(layers):
        raise PermdealError(f"got {len(decs)} decompositions for {len(layers)} layers")
    orders = input_orders(layers, METHOD_FLATTEN[method])
    layers = [l if o is None else dataclasses.replace(l, weight=permute_columns(l.weight, o))
              for l, o in zip(layers, orders)]
    forms = [_structure(l, method, pi, S, E, b_bits, rows_per_block, dec)
             for l, pi, dec in zip(layers, ps, decs)]
    if isinstance(spec.act, Fixed):
        acts = [spec.act] * (len(layers) + 1)
    else:
        if calibration is None:
            raise PermdealError("activation formats given as a bit width need calibration inputs")
        x = np.asarray(calibration, dtype=np.float64)
        if x.ndim < 2 or x[0].size != layers[0].n_in or len(x) == 0:
            raise PermdealError(f"calibration inputs must be (batch, {layers[0].n_in}), not "
                                f"{x.shape}")
        approx = [FloatLayer(l.name, unpermute_columns(wf, o), l.bias, l.conv, l.pool)
                  for l, (_, wf), o in zip(layers, forms, orders)]
        with np.errstate(over="ignore", invalid="ignore"):
            bounds = _boundaries(approx, x.reshape(len(x), -1), relus)
        try:
            acts = [Fixed.fit(spec.act, a) for a in bounds]
        except PermdealError as e:
            raise PermdealError(f"calibration activations: {e}") from None
    out = []
    for i, (l, (form, wf), relu) in enumerate(zip(layers, forms, relus)):
        out.append(_quant_layer(l, form, wf, relu, acts[i], acts[i + 1], spec))
    config = None if method == "permdiag" else {
        "S": S, "E": E, "b_bits": b_bits, "rows_per_block": rows_per_block, "threshold": None,
        "prune": 0.0, "prune_group": 1}
    return ConvNet(out, method=method, config=config, flatten=METHOD_FLATTEN[method])


def _quant_layer(l, form, wf, relu, act_in, act_out, spec):
    what = f"layer {l.name} weights"
    if isinstance(form, sd.SmartDealCodes):
        wfmt, _, _ = _fit_or_fixed(spec.weight, wf, what, spec.allow_saturation)
        try:
            wq, w_sat = sd.rebuild_int(form, wfmt)
        except PermdealError as e:
            raise PermdealError(f"layer {l.name}: {e}") from None
        if w_sat and not spec.allow_saturation:
            raise PermdealError(f"{what}: {w_sat} rebuilt weight(s) saturate in format {wfmt}")
        terms = int(np.prod(l.weight.shape[1:]))
        fmts, bq, b_sat = _layer_formats(l, wfmt, act_in, act_out, spec, terms)
        sat = {"weight": w_sat, "bias": b_sat, "b": form.b_saturated}
        if not l.is_conv:
            return SmartDealLayer(l.name, form, bq, fmts, relu, sat)
        return QuantConvLayer(l.name, l.conv, wq.reshape(l.weight.shape), bq, fmts, relu, l.pool,
                              sat, codes=form)
    mats = form.mats if l.is_conv else [form]
    stored = np.concatenate([m.q.ravel() for m in mats])
    wfmt, _, w_sat = _fit_or_fixed(spec.weight, stored, what, spec.allow_saturation)
    fmts, bq, b_sat = _layer_formats(l, wfmt, act_in, act_out, spec, form.max_terms)
    sat = {"weight": w_sat, "bias": b_sat}
    qform = form.quantize(wfmt)[0]
    if not l.is_conv:
        return QuantLayer(l.name, qform, bq, fmts, relu, sat)
    return QuantConvLayer(l.name, l.conv, qform, bq, fmts, relu, l.pool, sat)
