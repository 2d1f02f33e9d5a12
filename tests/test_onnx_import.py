"""ONNX import (docs/design.md 14.2): imported float models against onnxruntime, the shape
torch.onnx.export writes, the CLI (`permdeal import`, `compress` of an .onnx), one-line errors."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from permdeal.cli import main
from permdeal.golden import float_model
from permdeal.golden.model import load_float_model
from permdeal.golden.onnx_import import SUPPORTED, import_model

SEED = 18


def rng(offset=0):
    print(f"seed {SEED + offset}")
    return np.random.default_rng(SEED + offset)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def model_file(path, nodes, inits, in_dims, out_name="output", extra_inputs=()):
    """Write an ONNX file (opset 17, IR 8, as torch.onnx.export does) of ``nodes``."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims),
                     *extra_inputs],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                          producer_name="pytorch")
    onnx.save(m, str(path))
    return path


def torch_like(path, r, batch=1, relu_first=True):
    """nn.Sequential(Conv2d(1, 4, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 10))
    as torch.onnx.export writes it (opset 17)."""
    conv = [helper.make_node("Conv", ["input", "0.weight", "0.bias"], ["/0/Conv_output_0"],
                             name="/0/Conv", dilations=[1, 1], group=1, kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1], strides=[1, 1])]
    relu = helper.make_node("Relu", ["/0/Conv_output_0"], ["/1/Relu_output_0"], name="/1/Relu")
    pool = helper.make_node("MaxPool", ["/1/Relu_output_0"], ["/2/MaxPool_output_0"],
                            name="/2/MaxPool", ceil_mode=0, dilations=[1, 1], kernel_shape=[2, 2],
                            pads=[0, 0, 0, 0], strides=[2, 2])
    if not relu_first:  # Conv, MaxPool, Relu: they commute
        relu = helper.make_node("Relu", ["/2/MaxPool_output_0"], ["/1/Relu_output_0"],
                                name="/1/Relu")
        pool = helper.make_node("MaxPool", ["/0/Conv_output_0"], ["/2/MaxPool_output_0"],
                                name="/2/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    flat_in = "/2/MaxPool_output_0" if relu_first else "/1/Relu_output_0"
    rest = [helper.make_node("Flatten", [flat_in], ["/3/Flatten_output_0"], name="/3/Flatten",
                             axis=1),
            helper.make_node("Gemm", ["/3/Flatten_output_0", "4.weight", "4.bias"], ["output"],
                             name="/4/Gemm", alpha=1.0, beta=1.0, transB=1)]
    inits = [init("0.weight", r.normal(0, 0.5, (4, 1, 3, 3))), init("0.bias", r.normal(0, 0.1, 4)),
             init("4.weight", r.normal(0, 0.3, (10, 64))), init("4.bias", r.normal(0, 0.1, 10))]
    nodes = conv + ([relu, pool] if relu_first else [pool, relu]) + rest
    return model_file(path, nodes, inits, [batch, 1, 8, 8])


def ort_run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def same_as_ort(path, layers, x):
    """The imported float model reproduces onnxruntime within 1e-5, relative to the outputs'
    scale, value by value."""
    ref = ort_run(path, x).reshape(len(x), -1).astype(np.float64)
    ours = float_model.forward(layers, x.reshape(len(x), -1).astype(np.float32))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_torch_export_shape_imports_and_matches_onnxruntime(tmp_path):
    r = rng()
    path = torch_like(tmp_path / "net.onnx", r)
    layers = import_model(path)
    assert [l.name for l in layers] == ["0", "4"]
    conv, fc = layers
    assert conv.is_conv and conv.conv.padding == (1, 1, 1, 1) and conv.pool.kind == "max"
    assert conv.out_shape == (4, 4, 4) and fc.weight.shape == (10, 64)
    same_as_ort(path, layers, r.normal(0, 1, (1, 1, 8, 8)))


@pytest.mark.parametrize("relu_first", [True, False], ids=["relu-pool", "pool-relu"])
def test_symbolic_batch_and_pool_order(tmp_path, relu_first):
    r = rng(1)
    path = torch_like(tmp_path / "net.onnx", r, batch="batch_size", relu_first=relu_first)
    same_as_ort(path, import_model(path), r.normal(0, 1, (7, 1, 8, 8)))


def test_conv_geometry_batchnorm_avgpool_matmul(tmp_path):
    """A 5x3 kernel with stride 2x1 and uneven padding, BatchNormalization folded into the Conv
    and into a Gemm, AveragePool after the Relu, Reshape, MatMul + Add, Dropout, Identity."""
    r = rng(2)
    c_out = 6
    nodes = [
        helper.make_node("Conv", ["input", "cw"], ["c"], name="conv", kernel_shape=[5, 3],
                         strides=[2, 1], pads=[2, 0, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "mu", "var"], ["bn"], name="bn",
                         epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("AveragePool", ["r"], ["p"], name="avg", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Dropout", ["p"], ["d"], name="drop"),
        helper.make_node("Reshape", ["d", "shape"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], name="gemm", alpha=0.5, beta=2.0),
        helper.make_node("BatchNormalization", ["g", "s2", "b2", "mu2", "var2"], ["g2"],
                         name="bn1d"),
        helper.make_node("Relu", ["g2"], ["g3"], name="relu2"),
        helper.make_node("Identity", ["g3"], ["g4"], name="id"),
        helper.make_node("MatMul", ["g4", "mw"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mb", "mm"], ["output"], name="bias"),
    ]
    # input 3x11x9: conv -> (11+3-5)//2+1 = 5 rows, 9+1-3+1 = 8 cols; pool -> 2x4
    feat = c_out * 2 * 4
    inits = [init("cw", r.normal(0, 0.4, (c_out, 3, 5, 3))),
             init("s", r.uniform(0.5, 1.5, c_out)), init("b", r.normal(0, 0.2, c_out)),
             init("mu", r.normal(0, 0.2, c_out)), init("var", r.uniform(0.5, 2, c_out)),
             numpy_helper.from_array(np.array([0, -1], np.int64), "shape"),
             init("gw", r.normal(0, 0.3, (feat, 12))), init("gb", r.normal(0, 0.1, 12)),
             init("s2", r.uniform(0.5, 1.5, 12)), init("b2", r.normal(0, 0.2, 12)),
             init("mu2", r.normal(0, 0.2, 12)), init("var2", r.uniform(0.5, 2, 12)),
             init("mw", r.normal(0, 0.3, (12, 5))), init("mb", r.normal(0, 0.1, (1, 5)))]
    path = model_file(tmp_path / "m.onnx", nodes, inits, ["n", 3, 11, 9])
    layers = import_model(path)
    assert [l.name for l in layers] == ["conv", "gemm", "matmul"]
    assert layers[0].conv.stride == (2, 1) and layers[0].pool.kind == "avg"
    same_as_ort(path, layers, r.normal(0, 1, (4, 3, 11, 9)))
    # through the .npz format and back: the same model
    float_model.save(layers, tmp_path / "m.npz")
    again = load_float_model(tmp_path / "m.npz")
    same_as_ort(path, again, r.normal(0, 1, (3, 3, 11, 9)))


def test_fc_only_onnx_compresses_like_its_npz(tmp_path, capsys):
    r = rng(3)
    nodes = [helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["h"], name="/fc1/Gemm",
                              transB=1),
             helper.make_node("Relu", ["h"], ["hr"], name="/relu/Relu"),
             helper.make_node("Gemm", ["hr", "fc2.weight", "fc2.bias"], ["output"],
                              name="/fc2/Gemm", transB=1)]
    inits = [init("fc1.weight", r.normal(0, 0.3, (8, 12))), init("fc1.bias", r.normal(0, .1, 8)),
             init("fc2.weight", r.normal(0, 0.3, (5, 8))), init("fc2.bias", r.normal(0, .1, 5))]
    path = model_file(tmp_path / "mlp.onnx", nodes, inits, ["batch", 12])
    assert main(["import", str(path), "-o", str(tmp_path / "mlp.npz")]) == 0
    out = capsys.readouterr().out
    assert "fc1" in out and "wrote" in out
    same_as_ort(path, load_float_model(tmp_path / "mlp.npz"), r.normal(0, 1, (6, 12)))
    for src, dst in ((path, "a"), (tmp_path / "mlp.npz", "b")):
        assert main(["compress", str(src), "--p", "2", "-o", str(tmp_path / dst)]) == 0
    a, b = (np.load(tmp_path / d / "model.npz") for d in "ab")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["source"]["file"] == "mlp.onnx"


# -- one-line errors, exit status 2 ---------------------------------------------------------

def cli_error(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1, err
    return err


def conv_node(**attrs):
    return helper.make_node("Conv", ["input", "w"], ["output"], name="/0/Conv", **attrs)


def bad_models():
    w = init("w", np.ones((4, 2, 3, 3)))
    sig = [helper.make_node("Conv", ["input", "w"], ["c"], name="/0/Conv"),
           helper.make_node("Sigmoid", ["c"], ["output"], name="/1/Sigmoid")]
    return {
        "unsupported": (sig, [w], [1, 2, 6, 6],
                        "node '/1/Sigmoid' (Sigmoid) is not supported; permdeal imports "
                        + ", ".join(SUPPORTED)),
        "dynamic": ([conv_node()], [w], ["batch", 2, "height", 6],
                    "input 'input': dimension 2 is dynamic ('height'); permdeal needs fixed "
                    "shapes"),
        "groups": ([conv_node(group=2)], [init("w", np.ones((4, 1, 3, 3)))], [1, 2, 6, 6],
                   "node '/0/Conv' (Conv): group 2 is not supported"),
        "dilation": ([conv_node(dilations=[2, 2])], [w], [1, 2, 6, 6],
                     "node '/0/Conv' (Conv): dilations [2, 2] are not supported"),
        "missing-init": ([conv_node()], [], [1, 2, 6, 6],
                         "node '/0/Conv' (Conv): input W ('w') is neither an initializer nor a "
                         "Constant; its weights are missing"),
        "relu-last": ([helper.make_node("Conv", ["input", "w"], ["c"], name="/0/Conv"),
                       helper.make_node("Relu", ["c"], ["output"], name="/1/Relu")],
                      [w], [1, 2, 6, 6], "node '/1/Relu' (Relu) ends the graph; the model format "
                      "has no ReLU after the last layer"),
        "avg-before-relu": ([helper.make_node("Conv", ["input", "w"], ["c"], name="/0/Conv"),
                             helper.make_node("AveragePool", ["c"], ["p"], name="/1/Avg",
                                              kernel_shape=[2, 2], strides=[2, 2]),
                             helper.make_node("Relu", ["p"], ["output"], name="/2/Relu")],
                            [w], [1, 2, 6, 6], "node '/2/Relu' (Relu) follows AveragePool "
                            "'/1/Avg'; the model format pools after the ReLU"),
        "branch": ([helper.make_node("Conv", ["input", "w"], ["c"], name="/0/Conv"),
                    helper.make_node("Relu", ["c"], ["r"], name="/1/Relu"),
                    helper.make_node("Add", ["r", "c"], ["output"], name="/2/Add")],
                   [w], [1, 2, 6, 6], "node '/2/Add' (Add): input B ('c') is computed in the "
                   "graph, not a weight; permdeal imports a chain of layers, without branches"),
        "no-flatten": ([helper.make_node("Gemm", ["input", "g"], ["output"], name="/0/Gemm")],
                       [init("g", np.ones((4, 3)))], [1, 2, 6, 6],
                       "node '/0/Gemm' (Gemm) takes a 2x6x6 input; flatten it first"),
        "nan": ([conv_node()], [init("w", np.full((4, 2, 3, 3), np.nan))], [1, 2, 6, 6],
                "0.Conv.weight holds 72 NaN or infinite value(s)"),
        "pads-int": ([conv_node(pads=1)], [w], [1, 2, 6, 6],
                     "node '/0/Conv' (Conv): attribute pads 1 must be a list of 4 integers"),
        "no-relu": ([helper.make_node("Conv", ["input", "w"], ["c"], name="/0/Conv"),
                     helper.make_node("Conv", ["c", "w2"], ["output"], name="/1/Conv")],
                    [w, init("w2", np.ones((3, 4, 1, 1)))], [1, 2, 6, 6],
                    "node '/1/Conv' (Conv) follows '/0/Conv' with no Relu between them"),
    }


@pytest.mark.parametrize("case", list(bad_models()))
def test_bad_onnx_is_refused_in_one_line(tmp_path, capsys, case):
    nodes, inits, dims, message = bad_models()[case]
    path = model_file(tmp_path / "bad.onnx", nodes, inits, dims)
    err = cli_error(capsys, "import", path, "-o", tmp_path / "m.npz")
    assert err == f"permdeal import: error: {path}: {message}" + err[err.index(message) +
                                                                      len(message):]
    assert not (tmp_path / "m.npz").exists()


def test_truncated_and_missing_files(tmp_path, capsys):
    path = torch_like(tmp_path / "net.onnx", rng(4))
    data = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    err = cli_error(capsys, "import", tmp_path / "cut.onnx", "-o", tmp_path / "m.npz")
    assert f"{tmp_path / 'cut.onnx'}: not a readable ONNX file" in err
    onnx.save_model(onnx.load(str(path)), str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    location="ext.data", size_threshold=0)
    (tmp_path / "ext.data").unlink()
    err = cli_error(capsys, "import", tmp_path / "ext.onnx", "-o", tmp_path / "m.npz")
    assert f"{tmp_path / 'ext.onnx'}: not a readable ONNX file (" in err and "0.weight" in err
    err = cli_error(capsys, "import", tmp_path / "absent.onnx", "-o", tmp_path / "m.npz")
    assert f"{tmp_path / 'absent.onnx'}: no such file" in err
    err = cli_error(capsys, "import", path, "-o", path)
    assert "is one of the inputs" in err
    (tmp_path / "m.npz").write_bytes(b"mine")
    err = cli_error(capsys, "import", path, "-o", tmp_path / "m.npz")
    assert "exists; pass --force to overwrite it" in err
    assert (tmp_path / "m.npz").read_bytes() == b"mine"


def test_conv_models_compress_and_run_on_the_engine(tmp_path, capsys):
    path = torch_like(tmp_path / "net.onnx", rng(5))
    assert main(["import", str(path), "-o", str(tmp_path / "net.npz")]) == 0
    capsys.readouterr()
    for i, src in enumerate((path, tmp_path / "net.npz")):
        out = tmp_path / f"c{i}"
        assert main(["compress", str(src), "--p", "2", "-o", str(out)]) == 0
        man = json.loads((out / "manifest.json").read_text())
        assert man["format_version"] == 3 and man["source"]["file"] == src.name
        assert man["flatten"] == "hwc"
        assert man["layers"][0]["conv"]["output"] == [4, 4, 4]
    capsys.readouterr()
    np.save(tmp_path / "x.npy", np.zeros((1, 64)))
    # the engines' conv dataflows (docs/design.md 15, 16) count them
    assert main(["cycles", str(tmp_path / "c0"), "--pes", "2", "--lanes", "2", "--inputs",
                 str(tmp_path / "x.npy")]) == 0
    assert "whole inference" in capsys.readouterr().out
    assert main(["compress", str(path), "--method", "smartdeal", "-o", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["cycles", str(tmp_path / "s"), "--lanes", "2", "--inputs",
                 str(tmp_path / "x.npy")]) == 0
    assert "MAC-lane utilization" in capsys.readouterr().out
    err = cli_error(capsys, "cycles", tmp_path / "s", "--lanes", "2", "--inputs",
                    tmp_path / "x.npy", "--arch", "units")
    assert err == ("permdeal cycles: error: layer 0 is a convolution; --arch units takes fully "
                   "connected layers only so far (the layer units take fully connected layers; "
                   "--arch engine runs a conv network)\n")
    assert main(["compare", "--model", str(path)]) == 0
    assert "p=1,4" in capsys.readouterr().out  # 1 channel < p = 4: layer 0 stays dense
