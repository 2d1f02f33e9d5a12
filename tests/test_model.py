"""Float-model loading, compression to a quantized PD model, and the compressed-model folder."""

import json

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer, QuantModel, load_float_model


def random_layers(rng, sizes, scale=0.3):
    return [FloatLayer(f"fc{i + 1}", rng.standard_normal((o, n)) * scale, rng.standard_normal(o) * 0.1)
            for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]


def save_layers(path, layers, **extra):
    arrays = {}
    for l in layers:
        arrays[f"{l.name}.weight"] = l.weight
        arrays[f"{l.name}.bias"] = l.bias
    arrays.update(extra)
    np.savez(path, **arrays)
    return path


def reference_forward(model, x):
    """Section 3 of docs/design.md with Python ints, from the dense form of each layer."""
    acts = [int(v) for v in x]
    for l in model.layers:
        W = l.matrix.to_dense()
        f = l.fmts
        acc_frac = f.act.frac + f.weight.frac
        s = acc_frac - f.out.frac
        out = []
        for i in range(W.shape[0]):
            v = sum(int(W[i, j]) * acts[j] for j in range(W.shape[1]))
            v += int(l.bias[i]) * 2 ** (acc_frac - f.bias.frac)
            v = (v + 2 ** (s - 1)) // 2 ** s if s > 0 else v * 2 ** (-s)
            v = min(max(v, -2 ** (f.out.bits - 1)), 2 ** (f.out.bits - 1) - 1)
            out.append(max(v, 0) if l.relu else v)
        acts = out
    return acts


# -- loading -------------------------------------------------------------------------------------

def test_load_keeps_file_order_and_chains(tmp_path):
    rng = np.random.default_rng(1)
    layers = random_layers(rng, [6, 5, 4, 3])
    # Names that sort differently from file order: order must come from the file.
    for l, name in zip(layers, ["zeta", "alpha", "mid"]):
        l.name = name
    got = load_float_model(save_layers(tmp_path / "m.npz", layers))
    assert [l.name for l in got] == ["zeta", "alpha", "mid"]
    for a, b in zip(got, layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_load_bias_free_layer_gets_zero_bias(tmp_path):
    np.savez(tmp_path / "m.npz", **{"fc.weight": np.ones((3, 2))})
    (layer,) = load_float_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(layer.bias, np.zeros(3))


@pytest.mark.parametrize("arrays, message", [
    ({"fc1.weight": np.ones((3, 4)), "fc2.weight": np.ones((2, 5))}, "do not chain: fc1 gives 3"),
    ({"fc1.weight": np.array([[1.0, np.nan]])}, "fc1.weight holds 1 NaN or infinite"),
    ({"fc1.weight": np.ones((2, 2)), "fc1.bias": np.array([0.0, np.inf])}, "fc1.bias holds 1 NaN"),
    ({"fc1.weight": np.ones(4)}, "fc1.weight must be a non-empty 2-D"),
    ({"fc1.weight": np.ones((2, 2)), "fc1.bias": np.ones(3)}, "fc1.bias has shape (3,), expected (2,)"),
    ({"fc1.bias": np.ones(3)}, "has a bias but no fc1.weight"),
    ({"fc1.weight": np.ones((2, 2)), "running_mean": np.ones(2)}, "unexpected array 'running_mean'"),
    ({}, "holds no layers"),
])
def test_load_refuses_bad_models(tmp_path, arrays, message):
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(PermdealError, match=None) as e:
        load_float_model(tmp_path / "m.npz")
    assert message in str(e.value) and "m.npz" in str(e.value)


def test_load_refuses_missing_and_unreadable_files(tmp_path):
    with pytest.raises(PermdealError, match="no such file"):
        load_float_model(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(PermdealError, match="junk.npz: not a readable .npz"):
        load_float_model(tmp_path / "junk.npz")


# -- compression and bit-exact inference -----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("p", [1, 3, 4, [5, 2, 1]])
def test_forward_matches_python_int_reference(seed, p):
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, [11, 9, 7, 5])
    model = compress_permdiag(layers, p)
    x, _ = model.quantize_input(rng.standard_normal((4, 11)))
    got = model.forward(x)
    for b in range(x.shape[0]):
        assert got[b].tolist() == reference_forward(model, x[b]), f"seed {seed} batch {b}"


def test_fitted_formats_saturate_nothing_and_track_float_model():
    rng = np.random.default_rng(3)
    layers = random_layers(rng, [20, 16, 6])
    calib = rng.random((50, 20))
    model = compress_permdiag(layers, 4, QuantSpec(act=16), calibration=calib)
    for l in model.layers:
        assert l.saturated == {"weight": 0, "bias": 0}
    # The fixed-point model stays close to the float PD model it quantizes.
    from permdeal.golden.permdiag import PermDiag
    y = calib
    for i, l in enumerate(layers):
        y = PermDiag.from_dense(l.weight, 4).matvec(y) + l.bias
        y = np.maximum(y, 0) if i < len(layers) - 1 else y
    err = np.abs(model.predict(calib) - y).max()
    assert err < 0.01 * np.abs(y).max(), err


def test_fixed_format_that_saturates_is_refused_unless_allowed():
    layers = [FloatLayer("big", np.array([[3.0, -0.5]]), np.zeros(1))]
    spec = QuantSpec(weight=Fixed(8, 6))  # range [-2, 1.98]: 3.0 saturates
    with pytest.raises(PermdealError, match=r"layer big weights: 1 value\(s\) saturate in format 8:6"):
        compress_permdiag(layers, 1, spec)
    model = compress_permdiag(layers, 1, QuantSpec(weight=Fixed(8, 6), allow_saturation=True))
    assert model.layers[0].saturated["weight"] == 1
    assert model.layers[0].matrix.q.max() == 127


def test_bad_block_sizes():
    layers = random_layers(np.random.default_rng(0), [4, 3, 2])
    with pytest.raises(PermdealError, match="block size p of fc1 must be an integer >= 1, not 0"):
        compress_permdiag(layers, 0)
    with pytest.raises(PermdealError, match="got 3 block sizes p for 2 layers"):
        compress_permdiag(layers, [2, 2, 2])


# -- the compressed-model folder -------------------------------------------------------------------

def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    model = compress_permdiag(random_layers(rng, [10, 7, 3]), [3, 2])
    model.write(tmp_path)
    back = QuantModel.read(tmp_path)
    x, _ = model.quantize_input(rng.standard_normal((3, 10)))
    np.testing.assert_array_equal(back.forward(x), model.forward(x))
    for a, b in zip(model.layers, back.layers):
        assert a.fmts == b.fmts and a.relu == b.relu and a.name == b.name
        np.testing.assert_array_equal(a.matrix.k, b.matrix.k)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert [(l["in"], l["out"], l["p"]) for l in man["layers"]] == [(10, 7, 3), (7, 3, 2)]


def test_read_refuses_tampered_or_broken_folders(tmp_path):
    rng = np.random.default_rng(5)
    model = compress_permdiag(random_layers(rng, [6, 4]), 2)
    model.write(tmp_path)
    data = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "model.npz").write_bytes(data[:-10])
    with pytest.raises(PermdealError, match="model.npz: sha256 does not match"):
        QuantModel.read(tmp_path)
    (tmp_path / "model.npz").write_bytes(data)
    man = (tmp_path / "manifest.json").read_text()
    (tmp_path / "manifest.json").write_text(man.replace('"kind"', '"kind" :: '))
    with pytest.raises(PermdealError, match=r"manifest.json: line \d+: invalid JSON"):
        QuantModel.read(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(PermdealError, match="manifest.json: missing"):
        QuantModel.read(tmp_path)
