"""The Python API (``permdeal.api``): compress -> generate -> simulate end to end, the cycle model,
model files, and bad input."""

import json

import numpy as np
import pytest

import permdeal
import permdeal.api as api
from permdeal.errors import PermdealError
from permdeal.golden.formats import Fixed

SIZES = (14, 10, 6)
PS = [2, 3]
FORMATS = dict(act="12:6", weight="12:8", bias="12:8")


def float_pairs(seed=11):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 0.5, (o, n)), rng.normal(0, 0.2, o)) for n, o in zip(SIZES, SIZES[1:])]


def exact_inputs(batch, seed=12, frac=6):
    """Floats that are exact in a format with ``frac`` fraction bits (so quantizing is exact),
    about 40% zeros; returns ``(floats, codes)``."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-90, 90, size=(batch, SIZES[0]))
    codes[rng.random(codes.shape) < 0.4] = 0
    return codes / 2.0 ** frac, codes


def reference_forward(model, codes):
    """An independent bit-exact forward pass: each layer's dense integer matrix rebuilt from its
    stored ``k`` and ``q`` (W[I*p + r][J*p + (r + k) mod p] = q[I][J][r]), exact products, the bias
    aligned to the accumulator, round half up, saturation, ReLU (docs/design.md 3 and 4.1)."""
    x = np.asarray(codes, dtype=object)  # Python integers: no overflow, exact shifts
    for l in model.layers:
        m, n = l.shape
        mat, f = l.matrix, l.fmts
        p, (mb, nb) = mat.p, mat.blocks
        W = np.zeros((mb * p, nb * p), dtype=object)
        I, J, r = np.meshgrid(np.arange(mb), np.arange(nb), np.arange(p), indexing="ij")
        W[I * p + r, J * p + (r + mat.k[I, J]) % p] = mat.q[I, J, r]
        acc = x.dot(W[:m, :n].T)
        frac_acc = f.act.frac + f.weight.frac
        acc = acc + np.array([int(b) << (frac_acc - f.bias.frac) for b in l.bias], dtype=object)
        s = frac_acc - f.out.frac
        assert s > 0  # the formats of these tests shift right
        y = np.vectorize(lambda v, s=s: (v + (1 << (s - 1))) >> s, otypes=[object])(acc)
        lo, hi = -(1 << (f.out.bits - 1)), (1 << (f.out.bits - 1)) - 1
        y = np.minimum(np.maximum(y, lo), hi)
        x = np.maximum(y, 0) if l.relu else y
    return x.astype(np.int64)


@pytest.fixture
def compressed(tmp_path):
    model = api.compress(float_pairs(), p=PS, output=tmp_path / "c", **FORMATS)
    return model, tmp_path / "c"


@pytest.mark.sim
def test_compress_generate_simulate_end_to_end(tmp_path, compressed):
    model, folder = compressed
    x, codes = exact_inputs(7)
    want = reference_forward(model, codes)
    design = api.generate(folder, pes=1, lanes=2, scan_width=4, output=tmp_path / "d")
    assert design.ports == {"in_bits": 12, "out_bits": 12, "n_inputs": 14, "n_outputs": 6}
    assert (design.config.n_pe, design.config.lanes, design.config.scan_width) == (1, 2, 4)
    assert sorted(design.rom_images) == sorted(f"pe0_lane{g}_{m}.hex" for g in range(2)
                                               for m in ("weight", "k", "bias"))
    assert all(p.is_file() for p in design.rom_images.values())
    assert [f.name for f in design.verilog] == ["permdeal_engine.v", "permdeal_rom.v"]

    r = design.predict(x, sim="icarus", seed=3, output=tmp_path / "r")  # float inputs
    assert r.outputs.shape == (7, 6)
    assert np.array_equal(r.outputs, want)  # the RTL, value by value, against the reference
    assert np.array_equal(r.predictions, np.argmax(want, axis=1))
    assert np.array_equal(r.values, want / 2.0 ** 6)  # out format 12:6
    assert r.golden_equal and r.cycles_equal and r.report["seed"] == 3
    # the RTL's cycles are the cycle model's, input by input
    cyc = api.cycles(model, codes, pes=1, lanes=2, scan_width=4)
    assert r.cycles == cyc.totals.tolist() == r.model_cycles and len(r.cycles) == 7
    assert json.loads((tmp_path / "r" / "report.json").read_text())["cycles"] == r.cycles

    # integer codes from a .npy path give the same outputs
    np.save(tmp_path / "codes.npy", codes)
    r2 = api.simulate(tmp_path / "d", tmp_path / "codes.npy", sim="icarus", seed=4,
                      output=tmp_path / "r2")
    assert np.array_equal(r2.outputs, want) and r2.cycles == r.cycles


def test_compress_load_cycles_evaluate(tmp_path, compressed):
    model, folder = compressed
    back = api.load(folder)
    x, codes = exact_inputs(9)
    assert np.array_equal(back.forward(codes), reference_forward(model, codes))
    assert [l.matrix.p for l in back.layers] == PS
    assert back.input_format == Fixed(12, 6) and back.layers[0].fmts.weight == Fixed(12, 8)

    c = api.cycles(folder, x, pes=2, lanes=1)
    assert len(c.runs) == 9 and c.mean == pytest.approx(np.mean(c.totals))
    # every inference loads its 14 inputs and streams out its 6 outputs; a layer's useful
    # lane-cycles are nnz(x) * M'
    assert all(run.load == 14 and run.unload >= 6 for run in c.runs)
    first = c.runs[0].layers[0]
    assert first.nnz == np.count_nonzero(codes[0])
    assert first.useful_lane_cycles == first.nnz * -(-SIZES[1] // PS[0])
    assert set(c.layer_utilization()) == {"fc1", "fc2"} and "whole inference" in c.table()

    labels = np.argmax(reference_forward(model, codes), axis=1)
    labels[:3] = (labels[:3] + 1) % SIZES[-1]  # three wrong on purpose
    assert api.evaluate(folder, codes, labels) == pytest.approx(6 / 9)


def test_smartdeal_compress_and_float_models(tmp_path):
    pairs = float_pairs()
    sd = api.compress(pairs, method="smartdeal", S=2, E=2, b_bits=6, output=tmp_path / "sd",
                      **FORMATS)
    assert type(sd).__name__ == "SmartDealModel"
    assert (sd.config["S"], sd.config["E"], sd.config["b_bits"]) == (2, 2, 6)
    assert (tmp_path / "sd" / "rom" / "manifest.json").is_file()
    assert type(api.load(tmp_path / "sd")).__name__ == "SmartDealModel"
    # a float-model .npz gives the same model as the pairs
    np.savez(tmp_path / "m.npz", **{f"fc{i + 1}.{k}": a for i, (W, b) in enumerate(pairs)
                                    for k, a in (("weight", W), ("bias", b))})
    a = api.compress(pairs, p=PS, **FORMATS)
    b = api.compress(tmp_path / "m.npz", p=PS, **FORMATS)
    _, codes = exact_inputs(4)
    assert np.array_equal(a.forward(codes), b.forward(codes))
    # the model folder records the file it came from
    api.compress(tmp_path / "m.npz", p=PS, output=tmp_path / "c2", **FORMATS)
    man = json.loads((tmp_path / "c2" / "manifest.json").read_text())
    assert man["source"]["file"] == "m.npz"


def test_reexported_from_the_package():
    assert permdeal.compress is api.compress and permdeal.Design is api.Design


@pytest.mark.parametrize("call, message", [
    (lambda m: api.compress(float_pairs(), method="pruned", p=2), "method must be one of "
     "'permdiag', 'smartdeal', not 'pruned'"),
    (lambda m: api.compress(float_pairs()), "method 'permdiag' needs p"),
    (lambda m: api.compress(float_pairs(), p=2, S=3), "S (--S) does not apply to method 'permdiag'; it applies only to method 'smartdeal'"),
    (lambda m: api.compress(float_pairs(), method="smartdeal", p=2), "p (the permuted-diagonal "
     "block size) (--p) does not apply to method 'smartdeal'; it applies only to method "
     "'permdiag'"),
    (lambda m: api.compress(float_pairs(), p=[2, 2, 2]), "got 3 block sizes p for 2 layers"),
    (lambda m: api.compress(float_pairs(), p="4"), "block size p must be an integer or one per "
     "layer, not '4'"),
    (lambda m: api.evaluate(m, np.zeros((2, 14)), np.array([0, 6])), "labels: expected 2 class "
     "indices in [0, 6), found 0..6"),
    (lambda m: api.compress([(np.ones((3, 4)), np.ones(2))], p=2),
     "model: fc1 bias has shape (2,), expected (3,)"),
    (lambda m: api.compress([(np.ones((3, 4)), np.ones(3)), (np.ones((2, 5)), np.ones(2))], p=1),
     "layers do not chain: fc1 gives 3 outputs but fc2 takes 5 inputs"),
    (lambda m: api.compress({"w": 1}, p=2), "model must be a float-model .npz path"),
    (lambda m: api.compress(float_pairs(), p=2, act=40), "act bits must be an integer in [2, 32]"),
    (lambda m: api.compress(float_pairs(), p=2, weight="16"), "weight: expected BITS:FRAC such "
     "as 16:8, got '16'"),
    (lambda m: api.cycles(m, np.zeros((2, 5)), 1, 1), "x: expected (batch, 14) inputs, got "
     "shape (2, 5)"),
    (lambda m: api.cycles(m, np.full((1, 14), 99999), 1, 1), "x: integer inputs must be codes "
     "of 12:6"),
    (lambda m: api.cycles(m, np.zeros(14), 0, 1), "PE count (--pes) must be an integer >= 1"),
    (lambda m: api.cycles(m, "missing.npy", 1, 1), "x missing.npy: no such file"),
    (lambda m: api.cycles(m, np.array(["a"] * 14), 1, 1), "x: holds <U1 values"),
    (lambda m: api.generate(42, 1, 1), "compressed must be a compressed model"),
    (lambda m: api.simulate("no-such-design", np.zeros(14)), "no-such-design/manifest.json: "
     "missing"),
    (lambda m: api.evaluate(m, np.zeros((2, 14))), "give both x and labels"),
    (lambda m: api.evaluate(m, np.zeros((2, 14)), np.array([0, 9])), "labels: expected 2 class "
     "indices in [0, 6)"),
])
def test_bad_input(call, message, compressed):
    with pytest.raises(PermdealError) as e:
        call(compressed[0])
    assert message in str(e.value)


def test_smartdeal_model_refused_by_the_engine(tmp_path):
    sd = api.compress(float_pairs(), method="smartdeal", **FORMATS)
    with pytest.raises(PermdealError, match="the engine runs permuted-diagonal models"):
        api.generate(sd, pes=1, lanes=1, output=tmp_path / "d")
    with pytest.raises(PermdealError, match="SmartDeal model"):
        api.cycles(sd, np.zeros(14), 1, 1)
    assert not (tmp_path / "d").exists()


def test_bad_simulator_and_synth_settings(tmp_path, compressed):
    d = api.generate(compressed[0], pes=1, lanes=1, output=tmp_path / "d")
    with pytest.raises(PermdealError, match="sim must be one of 'verilator', 'icarus', not 'vcs'"):
        d.predict(np.zeros(14), sim="vcs")
    with pytest.raises(PermdealError, match="unknown target 'fpga'"):
        api.synthesize(d, targets=("generic", "fpga"))
    with pytest.raises(PermdealError, match="unexpected keyword argument 'clock'"):
        api.synthesize(d, targets="generic", clock=5)
