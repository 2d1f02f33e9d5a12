"""Compressed-model folders of conv networks (docs/design.md 14.6).

A conv network's folder is an FC model's folder (``model.npz`` and ``manifest.json`` of
:mod:`.model` for method ``permdiag``, of :mod:`.smartdeal_model` for ``smartdeal``) with
``format_version`` :data:`~.model.CONV_FORMAT_VERSION` (3) and the model-level field ``flatten``
(``"hwc"`` or ``"chw"``): the order the FC layer right after a convolution takes the feature map
in (:func:`~.conv.hwc_order`, docs/design.md 14.6). Format 2, written before that field, has no
``flatten`` and means ``"chw"``; it is read as it always was. Each layer is described and stored as
its *matrix layer* (:meth:`~.conv_model.QuantConvLayer.matrix_layer`: ``in`` and ``out``, block
size or SmartDeal header, formats and arrays of the matrix one output pixel's patch meets), and a
conv layer adds the field ``conv``::

    "conv": {"input": [C, H, W], "kernel": [KH, KW], "stride": [sh, sw],
             "padding": [top, left, bottom, right],
             "pool": null or {"kind": "max" or "avg", "size": [kh, kw], "stride": [sh, sw]},
             "output": [O, OH', OW']}

``output`` (after pooling) and the matrix's ``in`` (``KH*KW*C'`` patch entries for
permuted-diagonal weights, ``C' = patch_channels(C, p)``; ``C*KH*KW`` for SmartDeal, whose
kernel rows must be ``S`` wide) and ``out`` (``O``) are derived and compared. Layers chain in
activations: a conv layer's ``input`` is the previous conv layer's ``output``; an FC layer takes
the previous layer's outputs flattened (in the ``flatten`` order); a convolution after an FC
layer is refused. Format 1 holds FC layers only and is read as before; a format-2 or 3 folder
without a conv layer is refused. The ROM images of a permuted-diagonal conv network (:mod:`.rom`)
use the same layer descriptions and ``flatten`` field.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from . import smartdeal_model as sdm
from .conv import FLATTEN_ORDERS, ConvShape, Pool, patch_channels
from .conv_model import ConvNet, QuantConvLayer
from .manifest import json_diff, json_field, show_json
from .model import (CONV_FORMAT_VERSION, CONV_FORMAT_VERSIONS, MODEL_ARRAYS, MODEL_KIND,
                    build_layer, check_model_json, layer_arrays, layer_to_json, model_arrays)

METHODS = ("permdiag", "smartdeal")
CONV_FIELDS = ("input", "kernel", "stride", "padding", "pool", "output")
POOL_FIELDS = ("kind", "size", "stride")
#: The model-level field of the feature-map order (docs/design.md 14.6).
FLATTEN_FIELD = "flatten"
#: The order a conv network's manifest without ``flatten`` means (model format 2, ROM format 3).
LEGACY_FLATTEN = "chw"


# -- writing ----------------------------------------------------------------------------------

def conv_json(l: QuantConvLayer) -> dict:
    """The ``conv`` field of a conv layer's description."""
    g = l.conv
    pool = None if l.pool is None else {"kind": l.pool.kind, "size": list(l.pool.size),
                                        "stride": list(l.pool.stride)}
    return {"input": list(g.in_shape), "kernel": list(g.kernel), "stride": list(g.stride),
            "padding": list(g.padding), "pool": pool, "output": list(l.out_shape)}


def layer_json(l: Any, method: str, arrays: bool = True) -> dict:
    """A layer's description: its matrix layer's (as the method's FC folders write it), plus
    ``conv`` for a convolution; without ``arrays`` (ROM manifests) the array names are left out."""
    ml = l.matrix_layer() if isinstance(l, QuantConvLayer) else l
    d = layer_to_json(ml) if method == "permdiag" else sdm._layer_json(ml)
    if not arrays:
        d.pop("arrays")
    if isinstance(l, QuantConvLayer):
        d["conv"] = conv_json(l)
    return d


def _arrays(net: ConvNet) -> dict[str, np.ndarray]:
    out = {}
    for ml in net.matrix_layers():
        parts = ({"k": ml.matrix.k, "q": ml.matrix.q, "bias": ml.bias}
                 if net.method == "permdiag" else sdm._layer_arrays(ml))
        out.update({f"{ml.name}.{k}": np.asarray(a, np.int64) for k, a in parts.items()})
    return out


def _check_net(net: ConvNet) -> None:
    if net.method not in METHODS:
        raise PermdealError(f"a conv network's method must be one of {', '.join(METHODS)}, not "
                            f"{net.method!r}")
    if not any(isinstance(l, QuantConvLayer) for l in net.layers):
        raise PermdealError("the network has no convolution; write it as an FC model")


def net_manifest(net: ConvNet, arrays_sha256: str, source: dict | None = None) -> dict:
    """The ``manifest.json`` content of a conv network's folder."""
    _check_net(net)
    head = {"kind": MODEL_KIND, "format_version": CONV_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": net.method, "source": source,
            FLATTEN_FIELD: net.flatten}
    if net.method == "smartdeal":
        head["config"] = net.config
    return {**head, "input_format": net.input_format.to_json(),
            "output_format": net.output_format.to_json(),
            "layers": [layer_json(l, net.method) for l in net.layers],
            "files": {MODEL_ARRAYS: {"sha256": arrays_sha256}}}


def write_net(net: ConvNet, folder: str | Path, source: dict | None = None) -> dict:
    """Write ``model.npz`` and ``manifest.json`` of ``net`` into ``folder`` (which must exist),
    each atomically; returns the manifest."""
    _check_net(net)
    buf = io.BytesIO()
    np.savez(buf, **_arrays(net))
    data = buf.getvalue()
    atomic.write_bytes(Path(folder) / MODEL_ARRAYS, data)
    man = net_manifest(net, hashlib.sha256(data).hexdigest(), source)
    atomic.write_text(Path(folder) / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


# -- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvLayerSpec:
    """A checked conv layer description: its matrix layer's spec (``matrix``), geometry and
    pooling; ``n_in`` and ``n_out`` are its activations, flattened."""

    matrix: Any
    conv: ConvShape
    pool: Pool | None

    @property
    def name(self) -> str:
        return self.matrix.name

    @property
    def fmts(self):
        return self.matrix.fmts

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.conv.out_shape
        return (c, *self.pool.out_hw(h, w)) if self.pool else (c, h, w)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.conv.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))


def _ints(obj, key, where, n, lo):
    v = json_field(obj, key, list, where)
    if len(v) != n or any(not isinstance(a, int) or isinstance(a, bool) or a < lo for a in v):
        raise PermdealError(f"{where}: {key} must be {n} integers >= {lo}, not {show_json(v)}")
    return tuple(v)


def _fields(obj, allowed, where):
    for key in obj:
        if key not in allowed:
            raise PermdealError(f"{where}: unexpected field {key!r}")


def conv_spec(d: dict, where: str, matrix: Any, method: str) -> ConvLayerSpec:
    """Check the ``conv`` field of the description ``d`` against its matrix layer's spec."""
    w = f"{where}: conv"
    c = json_field(d, "conv", dict, where)
    _fields(c, CONV_FIELDS, w)
    shape = _ints(c, "input", w, 3, 1)
    kernel, stride = _ints(c, "kernel", w, 2, 1), _ints(c, "stride", w, 2, 1)
    padding = _ints(c, "padding", w, 4, 0)
    if "pool" not in c:
        raise PermdealError(f"{w}: missing field 'pool'")
    pool = None
    try:
        g = ConvShape(shape, matrix.n_out, kernel, stride, padding)
        if c["pool"] is not None:
            pd = json_field(c, "pool", dict, w)
            _fields(pd, POOL_FIELDS, f"{w}.pool")
            pool = Pool(json_field(pd, "kind", str, f"{w}.pool"),
                        _ints(pd, "size", f"{w}.pool", 2, 1), _ints(pd, "stride", f"{w}.pool", 2, 1))
            pool.out_hw(*g.out_hw)
    except PermdealError as e:
        msg = str(e)
        raise PermdealError(msg if msg.startswith(w) else f"{w}: {msg}") from None
    (kh, kw), ch = kernel, shape[0]
    if method == "permdiag":
        want, how = kh * kw * patch_channels(ch, matrix.p), f"p {matrix.p} (the patch order)"
    else:
        if kw != matrix.S:
            raise PermdealError(f"{w}: kernel rows are {kw} wide, but smartdeal.S is "
                                f"{matrix.S}; SmartDeal chunks are kernel rows")
        want, how = ch * kh * kw, "the SmartDeal matrix view"
    if matrix.n_in != want:
        raise PermdealError(f"{where}: in is {matrix.n_in}, but a {kh}x{kw} kernel over {ch} "
                            f"channel(s) at {how} makes {want} patch entries")
    spec = ConvLayerSpec(matrix, g, pool)
    diff = json_diff(c["output"], list(spec.out_shape), "conv.output")
    if diff:
        raise PermdealError(f"{where}: {diff} (from input, out, kernel, stride, padding and "
                            "pool)")
    return spec


def conv_aware(method: str):
    """Wrap a method's layer-description checker so that it also reads conv layers."""
    def wrap(base):
        def spec(d, where):
            if isinstance(d, dict) and "conv" in d:
                m = base({k: v for k, v in d.items() if k != "conv"}, where)
                return conv_spec(d, f"{where} ({m.name})", m, method)
            return base(d, where)
        return spec
    return wrap


def check_chain(specs: list, path: str | Path, version: int = CONV_FORMAT_VERSION) -> None:
    """At least one conv layer; a conv layer takes the previous conv layer's output shape and
    never follows an FC layer (the flattened sizes are checked with the formats)."""
    if not any(isinstance(s, ConvLayerSpec) for s in specs):
        raise PermdealError(f"{path}: format_version {version} is a conv network's, "
                            "but no layer has a conv field")
    for i, (prev, s) in enumerate(zip(specs, specs[1:]), start=1):
        if not isinstance(s, ConvLayerSpec):
            continue
        where = f"{path}: layer {i} ({s.name})"
        if not isinstance(prev, ConvLayerSpec):
            raise PermdealError(f"{where}: a convolution after the fully connected layer "
                                f"{i - 1} ({prev.name}); a convolution takes (C, H, W) inputs")
        if s.conv.in_shape != prev.out_shape:
            raise PermdealError(f"{where}: conv.input is {list(s.conv.in_shape)}, but layer "
                                f"{i - 1} ({prev.name}) gives {list(prev.out_shape)}")


def check_flatten(man: dict, path: str | Path, has_field: bool) -> str:
    """The ``flatten`` order of a conv network's manifest: its field when the format has it
    (``has_field``; one of :data:`~.conv.FLATTEN_ORDERS`), else :data:`LEGACY_FLATTEN`, the order
    the formats before the field mean (and then no such field)."""
    version = man.get("format_version")
    if not has_field:
        if FLATTEN_FIELD in man:
            raise PermdealError(f"{path}: unexpected field {FLATTEN_FIELD!r} in format_version "
                                f"{version}, which flattens in (C, H, W) order; the field "
                                "belongs to later formats")
        return LEGACY_FLATTEN
    if FLATTEN_FIELD not in man:
        raise PermdealError(f"{path}: missing field {FLATTEN_FIELD!r} (format_version {version}: "
                            "the order the FC layer after a convolution takes its inputs in)")
    got = man[FLATTEN_FIELD]
    if not isinstance(got, str) or got not in FLATTEN_ORDERS:
        raise PermdealError(f"{path}: {FLATTEN_FIELD} must be one of "
                            f"{', '.join(map(show_json, FLATTEN_ORDERS))}, not {show_json(got)}")
    return got


def check_net_json(man: dict, path: str | Path, method: str, version: int, arrays: bool,
                   has_flatten: bool = True) -> tuple[dict | None, list, str]:
    """``(config, specs, flatten)`` of a conv network's manifest (model or ROM manifest of
    ``version``; ``has_flatten``: whether that format has the ``flatten`` field)."""
    if method == "permdiag":
        config, specs = None, check_model_json(man, path, version, arrays,
                                               wrap=conv_aware(method))
    else:
        config, specs = sdm._check_model_json(man, path, version, arrays,
                                              wrap=conv_aware(method))
    check_chain(specs, path, version)
    return config, specs, check_flatten(man, path, has_flatten)


def build(spec: Any, ml: Any, where: str) -> Any:
    """The network layer of a checked spec and its built matrix layer ``ml``."""
    if not isinstance(spec, ConvLayerSpec):
        return ml
    try:
        return QuantConvLayer.from_matrix_layer(ml, spec.conv, spec.pool)
    except PermdealError as e:
        raise PermdealError(f"{where}: {str(e).removeprefix(f'layer {ml.name}: ')}") from None


def make_net(layers: list, method: str, config: dict | None, where: str | Path,
             flatten: str = LEGACY_FLATTEN) -> ConvNet:
    try:
        return ConvNet(layers, method, config, flatten)
    except PermdealError as e:
        raise PermdealError(f"{where}: {e}") from None


def read_net(folder: str | Path, man: dict, man_path: str | Path, method: str) -> ConvNet:
    """Read a conv network's compressed-model folder whose manifest ``man`` (from ``man_path``)
    has format_version 2 (read with ``flatten`` ``"chw"``) or 3, checking everything against
    everything (:func:`check_net_json`, the arrays' sha256, shapes and codes)."""
    version = man.get("format_version")
    if version not in CONV_FORMAT_VERSIONS:
        raise PermdealError(f"{man_path}: format_version {show_json(version)} is not a conv "
                            f"network's ({', '.join(map(str, CONV_FORMAT_VERSIONS))})")
    config, specs, flatten = check_net_json(man, man_path, method, version, arrays=True,
                                            has_flatten=version != CONV_FORMAT_VERSIONS[0])
    parts = ("k", "q", "bias") if method == "permdiag" else sdm.PARTS
    arr_path, arrays = model_arrays(folder, man, man_path,
                                    f"NAME.{'/NAME.'.join(parts)} arrays")
    layers = []
    with layer_arrays(arrays, arr_path, man_path) as take:
        for i, spec in enumerate(specs):
            ms = getattr(spec, "matrix", spec)
            where = f"{man_path}: layer {i} ({ms.name})"
            if method == "permdiag":
                a = take(i, ms, parts, f"p {ms.p}")
                ml = build_layer(ms, a["k"], a["q"], a["bias"], where=where)
            else:
                a = take(i, ms, parts, f"S {ms.S}, rows_per_block {ms.rows_per_block}")
                names = {part: f"{arr_path}: {ms.arrays[part]}" for part in parts}
                ml = sdm._build_layer(ms, a, names, where)
            layers.append(build(spec, ml, where))
    return make_net(layers, method, config, man_path, flatten)


def is_conv_manifest(man: dict) -> bool:
    """Whether a model manifest's format_version is a conv network's (2 or 3)."""
    v = man.get("format_version")
    return isinstance(v, int) and not isinstance(v, bool) and v in CONV_FORMAT_VERSIONS


def refuse_conv_fields(man: dict, path: str | Path,
                       conv_version: int = CONV_FORMAT_VERSION) -> None:
    """A manifest of an FC-only format must not describe a convolution (``conv_version``: the
    newest conv format of its kind, model folders' or ROM images')."""
    layers = man.get("layers")
    v = man.get("format_version")
    for i, d in enumerate(layers if isinstance(layers, list) else []):
        if isinstance(d, dict) and "conv" in d:
            if isinstance(v, int) and not isinstance(v, bool) and v > conv_version:
                raise PermdealError(f"{path}: written by a newer permdeal: format_version {v}, "
                                    f"this reader knows conv networks up to {conv_version}")
            raise PermdealError(f"{path}: layer {i} has a conv field, but format_version "
                                f"{v} holds fully connected layers only (conv networks are "
                                f"format_version {conv_version})")
