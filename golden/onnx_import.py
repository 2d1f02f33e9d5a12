"""ONNX import: a float model (:mod:`.float_model` layers) from an ONNX file (docs/design.md
section 14.2).

The graph must be one chain from its single input to its single output, with fixed shapes (the
batch dimension may be symbolic) and every weight an initializer (or a ``Constant``). What it
may hold:

- ``Conv`` (2-D, any kernel, stride and padding; ``group`` 1, no dilation), ``Gemm``
  (``transA`` 0; ``alpha``, ``beta`` and ``transB`` folded), ``MatMul`` with an initializer and the
  ``Add`` of its bias (an ``Add`` after ``Gemm`` or ``Conv`` adds to their bias);
- ``BatchNormalization`` right after a ``Conv``, ``Gemm`` or ``MatMul``: folded into its weights
  and bias (``s = scale / sqrt(var + eps)``, ``W' = s W``, ``b' = s (b - mean) + B``);
- ``Relu`` after every layer but the last; ``MaxPool`` / ``AveragePool`` after a convolution (no
  padding, floor mode), after its ``Relu`` (a ``MaxPool`` may come before it: they commute);
- ``Flatten`` (axis 1) or a ``Reshape`` to ``(batch, features)`` between convolutions and fully
  connected layers; ``Identity`` and ``Dropout`` (inference: identity).

Anything else is refused in one line naming the node, its op and the field at fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from permdeal.errors import PermdealError

from .conv import ConvShape, Pool
from .float_model import FloatLayer, layers_from_arrays, to_arrays

#: The ops the importer knows, in the order its messages list them.
SUPPORTED = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "MaxPool",
             "AveragePool", "Flatten", "Reshape", "Identity", "Dropout", "Constant")
#: The names ONNX gives each op's inputs, for messages about a missing initializer.
_INPUTS = {"Conv": ("X", "W", "B"), "Gemm": ("A", "B", "C"), "MatMul": ("A", "B"),
           "Add": ("A", "B"), "BatchNormalization": ("X", "scale", "B", "input_mean", "input_var"),
           "Reshape": ("data", "shape"), "Dropout": ("data", "ratio", "training_mode")}


def load(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of a file (external data loaded), or a one-line error."""
    import onnx

    path = Path(path)
    if path.is_dir():
        raise PermdealError(f"{path}: is a folder, expected an ONNX file")
    if not path.is_file():
        raise PermdealError(f"{path}: no such file")
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError, onnx's external-data errors, OSError
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PermdealError(f"{path}: not a readable ONNX file ({detail})") from None


def import_model(path: str | Path) -> list[FloatLayer]:
    """Read an ONNX file and return its float layers (module docstring for what it may hold),
    checked as the float-model reader checks an ``.npz`` (finiteness, shapes, chaining)."""
    return layers_from_arrays(to_arrays(_Importer(load(path), str(path)).run()), path)


class _Importer:
    """One walk over the graph's nodes, building layers as it goes."""

    def __init__(self, model, path):
        from onnx import numpy_helper

        self.to_array = numpy_helper.to_array
        self.path = path
        self.graph = model.graph
        self.inits = {}
        for t in self.graph.initializer:
            self.inits[t.name] = self._tensor(t, f"initializer {t.name!r}")
        self.layers: list[dict] = []
        self.names: set[str] = set()

    def _tensor(self, t, what):
        try:
            return np.asarray(self.to_array(t))
        except Exception as e:  # external data absent, unknown data type
            raise PermdealError(f"{self.path}: {what}: cannot read its data ({e})") from None

    def fail(self, msg):
        raise PermdealError(f"{self.path}: {msg}")

    # -- graph boundaries --------------------------------------------------------------------

    def _input(self):
        real = [i for i in self.graph.input if i.name not in self.inits]
        if len(real) != 1:
            self.fail(f"the graph takes {len(real)} inputs ({', '.join(repr(i.name) for i in real)}"
                      "); permdeal imports a model with one input")
        vi = real[0]
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or tt.elem_type not in (1, 11):  # FLOAT, DOUBLE
            self.fail(f"input {vi.name!r}: expected a float tensor")
        if not tt.HasField("shape"):
            self.fail(f"input {vi.name!r}: has no shape; permdeal needs fixed shapes")
        dims = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif i == 0:
                dims.append(None)  # a symbolic batch dimension
            else:
                self.fail(f"input {vi.name!r}: dimension {i} is dynamic "
                          f"({d.dim_param or 'unknown'!r}); permdeal needs fixed shapes (only the "
                          "batch dimension may vary)")
        if len(dims) not in (2, 4):
            self.fail(f"input {vi.name!r}: shape {dims} is neither (batch, features) nor "
                      "(batch, C, H, W)")
        return vi.name, tuple(dims[1:])

    def run(self) -> list[FloatLayer]:
        if not self.graph.node:
            self.fail("the graph has no nodes")
        self.cur, self.shape = self._input()
        self.produced = {self.cur}
        for i, node in enumerate(self.graph.node):
            self.node(node, i)
        outs = [o.name for o in self.graph.output]
        if len(outs) != 1:
            self.fail(f"the graph has {len(outs)} outputs; permdeal imports a model with one")
        if outs[0] != self.cur:
            self.fail(f"output {outs[0]!r} is not the end of the chain of layers ({self.cur!r})")
        if not self.layers:
            self.fail("the graph holds no Conv, Gemm or MatMul layer")
        for a, b in zip(self.layers, self.layers[1:]):
            if not a["relu"]:
                self.fail(f"node {b['node']!r} ({b['op']}) follows {a['node']!r} with no Relu "
                          "between them; the model format has ReLU between every two layers")
        last = self.layers[-1]
        if last["relu"]:
            self.fail(f"node {last['relu']!r} (Relu) ends the graph; the model format has no ReLU "
                      "after the last layer (compress with --relu-last for one)")
        return [FloatLayer(l["name"], l["weight"], l["bias"], l["conv"], l["pool"])
                for l in self.layers]

    # -- nodes ---------------------------------------------------------------------------------

    def node(self, node, i):
        op = node.op_type
        self.label = f"node {node.name or f'#{i}'!r} ({op})"
        if node.domain not in ("", "ai.onnx"):
            self.fail(f"{self.label}: domain {node.domain!r} is not the standard ONNX domain; "
                      f"permdeal imports {', '.join(SUPPORTED)}")
        if op not in SUPPORTED:
            self.fail(f"{self.label} is not supported; permdeal imports {', '.join(SUPPORTED)}")
        self.attrs = self._attrs(node)
        if op == "Constant":
            if "value" not in self.attrs:
                self.fail(f"{self.label}: only a tensor 'value' is supported")
            self.inits[node.output[0]] = self.attrs["value"]
            return
        data = [x for x in node.input if x == self.cur]
        if not data:
            self.fail(f"{self.label} reads {list(node.input)}, not the output of the layer "
                      f"before ({self.cur!r}); permdeal imports a chain of layers")
        params = self._params(node, op)
        getattr(self, f"op_{op}")(node, params)
        self.cur = node.output[0]
        self.produced.update(node.output)

    def _attrs(self, node):
        from onnx import helper

        out = {}
        for a in node.attribute:
            v = helper.get_attribute_value(a)
            if a.type == a.TENSOR:
                v = self._tensor(v, f"{self.label}: attribute {a.name}")
            elif isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            out[a.name] = v
        return out

    def _params(self, node, op):
        """The node's non-data inputs as arrays, by ONNX input name; absent optional ones left
        out. A named input that is no initializer is an error naming it."""
        names = _INPUTS.get(op, ())
        out = {}
        for k, x in enumerate(node.input):
            if x == self.cur or not x:
                continue
            field = names[k] if k < len(names) else f"input {k}"
            if op == "Add":
                field = "B" if node.input[0] == self.cur else "A"
            if x in self.produced:
                self.fail(f"{self.label}: input {field} ({x!r}) is computed in the graph, not a "
                          "weight; permdeal imports a chain of layers, without branches")
            if x not in self.inits:
                self.fail(f"{self.label}: input {field} ({x!r}) is neither an initializer nor a "
                          "Constant; its weights are missing")
            out[field] = self.inits[x]
        return out

    def _ints(self, key, default, n=None):
        """Attribute ``key`` (or ``default``): one integer, or with ``n`` a list of ``n``."""
        v = self.attrs.get(key, default)
        try:
            v = [int(a) for a in v] if isinstance(v, (list, tuple)) else int(v)
        except (TypeError, ValueError):
            self.fail(f"{self.label}: attribute {key} {v!r} is not made of integers")
        if n is not None and (not isinstance(v, list) or len(v) != n):
            self.fail(f"{self.label}: attribute {key} {v} must be a list of {n} integers")
        if n is None and isinstance(v, list):
            self.fail(f"{self.label}: attribute {key} {v} must be one integer")
        return v

    def _float(self, key, default):
        v = self.attrs.get(key, default)
        if not isinstance(v, (int, float)) or not np.isfinite(v):
            self.fail(f"{self.label}: attribute {key} {v!r} must be a finite number")
        return float(v)

    def _new_layer(self, node, weight, bias, conv=None):
        base = node.input[1] if len(node.input) > 1 else ""
        name = base[:-len(".weight")] if base.endswith(".weight") else \
            (node.name.strip("/").replace("/", ".") or f"{node.op_type.lower()}{len(self.layers)}")
        unique, k = name, 2
        while unique in self.names:
            unique, k = f"{name}_{k}", k + 1
        self.names.add(unique)
        self.layers.append({"name": unique, "node": node.name, "op": node.op_type,
                            "weight": weight, "bias": bias, "conv": conv, "pool": None,
                            "relu": None, "open": True})

    def _fc_input(self):
        if len(self.shape) != 1:
            self.fail(f"{self.label} takes a {'x'.join(map(str, self.shape))} input; flatten it "
                      "first (Flatten or Reshape to (batch, features))")
        return self.shape[0]

    def _open_layer(self, what):
        """The layer the node just after it may change (bias, BatchNormalization)."""
        if not self.layers or not self.layers[-1]["open"]:
            self.fail(f"{self.label}: {what} must come right after a Conv, Gemm or MatMul")
        return self.layers[-1]

    def _close(self):
        if self.layers:
            self.layers[-1]["open"] = False

    def op_Gemm(self, node, p):
        if self._ints("transA", 0):
            self.fail(f"{self.label}: transA 1 is not supported (the input must be (batch, "
                      "features))")
        if "B" not in p:
            self.fail(f"{self.label}: input B (the weights) is missing")
        w = np.asarray(p["B"], np.float64)
        if w.ndim != 2:
            self.fail(f"{self.label}: weights B have shape {list(w.shape)}, expected 2-D")
        w = w if self._ints("transB", 0) else w.T
        w = w * self._float("alpha", 1.0)
        n = self._fc_input()
        if w.shape[1] != n:
            self.fail(f"{self.label}: weights take {w.shape[1]} inputs, the layer before gives {n}")
        bias = np.zeros(w.shape[0])
        if "C" in p:
            bias = self._fc_bias(p["C"], w.shape[0], "input C") * self._float("beta", 1.0)
        self._close()
        self._new_layer(node, w, bias)
        self.shape = (w.shape[0],)

    def op_MatMul(self, node, p):
        if "B" not in p:
            self.fail(f"{self.label}: input B (the weights) must be an initializer; the input "
                      "must be A")
        w = np.asarray(p["B"], np.float64)
        n = self._fc_input()
        if w.ndim != 2 or w.shape[0] != n:
            self.fail(f"{self.label}: weights B have shape {list(w.shape)}, expected ({n}, out)")
        self._close()
        self._new_layer(node, w.T.copy(), np.zeros(w.shape[1]))
        self.shape = (w.shape[1],)

    def _fc_bias(self, b, m, what):
        b = np.asarray(b, np.float64)
        if b.size != m or (b.ndim == 2 and b.shape[0] != 1) or b.ndim > 2:
            self.fail(f"{self.label}: {what} has shape {list(b.shape)}, expected ({m},)")
        return b.reshape(m)

    def op_Add(self, node, p):
        layer = self._open_layer("an Add (a bias)")
        (b,) = p.values()
        m = layer["weight"].shape[0]
        if layer["conv"] is None:
            layer["bias"] = layer["bias"] + self._fc_bias(b, m, "the added bias")
        else:
            b = np.asarray(b, np.float64)
            if b.shape not in ((m, 1, 1), (1, m, 1, 1)):
                self.fail(f"{self.label}: the added bias has shape {list(b.shape)}, expected "
                          f"({m}, 1, 1) for {m} channels")
            layer["bias"] = layer["bias"] + b.reshape(m)

    def op_BatchNormalization(self, node, p):
        layer = self._open_layer("BatchNormalization (folded into the layer)")
        if self._ints("training_mode", 0):
            self.fail(f"{self.label}: training_mode 1 is not supported (inference only)")
        m = layer["weight"].shape[0]
        for key in _INPUTS["BatchNormalization"][1:]:
            if key not in p:
                self.fail(f"{self.label}: input {key} is missing")
            if np.asarray(p[key]).shape != (m,):
                self.fail(f"{self.label}: input {key} has shape {list(np.asarray(p[key]).shape)}, "
                          f"expected ({m},)")
        scale, shift, mean, var = (np.asarray(p[k], np.float64) for k in
                                   ("scale", "B", "input_mean", "input_var"))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = scale / np.sqrt(var + self._float("epsilon", 1e-5))
        if not np.all(np.isfinite(s)):
            self.fail(f"{self.label}: input_var + epsilon is not positive for every channel")
        layer["weight"] = layer["weight"] * s.reshape((m,) + (1,) * (layer["weight"].ndim - 1))
        layer["bias"] = (layer["bias"] - mean) * s + shift

    def op_Conv(self, node, p):
        if len(self.shape) != 3:
            self.fail(f"{self.label} takes a (C, H, W) input, the layer before gives "
                      f"{list(self.shape)}")
        if "W" not in p:
            self.fail(f"{self.label}: input W (the weights) is missing")
        w = np.asarray(p["W"], np.float64)
        if w.ndim != 4:
            self.fail(f"{self.label}: weights W have shape {list(w.shape)}; only 2-D convolutions "
                      "(O x C x KH x KW) are supported")
        group = self._ints("group", 1)
        if group != 1:
            self.fail(f"{self.label}: group {group} is not supported (grouped and depthwise "
                      "convolutions); only group 1")
        dil = self._ints("dilations", [1, 1], 2)
        if dil != [1, 1]:
            self.fail(f"{self.label}: dilations {dil} are not supported; only [1, 1]")
        kernel = self._ints("kernel_shape", list(w.shape[2:]), 2)
        if kernel != list(w.shape[2:]):
            self.fail(f"{self.label}: kernel_shape {kernel} differs from the weights' "
                      f"{list(w.shape[2:])}")
        if w.shape[1] != self.shape[0]:
            self.fail(f"{self.label}: weights take {w.shape[1]} channels, the input has "
                      f"{self.shape[0]}")
        pads = self._pads()
        bias = np.asarray(p.get("B", np.zeros(w.shape[0])), np.float64)
        if bias.shape != (w.shape[0],):
            self.fail(f"{self.label}: input B has shape {list(bias.shape)}, expected "
                      f"({w.shape[0]},)")
        try:
            conv = ConvShape(self.shape, w.shape[0], kernel, self._ints("strides", [1, 1], 2), pads)
        except PermdealError as e:
            self.fail(f"{self.label}: {e}")
        self._close()
        self._new_layer(node, w, bias, conv)
        self.shape = conv.out_shape

    def _pads(self):
        auto = self.attrs.get("auto_pad", "NOTSET")
        if auto not in ("NOTSET", "VALID"):
            self.fail(f"{self.label}: auto_pad {auto} is not supported; give pads instead")
        pads = self._ints("pads", [0, 0, 0, 0], 4)
        return pads  # ONNX order: x1_begin, x2_begin, x1_end, x2_end = top, left, bottom, right

    def op_MaxPool(self, node, p, kind="max"):
        layer = self.layers[-1] if self.layers else None
        if layer is None or layer["conv"] is None or len(self.shape) != 3:
            self.fail(f"{self.label}: pooling must follow a convolution")
        if layer["pool"] is not None:
            self.fail(f"{self.label}: the layer {layer['name']} is already pooled; one pooling "
                      "per layer")
        for key, default in (("ceil_mode", 0), ("storage_order", 0)):
            if self._ints(key, default):
                self.fail(f"{self.label}: {key} 1 is not supported")
        if self._ints("dilations", [1, 1], 2) != [1, 1]:
            self.fail(f"{self.label}: dilations are not supported")
        if any(self._pads()):
            self.fail(f"{self.label}: pads {self._pads()} are not supported; pooling takes no "
                      "padding")
        if "kernel_shape" not in self.attrs:
            self.fail(f"{self.label}: attribute kernel_shape is missing")
        size = self._ints("kernel_shape", None, 2)
        try:
            pool = Pool(kind, size, self._ints("strides", [1, 1], 2))
            h, w = pool.out_hw(*self.shape[1:])
        except PermdealError as e:
            self.fail(f"{self.label}: {e}")
        layer["pool"] = pool
        layer["open"] = False
        self.shape = (self.shape[0], h, w)

    def op_AveragePool(self, node, p):
        if self.layers and not self.layers[-1]["relu"]:
            self.layers[-1]["avg_before_relu"] = node.name or self.label
        self.op_MaxPool(node, p, kind="avg")

    def op_Relu(self, node, p):
        if not self.layers:
            self.fail(f"{self.label} comes before the first layer; the input cannot be rectified")
        layer = self.layers[-1]
        if layer.get("avg_before_relu") and not layer["relu"]:
            self.fail(f"{self.label} follows AveragePool {layer['avg_before_relu']!r}; the model "
                      "format pools after the ReLU, and the two do not commute")
        layer["relu"] = layer["relu"] or node.name or self.label
        layer["open"] = False

    def op_Flatten(self, node, p):
        axis = self._ints("axis", 1)
        if axis != 1:
            self.fail(f"{self.label}: axis {axis} is not supported; only 1 (batch, features)")
        self._flatten()

    def _flatten(self):
        self._close()
        self.shape = (int(np.prod(self.shape)),)

    def op_Reshape(self, node, p):
        if "shape" not in p:
            self.fail(f"{self.label}: input shape is missing")
        target = [int(v) for v in np.asarray(p["shape"]).reshape(-1)]
        n = int(np.prod(self.shape))
        ok = len(target) == 2 and target[1] in (-1, n) and (target[0] in (-1, 0, 1)
                                                            or target[1] == n)
        if not ok or target == [-1, -1]:
            self.fail(f"{self.label}: shape {target} is not supported; only a flattening to "
                      f"(batch, {n})")
        self._flatten()

    def op_Identity(self, node, p):
        pass

    def op_Dropout(self, node, p):
        pass
