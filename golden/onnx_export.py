"""ONNX export of a float model, in the shape ``torch.onnx.export`` writes for an
``nn.Sequential`` (docs/design.md 14.2): so that a CNN trained here reaches ``permdeal import``
and ``compress`` as a user's model would.

The layers become the modules of ``nn.Sequential(Conv2d, ReLU, [MaxPool2d | AvgPool2d], ...,
Flatten, Linear, ReLU, ..., Linear)``, numbered in order: module ``i``'s node is ``/i/Conv``
(``/i/Gemm``, ``/i/Relu``, ...), its weights the initializers ``i.weight`` and ``i.bias``, its
output ``/i/Conv_output_0``; the graph's input is ``input`` ``(batch, C, H, W)`` (or ``(batch,
n)``) with a symbolic batch, its output ``output``; opset 17, IR version 8, ``Gemm`` with
``transB`` 1, ``Flatten`` with axis 1, float32 weights. The importer names the layers after the
initializers (``0``, ``2``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from permdeal import atomic
from permdeal.errors import PermdealError

from .float_model import FloatLayer

OPSET = 17
IR_VERSION = 8


def to_onnx(layers: Sequence[FloatLayer], batch: str = "batch"):
    """The ``onnx.ModelProto`` of ``layers`` (ReLU after every layer but the last)."""
    from onnx import TensorProto, helper, numpy_helper

    if not layers:
        raise PermdealError("a model needs at least one layer")
    nodes, inits = [], []
    prev, i = "input", 0

    def node(op, inputs, **attrs):
        nonlocal prev, i
        name = f"/{i}/{op}"
        out = f"{name}_output_0"
        nodes.append(helper.make_node(op, [prev, *inputs], [out], name=name, **attrs))
        prev, i = out, i + 1

    for n, l in enumerate(layers):
        if not l.is_conv and n and layers[n - 1].is_conv:
            node("Flatten", [], axis=1)
        inits += [numpy_helper.from_array(np.asarray(l.weight, np.float32), f"{i}.weight"),
                  numpy_helper.from_array(np.asarray(l.bias, np.float32), f"{i}.bias")]
        if l.is_conv:
            c = l.conv
            node("Conv", [f"{i}.weight", f"{i}.bias"], dilations=[1, 1], group=1,
                 kernel_shape=list(c.kernel), pads=list(c.padding), strides=list(c.stride))
        else:
            node("Gemm", [f"{i}.weight", f"{i}.bias"], alpha=1.0, beta=1.0, transB=1)
        if n < len(layers) - 1:
            node("Relu", [])
        if l.pool is not None:
            op = "MaxPool" if l.pool.kind == "max" else "AveragePool"
            attrs = {"dilations": [1, 1]} if op == "MaxPool" else {"count_include_pad": 0}
            node(op, [], ceil_mode=0, kernel_shape=list(l.pool.size), pads=[0, 0, 0, 0],
                 strides=list(l.pool.stride), **attrs)
    nodes[-1].output[0] = "output"
    dims = [batch, *(layers[0].conv.in_shape if layers[0].is_conv else (layers[0].n_in,))]
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, layers[-1].n_out])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=IR_VERSION, producer_name="pytorch",
                             producer_version="2.5.0")


def export(layers: Sequence[FloatLayer], path: str | Path) -> None:
    """Write ``layers`` as an ONNX file at ``path``, atomically."""
    atomic.write_bytes(Path(path), to_onnx(layers).SerializeToString())
