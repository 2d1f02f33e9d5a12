# amaranth: UnusedElaboratable=no
"""The Python API: the ``permdeal`` commands as functions, for notebooks and scripts.

Each function is a thin layer over what the command line calls (``gen/cli.py``), so the two give
the same results::

    import permdeal.api as pd
    mlp = pd.train_digits(hidden=(32,), p=4, epochs=10)       # permdeal train
    model = pd.compress(mlp, p=4, calibration=pd.digits()[0])  # permdeal compress
    design = pd.generate(model, pes=2, lanes=2)                # permdeal gen
    result = design.predict(pd.digits()[2][:10], sim="icarus") # permdeal sim
    result.predictions, result.cycles, result.golden_equal
    pd.cycles(model, pd.digits()[2], pes=2, lanes=2).mean      # permdeal cycles
    pd.synthesize(design, targets=("generic", "asic"))         # permdeal synth

Models are the golden model's own objects: a float :class:`~permdeal.golden.train.MLP`, a
compressed :class:`~permdeal.golden.model.QuantModel` (permuted-diagonal) or
:class:`~permdeal.golden.smartdeal_model.SmartDealModel`. Wherever a function takes one, a folder
path of ``permdeal compress`` works too; where it takes inputs, a ``(batch, n)`` or ``(n,)``
array of floats (quantized to the model's input format), of integer codes of that format, or the
path of a ``.npy`` file holding either. Outputs go to the folder given as ``output``, or to a
fresh temporary folder when it is left out. Bad input raises
:class:`~permdeal.errors.PermdealError` with a message naming the parameter.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from permdeal import atomic
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.gen import cli, design as _design, sim as _sim
from permdeal.gen import report as _report
from permdeal.golden import rom as _rom
from permdeal.golden import train as _train
from permdeal.golden.compress import QuantSpec, compress_permdiag, compress_smartdeal
from permdeal.golden.cycles import EngineConfig, model_cycles
from permdeal.golden.formats import MAX_BITS, Fixed
from permdeal.golden.manifest import read_manifest
from permdeal.golden.model import (FloatLayer, QuantModel, check_labels, load_float_model,
                                   sha256_file)
from permdeal.golden.smartdeal_model import SmartDealModel

__all__ = ["METHODS", "Cycles", "Design", "PermdealError", "Result", "compress", "cycles",
           "digits", "evaluate", "generate", "load", "simulate", "synthesize", "train_digits"]

#: The compression methods of :func:`compress`.
METHODS = ("permdiag", "smartdeal")
#: :func:`compress`'s SmartDeal-only settings (``permdeal compress`` flags).
SMARTDEAL_OPTIONS = tuple(dest for dest, _ in cli.SMARTDEAL_FLAGS)


def _fresh(prefix):
    """A new folder name inside a fresh temporary folder (for outputs the caller did not name)."""
    return Path(tempfile.mkdtemp(prefix=f"permdeal-{prefix}-")) / prefix


# -- data and training -----------------------------------------------------------------------

def digits(seed=0):
    """scikit-learn's 8x8 handwritten digits, pixels in [0, 1], split as every command splits it.

    Returns ``(X_train, y_train, X_test, y_test)`` (the test split is 450 images)::

        X_tr, y_tr, X_te, y_te = digits()
    """
    return _train.load_digits_split(seed)


def train_digits(hidden=(128, 64), p=1, *, epochs=40, finetune_epochs=30, seed=0, output=None,
                 force=False):
    """Train an MLP on the digits (``permdeal train``): dense, then, for ``p > 1`` (one block size
    or one per layer), projected to permuted-diagonal form and fine-tuned.

    Returns the float :class:`~permdeal.golden.train.MLP`; with ``output`` also writes it as a
    float-model ``.npz`` (refusing to overwrite a file unless ``force``)::

        mlp = train_digits(hidden=(64,), p=4, output="build/mlp.npz")
        evaluate(mlp)   # float test accuracy
    """
    if output is not None:
        atomic.check_new_file(output, force)
    hidden = list(_train._ints("hidden size", hidden))
    X_tr, y_tr, _, _ = _train.load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    ps = _train._per_layer(p, len(sizes) - 1)
    model = _train.train(_train.init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, seed=seed)
    if any(v > 1 for v in ps):
        model = _train.train(_train.project(model, ps), X_tr, y_tr, epochs=finetune_epochs,
                             seed=seed)
    if output is not None:
        _train.save_npz(model, output)
    return model


# -- compression -----------------------------------------------------------------------------

def _float_layers(model):
    """Float layers and the source record of a path, an MLP, FloatLayers or (W, b) pairs."""
    if isinstance(model, (str, Path)):
        return load_float_model(model), {"file": Path(model).name, "sha256": sha256_file(model)}
    if isinstance(model, _train.MLP):
        return [FloatLayer(n, W, b) for n, W, b in model.dense_weights()], None
    if isinstance(model, (list, tuple)) and model:
        if all(isinstance(l, FloatLayer) for l in model):
            return list(model), None
        if all(isinstance(l, (list, tuple)) and len(l) == 2 for l in model):
            return _pairs(model), None
    raise PermdealError(
        "model must be a float-model .npz path, a permdeal.golden.train.MLP, a list of "
        f"FloatLayer or a list of (weight (out x in), bias) pairs, not {type(model).__name__}")


def _pairs(pairs):
    """FloatLayers ``fc1, fc2, ...`` of ``(weight (out x in), bias)`` pairs, checked as the
    ``.npz`` reader checks a float model."""
    out = []
    for i, (W, b) in enumerate(pairs):
        name = f"fc{i + 1}"
        W, b = _array(W, f"model: {name} weight"), _array(b, f"model: {name} bias")
        if W.ndim != 2 or 0 in W.shape:
            raise PermdealError(f"model: {name} weight must be a non-empty 2-D (out x in) array, "
                                f"not shape {W.shape}")
        if b.shape != (W.shape[0],):
            raise PermdealError(f"model: {name} bias has shape {b.shape}, expected "
                                f"({W.shape[0]},) to match its weight {W.shape}")
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise PermdealError(f"model: {name} holds NaN or infinite values")
        if out and out[-1].weight.shape[0] != W.shape[1]:
            raise PermdealError(f"model: layers do not chain: fc{i} gives "
                                f"{out[-1].weight.shape[0]} outputs but {name} takes "
                                f"{W.shape[1]} inputs")
        out.append(FloatLayer(name, W.astype(np.float64), b.astype(np.float64)))
    return out


def _format(value, what):
    """A ``Fixed``, ``"BITS:FRAC"`` text or a bit width (``int``) for a :class:`QuantSpec`."""
    if isinstance(value, Fixed):
        return value
    if isinstance(value, str):
        return Fixed.parse(value, what)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return integer(value, f"{what} bits", 2, MAX_BITS)
    raise PermdealError(f"{what} must be a Fixed, 'BITS:FRAC' or a bit width, not {value!r}")


def _array(x, what):
    """``x`` as an array; a path is read as a ``.npy`` file."""
    if isinstance(x, (str, Path)):
        return cli.load_array(x, what)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise PermdealError(f"{what}: not an array ({e})") from None
    if a.dtype.kind not in "iuf":
        raise PermdealError(f"{what}: holds {a.dtype} values, expected integers or floats")
    return a


def compress(model, method="permdiag", p=None, *, calibration=None, act=None, weight=16,
             bias=16, allow_saturation=False, relu_last=False, output=None, S=None, E=None,
             b_bits=None, rows_per_block=None, threshold=None, prune=None, prune_group=None):
    """Compress a float model (``permdeal compress``) to a quantized model.

    ``model``: a float-model ``.npz`` path, an :class:`~permdeal.golden.train.MLP`, a list of
    :class:`~permdeal.golden.model.FloatLayer` or of ``(weight, bias)`` pairs. ``method``:
    ``"permdiag"`` (needs ``p``, one block size or one per layer) or ``"smartdeal"`` (``S``,
    ``E``, ``b_bits``, ``rows_per_block``, ``threshold``, ``prune``, ``prune_group``).
    ``calibration``: float inputs (array or ``.npy``) that the activation formats are fitted to.
    ``act``, ``weight``, ``bias``: a ``Fixed``, ``"BITS:FRAC"`` or a bit width (fraction bits
    fitted); ``act`` defaults to 16 bits fitted with calibration, else ``16:8``. ``output``: also
    write the compressed-model folder there. Returns a
    :class:`~permdeal.golden.model.QuantModel` or
    :class:`~permdeal.golden.smartdeal_model.SmartDealModel`::

        X_tr = digits()[0]
        pd8 = compress("mlp.npz", p=8, calibration=X_tr)
        sd = compress("mlp.npz", method="smartdeal", calibration=X_tr)
    """
    if method not in METHODS:
        raise PermdealError(f"method must be one of {', '.join(map(repr, METHODS))}, not "
                            f"{method!r}")
    sd_opts = {k: v for k, v in zip(SMARTDEAL_OPTIONS, (S, E, b_bits, rows_per_block, threshold,
                                                        prune, prune_group)) if v is not None}
    if method == "smartdeal" and p is not None:
        raise PermdealError("p (the permuted-diagonal block size) does not apply to method "
                            "'smartdeal'; its settings are S, E and b_bits")
    if method == "permdiag":
        if sd_opts:
            raise PermdealError(f"{next(iter(sd_opts))} applies only to method 'smartdeal'")
        if p is None:
            raise PermdealError("method 'permdiag' needs p (one block size, or one per layer; "
                                "1 = dense)")
        if isinstance(p, (str, bytes)):
            raise PermdealError(f"block size p must be an integer or one per layer, not {p!r}")
    layers, source = _float_layers(model)
    inputs = [model] if isinstance(model, (str, Path)) else []
    cal = None
    if calibration is not None:
        cal = _array(calibration, "calibration")
        if isinstance(calibration, (str, Path)):
            inputs.append(calibration)
    act = _format(act, "act") if act is not None else (16 if cal is not None else Fixed(16, 8))
    spec = QuantSpec(act=act, weight=_format(weight, "weight"), bias=_format(bias, "bias"),
                     allow_saturation=bool(allow_saturation))
    if method == "smartdeal":
        out = compress_smartdeal(layers, spec, calibration=cal, relu_last=relu_last, **sd_opts)
    else:
        out = compress_permdiag(layers, p, spec, calibration=cal, relu_last=relu_last)
    if output is not None:
        with atomic.output_dir(output, inputs=inputs) as tmp:
            if method == "smartdeal":
                out.write_folder(tmp, source=source)
            else:
                out.write(tmp, source=source)
    return out


def load(folder):
    """Read a compressed-model folder of either method (as ``permdeal check`` does)::

        model = load("build/compressed")
    """
    return cli._read_any_model(folder)


def _compressed(model, what="compressed"):
    """A compressed model object from an object or a folder."""
    if isinstance(model, (str, Path)):
        return load(model)
    if isinstance(model, QuantModel):
        return model
    raise PermdealError(f"{what} must be a compressed model (from compress or load) or its "
                        f"folder, not {type(model).__name__}")


def _permdiag(model, what):
    model = _compressed(model)
    if isinstance(model, SmartDealModel):
        raise PermdealError(f"{what}: the engine runs permuted-diagonal models; this is a "
                            "SmartDeal model (compress with method='permdiag')")
    return model


def _codes(model, x, what="x"):
    """Input codes of ``model`` from floats, codes or a ``.npy`` path (``permdeal sim``'s rule)."""
    return cli._input_codes(model, _array(x, what), what)


def evaluate(model, x=None, labels=None, seed=0):
    """Test accuracy (``permdeal eval``): bit-exact golden fixed point for a compressed model,
    float for an :class:`~permdeal.golden.train.MLP`. Without ``x`` and ``labels``, the digits
    test split of ``seed``::

        evaluate(compress(mlp, p=4, calibration=digits()[0]))   # e.g. 0.97
    """
    if (x is None) != (labels is None):
        raise PermdealError("give both x and labels (one class index per input), or neither")
    if x is None:
        _, _, x, labels = _train.load_digits_split(seed)
    y = _array(labels, "labels")
    if isinstance(model, _train.MLP):
        return _train.accuracy(model, _array(x, "x"), y)
    model = _compressed(model, "model")
    codes = _codes(model, x)
    y = check_labels(y, len(codes), model.layers[-1].shape[0])
    return float(np.mean(np.argmax(model.forward(codes), axis=1) == y))


# -- cycle model -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Cycles:
    """The cycle model on a batch: ``runs`` (one
    :class:`~permdeal.golden.cycles.InferenceCycles` per input), ``config``, ``model``."""

    runs: tuple
    config: EngineConfig
    model: QuantModel

    @property
    def totals(self):
        """Cycles of every inference (first input accepted to last output accepted)."""
        return np.array([r.total for r in self.runs])

    @property
    def mean(self):
        """Mean cycles per inference."""
        return float(self.totals.mean())

    @property
    def utilization(self):
        """Mean lane utilization over the compute phase."""
        return float(np.mean([r.utilization for r in self.runs]))

    def layer_utilization(self):
        """``{layer name: mean lane utilization of that layer}``."""
        return {l.name: float(np.mean([r.layers[i].utilization for r in self.runs]))
                for i, l in enumerate(self.model.layers)}

    def table(self):
        """The per-layer table ``permdeal cycles`` prints."""
        return _report.cycles_table(self.model, self.config, list(self.runs))


def cycles(model, x, pes, lanes, scan_width=8):
    """Exact engine cycles for inputs ``x`` (``permdeal cycles``), without simulation::

        c = cycles(model, digits()[2], pes=4, lanes=2)
        c.mean, c.utilization, print(c.table())
    """
    model = _permdiag(model, "cycles")
    cfg = EngineConfig(pes, lanes, scan_width=scan_width)
    return Cycles(tuple(model_cycles(model, xi, cfg) for xi in _codes(model, x)), cfg, model)


# -- designs and simulation ------------------------------------------------------------------

class Design:
    """A generated design folder (``permdeal gen``), checked against its manifest.

    ``folder``; ``config`` (:class:`~permdeal.golden.cycles.EngineConfig`); ``top`` (the Verilog
    module); ``ports`` (``in_bits``, ``out_bits``, ``n_inputs``, ``n_outputs``); ``verilog`` (the
    source files); ``rom_images`` (``{file name: path}``, empty when the images come later);
    ``manifest``; ``model`` (the compressed model the images hold, or ``None``)::

        d = Design("build/design"); d.ports["n_inputs"], d.rom_images
    """

    def __init__(self, folder):
        self._design = _design.Design(folder)
        d = self._design
        self.folder, self.config, self.top = d.folder, d.cfg, d.top
        self.manifest = d.manifest
        self.ports = dict(d.manifest["ports"])
        self.verilog = list(d.sources)
        self.model, self.rom_images = None, {}
        if (d.rom_dir / atomic.MANIFEST_NAME).is_file():
            self.model, rom = _sim.load_model(d)
            man = read_manifest(rom / atomic.MANIFEST_NAME, _rom.ROM_KIND)
            self.rom_images = {e["file"]: rom / e["file"] for e in man["images"]}

    def __repr__(self):
        c = self.config
        return (f"Design({str(self.folder)!r}: {c.n_pe} PE x {c.lanes} lanes, "
                f"{self.ports['n_inputs']} -> {self.ports['n_outputs']})")

    def predict(self, x, sim="verilator", **kwargs):
        """:func:`simulate` this design on ``x``: outputs, predictions and stats::

            r = design.predict(X_te, sim="icarus"); r.predictions, r.cycles
        """
        return simulate(self, x, sim=sim, **kwargs)


def generate(model, pes, lanes, scan_width=8, output=None, name="permdeal_engine"):
    """Generate the engine's Verilog, ROM images and manifest for a permuted-diagonal model
    (``permdeal gen --model``); returns the :class:`Design`::

        design = generate(model, pes=4, lanes=2, output="build/design")
    """
    model = _permdiag(model, "generate")
    cfg = EngineConfig(pes, lanes, scan_width=scan_width)
    out = Path(output) if output is not None else _fresh("design")
    _design.write_design(out, cfg, model.layers, model=model, name=name)
    return Design(out)


@dataclass(frozen=True)
class Result:
    """One simulation of a design on a batch (``permdeal sim``'s results).

    ``outputs``: the RTL's output codes (batch x outputs); ``values``: the same as floats of the
    output format; ``predictions``: the index of each row's largest output; ``cycles``: the RTL's
    cycles per input, ``model_cycles`` the cycle model's; ``golden_equal``: every output equals the
    golden model's; ``cycles_equal``: every count equals the cycle model's; ``lane_utilization``;
    ``report`` (the whole ``report.json``); ``folder`` (the results folder).
    """

    outputs: np.ndarray
    values: np.ndarray
    predictions: np.ndarray
    cycles: list
    model_cycles: list
    golden_equal: bool
    cycles_equal: bool
    lane_utilization: float
    report: dict
    folder: Path


def _design_of(design):
    if isinstance(design, Design):
        return design
    if isinstance(design, (str, Path)):
        return Design(design)
    raise PermdealError(f"design must be a Design (from generate) or a design folder, not "
                        f"{type(design).__name__}")


def simulate(design, x, sim="verilator", output=None, seed=None, waves=False):
    """Run a design on inputs ``x`` in a simulator against the golden model (``permdeal sim``).

    ``sim`` is ``"verilator"`` or ``"icarus"``; ``seed`` the cocotb seed (default a fresh one,
    in ``result.report["seed"]``). Returns a :class:`Result`::

        r = simulate(design, X_te[:20], sim="verilator")
        assert r.golden_equal and r.cycles_equal
        accuracy = (r.predictions == y_te[:20]).mean()
    """
    from permdeal.verif.runner import SIMULATORS
    d = _design_of(design)
    if sim not in SIMULATORS:
        raise PermdealError(f"sim must be one of {', '.join(map(repr, SIMULATORS))}, not {sim!r}")
    if d.model is None:
        _sim.load_model(d._design)  # raises: no ROM images, and how to write them
    codes = _codes(d.model, x)
    out = Path(output) if output is not None else _fresh("sim")
    rep = _sim.simulate(d.folder, codes, sim, out, seed=seed, waves=waves,
                        inputs=[x] if isinstance(x, (str, Path)) else [])
    y = np.load(out / "outputs.npy")
    return Result(outputs=y, values=d.model.output_format.to_float(y),
                  predictions=np.argmax(y, axis=1), cycles=list(rep["cycles"]),
                  model_cycles=list(rep["model_cycles"]), golden_equal=rep["golden_match"],
                  cycles_equal=rep["cycles_match_model"],
                  lane_utilization=rep["lane_utilization"], report=rep, folder=out)


# -- synthesis -------------------------------------------------------------------------------

def synthesize(design, targets=("generic", "asic"), output=None, **options):
    """Synthesize a design (``permdeal synth --design``); returns the report dict (also written
    to ``output``/report.json with report.txt and the tools' logs).

    ``targets``: any of ``"generic"``, ``"asic"``, ``"ecp5"`` (a sequence or comma-separated
    text). ``options`` are :class:`~permdeal.synth.flow.SynthOptions`'s: ``device``, ``speed``,
    ``target_mhz``, ``seed``, ``asic_mhz``, ``sram_um2_per_bit``, ``liberty``, ``flat``::

        rep = synthesize(design, targets=("asic",))
        rep["asic"]["logic_area_um2"]
    """
    from permdeal.synth import flow
    d = _design_of(design)
    if not isinstance(targets, str):
        try:
            targets = ",".join(targets)
        except TypeError:
            raise PermdealError(f"targets must be a sequence of target names, not {targets!r}") \
                from None
    names = flow.parse_targets(targets)
    try:
        opts = flow.SynthOptions(**options)
    except TypeError as e:
        raise PermdealError(f"synthesize: {e} (options: device, speed, target_mhz, seed, "
                            "asic_mhz, sram_um2_per_bit, liberty, flat)") from None
    flow.check_tools(names, opts)
    out = Path(output) if output is not None else _fresh("synth")
    return flow.run(d.folder, names, opts, out)
