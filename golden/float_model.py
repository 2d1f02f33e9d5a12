"""Float models: their layers, the ``.npz`` format that holds them, and their float forward pass
(docs/design.md section 14.1; this module is the one statement of the key names).

A float model is a chain of layers, each fully connected (weight ``out x in``) or a convolution
(weight ``O x C x KH x KW``), with ReLU after every layer but the last. A convolution may be
followed by pooling (after its ReLU); a fully connected layer after a convolution takes its
output flattened in ``(C, H, W)`` order (ONNX's ``Flatten``). The ``.npz`` holds, per layer
``NAME`` in file order:

============== ============================================ ======================
key            value                                        when
============== ============================================ ======================
NAME.weight    ``out x in`` or ``O x C x KH x KW`` floats   always
NAME.bias      ``(out,)`` floats                            optional (zeros)
NAME.stride    ``[sh, sw]``                                 conv, optional (1, 1)
NAME.padding   ``[top, left, bottom, right]``               conv, optional (0s)
NAME.maxpool   ``[kh, kw, sh, sw]``                         conv, optional
NAME.avgpool   ``[kh, kw, sh, sw]``                         conv, optional
input_shape    ``[C, H, W]``                                when layer 0 is a conv
============== ============================================ ======================

A file of ``NAME.weight`` (2-D) and ``NAME.bias`` arrays alone, as ``numpy.savez(f,
**torch_model.state_dict())`` writes an MLP's, is the FC-only model of format version 1 and
reads as it always did.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import atomic
from permdeal.errors import PermdealError

from .conv import ConvShape, Pool, conv2d

WEIGHT, BIAS, STRIDE, PADDING = "weight", "bias", "stride", "padding"
#: Pooling keys and the :class:`Pool` kind each stands for.
POOL_KEYS = {"maxpool": "max", "avgpool": "avg"}
#: The model-level key: a conv network's input ``[C, H, W]``.
INPUT_SHAPE = "input_shape"
LAYER_KEYS = (WEIGHT, BIAS, STRIDE, PADDING, *POOL_KEYS)
_KEY = re.compile(rf"(?P<name>.+)\.(?P<kind>{'|'.join(LAYER_KEYS)})")


@dataclass
class FloatLayer:
    """One layer of a float model: fully connected (``y = weight @ x + bias``, ``conv`` None)
    or a convolution (``weight`` ``(O, C, KH, KW)``, ``conv`` its :class:`ConvShape`), and the
    pooling after it (``pool``, convolutions only)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    conv: ConvShape | None = None
    pool: Pool | None = None

    @property
    def is_conv(self) -> bool:
        return self.conv is not None

    @property
    def n_in(self) -> int:
        """Inputs, flattened."""
        return int(np.prod(self.conv.in_shape)) if self.conv else self.weight.shape[1]

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Output shape after pooling: ``(C, H, W)``, or ``(out,)``."""
        if self.conv is None:
            return (self.weight.shape[0],)
        c, h, w = self.conv.out_shape
        return (c, *self.pool.out_hw(h, w)) if self.pool else (c, h, w)

    @property
    def n_out(self) -> int:
        """Outputs, flattened (after pooling)."""
        return int(np.prod(self.out_shape))

    def linear(self, x: np.ndarray) -> np.ndarray:
        """The layer's affine part on flattened inputs ``(batch, n_in)``: ``(batch, O, OH, OW)``
        for a convolution, ``(batch, out)`` for a fully connected layer."""
        if self.conv is None:
            return x @ self.weight.T + self.bias
        return conv2d(x.reshape(x.shape[0], *self.conv.in_shape), self.weight, self.bias,
                      self.conv)


def forward(layers: Sequence[FloatLayer], x: npt.ArrayLike, relu_last: bool = False) -> np.ndarray:
    """Float forward pass on ``(batch, n_in)`` inputs (flattened ``C*H*W`` for a conv network):
    every layer, ReLU after every layer but the last (and it too with ``relu_last``), pooling
    after a layer's ReLU, outputs flattened ``(batch, n_out)``."""
    a = np.asarray(x, dtype=np.float64)
    a = a.reshape(a.shape[0], -1)
    for i, l in enumerate(layers):
        y = l.linear(a)
        if i < len(layers) - 1 or relu_last:
            y = np.maximum(y, 0.0)
        if l.pool is not None:
            y = l.pool(y)
        a = y.reshape(y.shape[0], -1)
    return a


def fc_only(layers: Sequence[FloatLayer], what: str) -> None:
    """Refuse a model with a convolution: ``what`` (a command) handles FC layers only so far."""
    for l in layers:
        if l.is_conv:
            shape = "x".join(map(str, l.weight.shape))
            raise PermdealError(f"layer {l.name} is a convolution ({shape} weights); {what} "
                                "takes fully connected layers only so far")


# -- the .npz format --------------------------------------------------------------------------

def _ints(a: np.ndarray, n: int, where: str, lo: int) -> tuple[int, ...]:
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer) or (a.size and a.min() < lo):
        raise PermdealError(f"{where} must be {n} integers >= {lo}, not {a.dtype} values of "
                            f"shape {a.shape}" + (f" ({a.tolist()})" if a.size <= 8 else ""))
    return tuple(int(v) for v in a)


def layers_from_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> list[FloatLayer]:
    """Check the arrays of a float-model ``.npz`` (``path`` names it in errors) and build its
    layers: names, shapes, chaining, finiteness, conv geometry and pooling."""
    layers: dict[str, dict] = {}
    input_shape = None
    for key, value in arrays.items():
        if key == INPUT_SHAPE:
            input_shape = _ints(value, 3, f"{path}: {INPUT_SHAPE}", 1)
            continue
        m = _KEY.fullmatch(key)
        if not m:
            raise PermdealError(f"{path}: unexpected array {key!r}; a model holds only "
                                "NAME.weight (out x in) and NAME.bias arrays, and for "
                                f"convolutions NAME.{STRIDE}, NAME.{PADDING}, NAME.maxpool, "
                                f"NAME.avgpool and {INPUT_SHAPE}")
        layers.setdefault(m["name"], {})[m["kind"]] = value
    if not layers:
        raise PermdealError(f"{path}: holds no layers")
    out: list[FloatLayer] = []
    shape = input_shape
    for name, parts in layers.items():
        layer = _layer(name, parts, shape, out, path)
        out.append(layer)
        shape = layer.out_shape
    if input_shape is not None and not out[0].is_conv:
        raise PermdealError(f"{path}: {INPUT_SHAPE} is given, but the first layer "
                            f"{out[0].name} is not a convolution")
    return out


def _layer(name, parts, shape, prev, path):
    if WEIGHT not in parts:
        raise PermdealError(f"{path}: layer {name!r} has a bias but no {name}.weight")
    w = parts[WEIGHT]
    if w.ndim not in (2, 4) or 0 in w.shape:
        raise PermdealError(f"{path}: {name}.weight must be a non-empty 2-D (out x in) array, or "
                            f"4-D (O x C x KH x KW) for a convolution, not shape {w.shape}")
    b = parts.get(BIAS, np.zeros(w.shape[0]))
    if b.shape != (w.shape[0],):
        raise PermdealError(f"{path}: {name}.bias has shape {b.shape}, expected ({w.shape[0]},) "
                            f"to match {name}.weight {w.shape}")
    for what, a in ((WEIGHT, w), (BIAS, b)):
        bad = np.count_nonzero(~np.isfinite(a.astype(np.float64)))
        if bad:
            raise PermdealError(f"{path}: {name}.{what} holds {bad} NaN or infinite value(s)")
    w, b = w.astype(np.float64), b.astype(np.float64)
    conv_keys = [k for k in (STRIDE, PADDING, *POOL_KEYS) if k in parts]
    if w.ndim == 2:
        if conv_keys:
            raise PermdealError(f"{path}: {name}.{conv_keys[0]} belongs to a convolution, but "
                                f"{name}.weight is 2-D (fully connected)")
        if prev and prev[-1].n_out != w.shape[1]:
            p = prev[-1]
            what = "outputs" if not p.is_conv else \
                f"outputs ({'x'.join(map(str, p.out_shape))} flattened)"
            raise PermdealError(f"{path}: layers do not chain: {p.name} gives {p.n_out} {what} "
                                f"but {name}.weight takes {w.shape[1]} inputs")
        return FloatLayer(name, w, b)
    if shape is None:
        raise PermdealError(f"{path}: {name} is a convolution but the model has no "
                            f"{INPUT_SHAPE} [C, H, W]")
    if len(shape) != 3:
        raise PermdealError(f"{path}: {name} is a convolution after the fully connected layer "
                            f"{prev[-1].name}; a convolution takes (C, H, W) inputs")
    if w.shape[1] != shape[0]:
        src = prev[-1].name if prev else INPUT_SHAPE
        raise PermdealError(f"{path}: layers do not chain: {name}.weight takes {w.shape[1]} "
                            f"channels but {src} gives {shape[0]}")
    stride = _ints(parts[STRIDE], 2, f"{path}: {name}.{STRIDE}", 1) if STRIDE in parts else (1, 1)
    pad = _ints(parts[PADDING], 4, f"{path}: {name}.{PADDING}", 0) if PADDING in parts \
        else (0, 0, 0, 0)
    pools = [k for k in POOL_KEYS if k in parts]
    if len(pools) > 1:
        raise PermdealError(f"{path}: {name} has both {name}.maxpool and {name}.avgpool; a "
                            "layer takes one pooling")
    try:
        conv = ConvShape(shape, w.shape[0], w.shape[2:], stride, pad)
        pool = None
        if pools:
            kh, kw, sh, sw = _ints(parts[pools[0]], 4, f"{name}.{pools[0]}", 1)
            pool = Pool(POOL_KEYS[pools[0]], (kh, kw), (sh, sw))
            pool.out_hw(*conv.out_hw)
    except PermdealError as e:
        raise PermdealError(f"{path}: layer {name}: {e}") from None
    return FloatLayer(name, w, b, conv, pool)


def to_arrays(layers: Sequence[FloatLayer]) -> dict[str, np.ndarray]:
    """The ``.npz`` arrays of ``layers`` (in order; ``input_shape`` first for a conv network)."""
    out: dict[str, np.ndarray] = {}
    if layers and layers[0].is_conv:
        out[INPUT_SHAPE] = np.array(layers[0].conv.in_shape, np.int64)
    for l in layers:
        out[f"{l.name}.{WEIGHT}"] = np.asarray(l.weight, np.float64)
        out[f"{l.name}.{BIAS}"] = np.asarray(l.bias, np.float64)
        if l.is_conv:
            out[f"{l.name}.{STRIDE}"] = np.array(l.conv.stride, np.int64)
            out[f"{l.name}.{PADDING}"] = np.array(l.conv.padding, np.int64)
        if l.pool is not None:
            key = next(k for k, kind in POOL_KEYS.items() if kind == l.pool.kind)
            out[f"{l.name}.{key}"] = np.array([*l.pool.size, *l.pool.stride], np.int64)
    return out


def save(layers: Sequence[FloatLayer], path: str | Path) -> None:
    """Write ``layers`` as a float-model ``.npz`` at ``path``, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **to_arrays(layers))
    atomic.write_bytes(Path(path), buf.getvalue())
