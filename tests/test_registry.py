"""The method registry: a toy method added in a test appears in ``compress --method``, ``check``
and ``compare`` with no other change; the built-in methods are registered in order and refuse
what they lack with a message naming the method."""

import json

import numpy as np
import pytest

from permdeal import atomic, methods
from permdeal.api import compare as cmp
from permdeal.api import models as mdl
from permdeal.cli import main
from permdeal.errors import PermdealError
from permdeal.golden.model import MODEL_KIND
from permdeal.methods import Built, Method, Option

TOY_BITS = 4


def sign_quantize(W, bits):
    """The toy's weights: ``W`` rounded to ``bits``-bit signed codes of one scale per layer."""
    scale = np.max(np.abs(W)) / (2 ** (bits - 1) - 1) or 1.0
    return np.round(W / scale).astype(np.int64), scale


class ToyMethod(Method):
    """A dense layer with ``bits``-bit weights: enough of the interface to be a method."""

    name = "toy"
    label = "toy"
    rule = "storage: bits per weight, no index; nothing else counted"
    options = (Option("bits", int, "toy: weight bits (default 4)"),)

    def compress(self, layers, spec, *, calibration=None, relu_last=False, bits=TOY_BITS):
        return [(l.name, *sign_quantize(l.weight, bits), l.bias) for l in layers]

    def write_model(self, model, folder, source):
        arrays = {}
        for name, codes, scale, bias in model:
            arrays[f"{name}.codes"], arrays[f"{name}.scale"] = codes, np.float64(scale)
            arrays[f"{name}.bias"] = bias
        np.savez(folder / "toy.npz", **arrays)
        man = {"kind": MODEL_KIND, "format_version": 1, "method": self.name,
               "layers": [name for name, *_ in model]}
        atomic.write_text(folder / atomic.MANIFEST_NAME, json.dumps(man) + "\n")
        return "toy.npz, manifest.json"

    def load(self, folder):
        man = json.loads((folder / atomic.MANIFEST_NAME).read_text())
        with np.load(folder / "toy.npz") as z:
            return [(n, z[f"{n}.codes"], float(z[f"{n}.scale"]), z[f"{n}.bias"])
                    for n in man["layers"]]

    def check(self, folder, manifest):
        model = self.load(folder)
        return model, f"toy model of {len(model)} layer(s)"

    def describe(self, model):
        return "\n".join(f"{name}: {codes.shape[1]} -> {codes.shape[0]}"
                         for name, codes, _, _ in model)

    def build(self, net, data, st):
        dense = [W for _, W, _ in net.model.dense_weights()]
        q = [sign_quantize(W, TOY_BITS) for W in dense]
        return Built(dense, [c * s for c, s in q], net.model.biases, None)

    def figures(self, obj, X, st, in_block):
        m, n = obj.shape
        return {"storage_bits": m * n * TOY_BITS, "index_bits": 0, "multiplies": None,
                "cycles": None}


@pytest.fixture
def toy():
    method = methods.register(ToyMethod())
    yield method
    methods.unregister(method.name)


def float_model(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, **{"fc1.weight": rng.standard_normal((6, 8)), "fc1.bias": rng.standard_normal(6),
                      "fc2.weight": rng.standard_normal((3, 6)), "fc2.bias": np.zeros(3)})
    return path


def test_builtin_methods_in_order():
    assert methods.names() == ["dense", "permdiag", "eie", "circulant", "smartdeal", "sme"]
    assert methods.names(compressing=True) == ["permdiag", "smartdeal"]


def test_a_baseline_refuses_what_it_lacks():
    with pytest.raises(PermdealError, match="method 'eie' \\(EIE\\) has no hardware generator"):
        methods.get("eie").generate(None, "x")
    with pytest.raises(PermdealError, match="method must be one of 'permdiag', 'smartdeal', "
                                            "not 'eie'"):
        mdl.compress([(np.eye(2), np.zeros(2))], "eie")


def test_toy_method_compress_check_and_load(toy, tmp_path, capsys):
    src = float_model(tmp_path / "m.npz")
    out = tmp_path / "toy"
    assert main(["compress", str(src), "--method", "toy", "--bits", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fc1: 8 -> 6" in printed and "toy.npz, manifest.json" in printed
    model = mdl.load(out)
    with np.load(src) as z:
        want, _ = sign_quantize(z["fc1.weight"], 3)
    assert np.array_equal(model[0][1], want)  # the codes written, read back value by value
    assert np.abs(model[0][1]).max() <= 3
    assert main(["check", str(out)]) == 0
    assert "toy model of 2 layer(s) OK" in capsys.readouterr().out
    # another method's setting is refused, naming the method that has it
    code = main(["compress", str(src), "--method", "toy", "--p", "2", "-o", str(tmp_path / "t2")])
    assert code == 2
    assert "applies only to method 'permdiag'" in capsys.readouterr().err


def test_toy_method_in_compare(toy, tmp_path):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "m.npz", **{"l0.weight": rng.standard_normal((5, 8)),
                                    "l0.bias": np.zeros(5)})
    res = cmp.run(model=str(tmp_path / "m.npz"), json=str(tmp_path / "c.json"), vectors=2,
                  pes=1, lanes=2)
    assert res == 0
    got = json.loads((tmp_path / "c.json").read_text())
    formats = [f["format"] for f in got["formats"]]
    assert formats == [*methods.names()[:-1], "toy"] and formats[-1] == "toy"
    toy_entry = got["formats"][-1]
    assert toy_entry["total"]["storage_bits"] == 5 * 8 * TOY_BITS
    assert toy_entry["rule"] == ToyMethod.rule
