"""``permdeal compare``: the compressed formats of the source papers side by side (issue 7).

One workload, six formats, the same figures for each, per layer and in total:

- **Workloads.** The digits MLP (default: trained here with :mod:`golden.train` on scikit-learn's
  digits; counts are means over the 450 test images, accuracy on them); a user's float model
  (``--model FILE.npz``, loaded as ``permdeal compress`` does; ``--data digits`` evaluates and
  fine-tunes it on digits, otherwise ``--vectors`` random inputs of ``--input-density``); or
  EIE's benchmark layers (``--eie-layers all`` or names such as ``Alex-7``: random ``N(0, 1/n)``
  weights at the layer's shape, ``--vectors`` random inputs with exactly the layer's published
  activation density, :data:`golden.workloads.EIE_LAYERS`). Hidden activations are each format's
  own float model's (ReLU after every layer but the last).
- **Formats.** Dense 16-bit; permuted-diagonal (PD) at ``--p``; EIE at ``--density`` (pruning,
  4-bit codebook, interleaved CSC); block-circulant at ``--k``; SmartDeal at ``--S``/``--E``
  (``--b-bits`` B); SME (``--xbar-weight-bits`` sign-magnitude, ``--sme-cap`` set bits per weight,
  squeeze-out below ``--sme-threshold`` set bits per crossbar). With digits every format is
  fine-tuned with its structure kept where the golden model can (PD, block-circulant, SmartDeal;
  EIE: the pruned weights retrained with their zero pattern fixed, then weight-shared, the
  codebook not retrained); SME is quantized only.
- **Budget.** Every digital format gets the same ``--pes`` x ``--lanes`` multipliers.

How each figure is counted is each method's ``rule`` (:mod:`permdeal.methods`; printed under
the table and stored in the JSON).
Outputs: the printed tables (:func:`permdeal.tables.table`), ``--json FILE``, ``--plot FILE.png``, or
``-o DIR`` with ``compare.json``, ``compare.txt`` and ``compare.png``; all written atomically, none
over an input. :class:`CompareOptions` holds the options, :func:`run` runs the command; the
methods compared are those of the registry, in its order.
"""

import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from permdeal import atomic, checks, limits, methods
from permdeal.methods import figures
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.executor import Executor, Task, executor, using
from permdeal.golden import cycles as pd_cycles
from permdeal.golden import eie
from permdeal.golden import smartdeal as sd
from permdeal.golden.crossbar import LIMITS, CrossbarConfig
from permdeal.golden.cycles import DEFAULT_SCAN_WIDTH
from permdeal.golden.permdiag import check_block_fit
from permdeal.golden.train import MLP, init_mlp, load_digits_split, train
from permdeal.golden.train import _forward as forward
from permdeal.golden.workloads import EIE, EIE_LAYERS, eie_layer
from permdeal.methods.energy import PARTS, WEIGHT_MEMORIES
from permdeal.synth import energy as prices
from permdeal.methods.figures import dense_mlp

from .compare_report import plot, text

#: Random input vectors per layer or model when no data set gives the inputs (``--vectors``).
VECTORS = 4
#: Files of ``-o DIR``.
OUTPUT_FILES = {"json": "compare.json", "text": "compare.txt", "plot": "compare.png"}
#: Engine budgets when ``--pes``/``--lanes`` are not given: the demo's engine for a model, the
#: PermDNN paper's 32 x 8 design point for EIE's layers.
DEFAULT_BUDGET = {"model": (4, 2), "eie": (32, 8)}

#: The energy claims of the source papers (docs/references.md) that ``compare`` sets beside its
#: own figures: the energy of ``over`` over that of ``format`` (per inference), claimed range.
ENERGY_CLAIMS = (
    {"paper": "PermDNN", "format": "permdiag", "over": "circulant", "claim": (3.89, 3.89),
     "text": "3.89x the energy efficiency of CirCNN (block-circulant)"},
    {"paper": "PermDNN", "format": "permdiag", "over": "eie", "claim": (2.8, 4.0),
     "text": "2.8-4.0x the energy efficiency of EIE"},
    {"paper": "SmartDeal", "format": "smartdeal", "over": "dense", "claim": (1.0, 2.44),
     "text": "up to 2.44x the energy efficiency (its abstract names no baseline; set here "
             "against the uncompressed network)"},
)
#: How the energy column is counted, stored in the JSON and printed under the table.
ENERGY_MODEL = (
    "counted model (permdeal/methods/energy.py, docs/design.md 13.1): every format's multiplies, "
    "adds and memory accesses per inference priced by Horowitz's 45 nm table (16-bit multiply "
    f"{prices.op_pj('mult', 16, prices.NODE_45NM):.2f} pJ, 32-bit add "
    f"{prices.op_pj('add', 32, prices.NODE_45NM):.2g} pJ; SRAM by size, 8 KB "
    f"{prices.access_pj(64, 1024, prices.NODE_45NM):g} pJ per 64 bits; DRAM "
    f"{prices.dram_pj(64) / 1e3:g} nJ per 64 bits), stored weights and accumulators in one bank "
    "per multiplier of the budget; each method's own docstring (its count) says what it counts; "
    "at 45 nm")

#: Note on the crossbar columns, printed with the rules.
CROSSBAR_RULE = ("crossbars: inputs on rows, outputs on columns, signed weights in positive and "
                 "negative arrays, --xbar-weight-bits sign-magnitude weights in --cell-bits cells "
                 "(SME: 1-bit cells, one grid per bit slice); reads: crossbar read cycles per "
                 "inference, one per DAC slice of the --input-bits inputs; util: used cells over "
                 "the cells of the allocated crossbars.")


# -- options ------------------------------------------------------------------------------------

_XB = CrossbarConfig()


@dataclass(frozen=True)
class CompareOptions:
    """The options of a comparison as given (the flags of ``permdeal compare``, unchecked);
    :func:`settings` and :func:`workload` check them."""

    model: str | None = None
    eie_layers: str | None = None
    data: str | None = None
    hidden: str = "128,64"
    epochs: int = 40
    finetune_epochs: int = 30
    vectors: int | None = None
    input_density: str | None = None
    seed: int = 0
    p: int = 4
    k: int = 4
    density: str = "0.25"
    S: int = 3
    E: int = 3
    b_bits: int = 8
    sme_cap: str = "3"
    sme_threshold: int = 8
    pes: int | None = None
    lanes: int | None = None
    scan_width: int = DEFAULT_SCAN_WIDTH
    fifo_depth: int = EIE["fifo_depth"]
    xbar_rows: int = _XB.rows
    xbar_cols: int = _XB.cols
    cell_bits: int = _XB.cell_bits
    dac_bits: int = _XB.dac_bits
    adc_bits: int = _XB.adc_bits
    xbar_weight_bits: int = _XB.weight_bits
    input_bits: int = _XB.input_bits
    weight_memory: str = WEIGHT_MEMORIES[0]
    measure_energy: int = 0
    json: str | None = None
    plot: str | None = None
    output: str | None = None
    force: bool = False
    jobs: int = 1
    dask: str | None = None


#: The option names of :class:`CompareOptions` (the command line's flags).
OPTIONS = tuple(f.name for f in dataclasses.fields(CompareOptions))


@dataclass(frozen=True)
class Settings:
    """The checked settings of a comparison (the flags, with the defaults filled in)."""

    p: int
    k: int
    density: float | None   # None: each EIE layer's published density
    S: int
    E: int
    b_bits: int
    sme_cap: int | None
    sme_threshold: int
    engine: pd_cycles.EngineConfig
    fifo_depth: int
    xbar: CrossbarConfig
    epochs: int
    finetune_epochs: int
    seed: int
    weight_memory: str = WEIGHT_MEMORIES[0]
    measure_energy: int = 0

    @property
    def multipliers(self) -> int:
        """The multiplier budget: ``pes * lanes``."""
        return self.engine.total_lanes

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["engine"] = self.engine.to_json()
        d["xbar"] = self.xbar.to_json()
        d["multipliers"] = self.multipliers
        return d


def _fraction(text, flag, allow=None):
    """``text`` as a number in (0, 1] (or the keyword ``allow``, returned as None)."""
    if allow is not None and str(text).strip().lower() == allow:
        return None
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = math.nan
    if not 0 < v <= 1:
        extra = f" or '{allow}'" if allow else ""
        raise PermdealError(f"{flag} must be a number in (0, 1]{extra}, not {text!r}")
    return v


def _int_list(text, flag):
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise PermdealError(f"{flag} must be integers separated by commas, not {text!r}") from None
    return [integer(v, flag, 1) for v in values]


def settings(opts: CompareOptions, kind: str) -> Settings:
    """Check the options ``opts`` (:class:`CompareOptions`) for a workload of ``kind``
    (``"model"`` or ``"eie"``)."""
    pes, lanes = DEFAULT_BUDGET[kind]
    density = _fraction(opts.density, "--density", allow="eie")
    if density is None and kind != "eie":
        raise PermdealError("--density eie (the published densities) needs --eie-layers")
    cap = None if str(opts.sme_cap).strip().lower() == "none" else opts.sme_cap
    if cap is not None:
        try:
            cap = int(cap)
        except ValueError:
            raise PermdealError(f"--sme-cap must be an integer >= 1 or 'none', not "
                                f"{opts.sme_cap!r}") from None
        integer(cap, "--sme-cap", 1, LIMITS["weight_bits"][2])
    xbar = {"rows": "--xbar-rows", "cols": "--xbar-cols", "cell_bits": "--cell-bits",
            "dac_bits": "--dac-bits", "adc_bits": "--adc-bits",
            "weight_bits": "--xbar-weight-bits", "input_bits": "--input-bits"}
    dest = {"rows": "xbar_rows", "cols": "xbar_cols", "weight_bits": "xbar_weight_bits"}
    for name, flag in xbar.items():
        _, lo, hi = LIMITS[name]
        integer(getattr(opts, dest.get(name, name)), flag, lo, hi)
    if opts.weight_memory not in WEIGHT_MEMORIES:
        raise PermdealError(f"--weight-memory must be one of {', '.join(WEIGHT_MEMORIES)}, not "
                            f"{opts.weight_memory!r}")
    measure = integer(opts.measure_energy, "--measure-energy", 0)
    if measure and kind == "eie":
        raise PermdealError("--measure-energy simulates whole designs, and EIE's layers are too "
                            "big for that: `permdeal bench --parts power` measures them at "
                            "reduced scale")
    if measure:  # (before anything is trained: the tools of permdeal power are there)
        from permdeal.synth import flow
        flow.check_tools(["asic"], flow.SynthOptions())
    return Settings(
        weight_memory=opts.weight_memory, measure_energy=measure,
        p=integer(opts.p, "--p", 1), k=integer(opts.k, "--k", 1), density=density,
        S=integer(opts.S, "--S", 1, sd.MAX_S), E=integer(opts.E, "--E", *sd.E_RANGE),
        b_bits=integer(opts.b_bits, "--b-bits", *sd.B_BITS_RANGE), sme_cap=cap,
        sme_threshold=integer(opts.sme_threshold, "--sme-threshold", 0),
        engine=pd_cycles.EngineConfig(
            integer(pes if opts.pes is None else opts.pes, "--pes", 1),
            integer(lanes if opts.lanes is None else opts.lanes, "--lanes", 1),
            integer(opts.scan_width, "--scan-width", 1)),
        fifo_depth=integer(opts.fifo_depth, "--fifo-depth", 1),
        xbar=CrossbarConfig(**{name: getattr(opts, dest.get(name, name)) for name in xbar}),
        epochs=integer(opts.epochs, "--epochs", 1),
        finetune_epochs=integer(opts.finetune_epochs, "--finetune-epochs", 0),
        seed=checks.seed(opts.seed, "--seed"))


# -- workloads ------------------------------------------------------------------------------------

@dataclass
class Net:
    """A chain of layers to compare on: the dense float ``model`` (an :class:`MLP`), its layer
    ``names``, the inputs ``X`` (batch x inputs) the counts are averaged over, and the density
    each EIE layer publishes (None elsewhere)."""

    model: MLP
    names: list
    X: np.ndarray
    eie_density: float | None = None


@dataclass
class Workload:
    """What ``compare`` runs on: ``nets`` (one for a model, one per EIE layer), the digits split
    ``data`` ``(X_tr, y_tr, X_te, y_te)`` or None, a ``title`` and the input files read."""

    kind: str
    title: str
    nets: list
    data: tuple | None
    inputs: list


def random_inputs(n: int, density: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` non-negative input vectors of ``n`` values with exactly
    ``round(density * n)`` non-zeros each (uniform in (0, 1], at random positions)."""
    nnz = eie.nonzero_count(density, n)
    X = np.zeros((count, n))
    for row in X:
        row[rng.choice(n, nnz, replace=False)] = 1.0 - rng.random(nnz)
    return X


def workload(opts: CompareOptions) -> Workload:
    """The :class:`Workload` the options ``opts`` (:class:`CompareOptions`) ask for (the digits
    MLP trained here by default)."""
    from permdeal.api.models import read_float_model
    from permdeal.golden.float_model import fc_only
    if opts.model is not None and opts.eie_layers is not None:
        raise PermdealError("give --model or --eie-layers, not both")
    seed = checks.seed(opts.seed, "--seed")
    vectors = VECTORS if opts.vectors is None else integer(opts.vectors, "--vectors", 1)
    limits.check_array(vectors, max((l.shape[1] for l in EIE_LAYERS), default=1),
                       f"--vectors {vectors} random inputs")
    rng = np.random.default_rng(seed)
    on_digits = opts.eie_layers is None and (opts.model is None or opts.data == "digits")
    if on_digits:
        for flag, value in (("--vectors", opts.vectors), ("--input-density", opts.input_density)):
            if value is not None:
                raise PermdealError(f"{flag} sets the random inputs, but the inputs here are the "
                                    "digits test images (random inputs come with --eie-layers, "
                                    "or --model without --data digits)")
    if opts.eie_layers is not None:
        if opts.data == "digits":
            raise PermdealError("--data digits does not apply to --eie-layers (random layers)")
        names = [t.strip() for t in opts.eie_layers.split(",") if t.strip()]
        if not names:
            raise PermdealError("--eie-layers needs 'all' or layer names separated by commas")
        try:
            layers = (list(EIE_LAYERS) if [n.lower() for n in names] == ["all"]
                      else [eie_layer(n) for n in names])
        except PermdealError as e:
            raise PermdealError(f"--eie-layers: {e}") from None
        nets = []
        for l in layers:
            m, n = l.shape
            W = rng.standard_normal((m, n)) / math.sqrt(n)
            dens = (l.act_density if opts.input_density is None
                    else _fraction(opts.input_density, "--input-density"))
            nets.append(Net(dense_mlp([(W, np.zeros(m))]), [l.name],
                            random_inputs(n, dens, vectors, rng), l.weight_density))
        title = (f"EIE layers {', '.join(l.name for l in layers)}: random N(0, 1/n) weights "
                 f"(seed {seed}); {vectors} random input vector(s) per layer at "
                 + ("the layer's activation density" if opts.input_density is None
                    else f"density {opts.input_density}"))
        return Workload("eie", title, nets, None, [])
    if opts.model is None:
        if opts.data == "none":
            raise PermdealError("--data none needs --model (the digits MLP is trained on digits)")
        hidden = _int_list(opts.hidden, "--hidden")
        data = load_digits_split(seed)
        sizes = [data[0].shape[1], *hidden, 10]
        epochs = integer(opts.epochs, "--epochs", 1)
        model = train(init_mlp(sizes, seed=seed), data[0], data[1], epochs=epochs, seed=seed)
        title = (f"digits MLP {'-'.join(map(str, sizes))} (trained here, {epochs} epochs, seed "
                 f"{seed}); counts are means over the {len(data[2])} test images")
        names = [f"fc{i + 1}" for i in range(len(sizes) - 1)]
        return Workload("model", title, [Net(model, names, data[2])], data, [])
    layers = read_float_model(opts.model)
    fc_only(layers, "compare")
    model = dense_mlp([(l.weight, l.bias) for l in layers])
    names = [l.name for l in layers]
    sizes = "-".join(map(str, model.sizes))
    if opts.data == "digits":
        data = load_digits_split(seed)
        if model.sizes[0] != data[0].shape[1] or model.sizes[-1] != 10:
            raise PermdealError(f"--data digits needs a model of {data[0].shape[1]} inputs and 10 "
                                f"outputs; {opts.model} is {sizes}")
        title = (f"{opts.model} ({sizes}) on digits; counts are means over the {len(data[2])} "
                 "test images")
        return Workload("model", title, [Net(model, names, data[2])], data, [opts.model])
    dens = 0.5 if opts.input_density is None else _fraction(opts.input_density,
                                                            "--input-density")
    title = (f"{opts.model} ({sizes}), no data set; {vectors} random input vector(s) at density "
             f"{dens:g} (seed {seed})")
    return Workload("model", title,
                    [Net(model, names, random_inputs(model.sizes[0], dens, vectors, rng))],
                    None, [opts.model])


def check_fit(wl: Workload, st: Settings) -> None:
    """Refuse block sizes that do not fit a layer (before any training)."""
    for net in wl.nets:
        for name, w in zip(net.names, net.model.weights):
            m, n = w.shape
            for flag, v in (("--p", st.p), ("--k", st.k)):
                check_block_fit(m, n, v, flag, f"layer {name} ({n} inputs x {m} outputs)")


SUM_KEYS = ("storage_bits", "index_bits", "multiplies", "cycles", "crossbars", "crossbar_reads",
            "used_cells", "total_cells", "energy_pj")


def _total(layers):
    """Sums over layers of :data:`SUM_KEYS` (None where a layer has none), and the crossbar
    utilization of the sums."""
    tot = {}
    for key in SUM_KEYS:
        vals = [l.get(key) for l in layers]
        tot[key] = None if any(v is None for v in vals) else sum(vals)
    tot["crossbar_utilization"] = (tot["used_cells"] / tot["total_cells"]
                                   if tot["total_cells"] else None)
    tot["energy"] = (None if tot["energy_pj"] is None else
                     {k: round(sum(l["energy"][k] for l in layers), 3) for k in PARTS})
    return tot


def method_entry(m: Any, wl: Workload, st: Settings) -> dict[str, Any]:
    """One format (method ``m``) on every net of ``wl``: its entry of the results (a task of
    the executor)."""
    t = time.perf_counter()
    layers, accs = [], []
    for net in wl.nets:
        b = m.build(net, wl.data, st)
        acts = forward(b.weights, b.biases, net.X)
        in_block = None
        for name, w, obj, X in zip(net.names, net.model.weights, b.layers, acts):
            fig = m.figures(obj, X, st, in_block)
            rows, cols = w.shape
            layers.append({"layer": name, "shape": [int(rows), int(cols)],
                           "input_density": float(np.count_nonzero(X) / X.size), **fig})
            in_block = m.out_block(obj)
        accs.append(b.accuracy)
        if st.measure_energy and m.power_options(st) is not None:
            measured = measure_energy(m, b, net, wl.data, st)
    entry = {"format": m.name, "label": m.label, "setting": m.setting(st),
             "rule": m.rule, "layers": layers, "total": _total(layers),
             "accuracy": accs[0] if len(accs) == 1 else None,
             "seconds": round(time.perf_counter() - t, 2)}
    if st.measure_energy and m.power_options(st) is not None:
        entry["measured_energy"] = measured  # (one net: EIE's layers are refused)
    return entry


def compare(wl: Workload, st: Settings,
            log: Callable[[str], None] | None = None,
            executor: Executor | None = None) -> dict[str, Any]:
    """Every format on every net of the :class:`Workload` ``wl``, one format a task of
    ``executor``: the results as a dict (the JSON). ``log(text)`` hears of each format as it
    finishes."""
    t0 = time.perf_counter()
    check_fit(wl, st)
    tasks = [Task(method_entry, (m, wl, st), name=m.label) for m in methods.methods()]

    def each(i: int, entry: dict) -> None:
        if log:
            log(f"{entry['label']}: {entry['seconds']:.1f} s")
    with using(executor) as ex:
        out = ex.run(tasks, desc="formats", each=each)
    return {"workload": {"kind": wl.kind, "title": wl.title,
                         "layers": [{"name": nm, "shape": list(w.shape)} for net in wl.nets
                                    for nm, w in zip(net.names, net.model.weights)]},
            "settings": st.to_json(), "crossbar_rule": CROSSBAR_RULE,
            "energy_model": ENERGY_MODEL, "formats": out, "claims": claims(out),
            "seconds": round(time.perf_counter() - t0, 1)}


def measure_energy(m: methods.Method, built: Any, net: Net, data: tuple | None,
                   st: Settings) -> dict[str, Any]:
    """``permdeal power`` on the hardware of method ``m`` for one net: the ``built`` float
    model compressed to 16-bit fixed point (activation formats fitted to the training images,
    or to the net's inputs), its design generated (:meth:`Method.power_options`: the PD engine
    at the budget; SmartDeal's design of one layer unit per layer), its energy measured on the
    first ``st.measure_energy`` inputs; beside it the counted model on the same inputs."""
    from permdeal.golden.compress import QuantSpec
    from permdeal.golden.model import FloatLayer

    from . import power
    if st.measure_energy > len(net.X):
        raise PermdealError(f"--measure-energy {st.measure_energy}: the workload has only "
                            f"{len(net.X)} input(s)")
    x = net.X[:st.measure_energy]
    layers = [FloatLayer(nm, np.asarray(W, np.float64), np.asarray(bias, np.float64))
              for nm, W, bias in zip(net.names, built.weights, built.biases)]
    spec = QuantSpec(act=figures.WEIGHT_BITS, weight=figures.WEIGHT_BITS,
                     bias=figures.WEIGHT_BITS)
    compress, generate = m.power_options(st)
    model = m.compress(layers, spec, calibration=data[0] if data else net.X, **compress)
    work = Path(tempfile.mkdtemp(prefix="permdeal-compare-"))
    m.generate(model, work / "design", **generate)
    # (a failed run keeps the work folder, whose logs its error names)
    rep = power.run(work / "design", x, work / "power", what="--measure-energy inputs")
    shutil.rmtree(work, ignore_errors=True)
    on_chip = dataclasses.replace(st, weight_memory="sram")  # as the hardware keeps them
    counted = sum(m.figures(obj, X, on_chip, blk)["energy_pj"] for obj, X, blk in
                  zip(built.layers, forward(built.weights, built.biases, x),
                      [None] + [m.out_block(o) for o in built.layers[:-1]]))
    s45 = rep["scaled_45nm"]
    return {"inputs": int(len(x)), "design": rep["design"]["title"], "clock_mhz": rep["clock_mhz"],
            "cycles_per_inference": rep["cycles_per_inference"],
            "energy_per_inference_pj_180nm": rep["energy_per_inference_pj"],
            "energy_pj": s45["energy_per_inference_pj"], "scale": s45["factor"],
            "blocks_pj_180nm": rep["energy"]["blocks_pj"], "golden_match": rep["golden_match"],
            "counted_same_inputs_pj": round(counted, 3),
            "measured_over_counted": round(s45["energy_per_inference_pj"] / counted, 3)
            if counted else None}


def claims(fmts: list[dict]) -> list[dict[str, Any]]:
    """The papers' energy-efficiency claims (:data:`ENERGY_CLAIMS`) beside the counted
    model's ratio of the same two formats (energy of ``over`` / energy of ``format``)."""
    tot = {f["format"]: f["total"]["energy_pj"] for f in fmts}
    out = []
    for c in ENERGY_CLAIMS:
        a, b = tot.get(c["format"]), tot.get(c["over"])
        ratio = round(b / a, 3) if a and b else None
        verdict = None
        if ratio is not None:
            lo, hi = c["claim"]
            verdict = "within" if lo <= ratio <= hi else ("below" if ratio < lo else "above")
        out.append({**c, "ours": ratio, "verdict": verdict})
    return out


# -- the command ----------------------------------------------------------------------------------

def run(progress: Callable[[str], None] | None = None, **options: Any) -> int:
    """``permdeal compare`` with the options of :class:`CompareOptions`: compute, print, write
    the outputs; returns the exit code. ``progress`` hears of each format's progress."""
    try:
        opts = CompareOptions(**options)
    except TypeError as e:
        raise PermdealError(f"compare: {e} (options: {', '.join(OPTIONS)})") from None
    if opts.output is not None and (opts.json or opts.plot):
        raise PermdealError("give -o DIR or --json/--plot, not both")
    if opts.model is not None and opts.eie_layers is None:
        from permdeal.api import compare_conv
        from permdeal.api.models import read_float_model
        layers = read_float_model(opts.model)
        if compare_conv.is_conv_network(layers):
            return compare_conv.run(opts, layers, CompareOptions())
    kind = "eie" if opts.eie_layers is not None else "model"
    st = settings(opts, kind)
    inputs = [opts.model] if opts.model else []
    files = [f for f in (opts.json, opts.plot) if f]
    if len(files) == 2 and Path(files[0]).resolve() == Path(files[1]).resolve():
        raise PermdealError("--json and --plot name the same file")
    for f in files:
        atomic.check_new_file(f, opts.force, inputs)

    def compute():
        t0 = time.perf_counter()
        with executor(opts.jobs, opts.dask) as ex:  # a bad scheduler is refused first
            wl = workload(opts)
            res = compare(wl, st, progress, executor=ex)
        res["seconds"] = round(time.perf_counter() - t0, 1)  # training the digits MLP included
        return res, text(res)

    if opts.output is not None:
        with atomic.output_dir(opts.output, inputs=inputs) as tmp:
            res, txt = compute()
            atomic.write_text(tmp / OUTPUT_FILES["json"], json.dumps(res, indent=1) + "\n")
            atomic.write_text(tmp / OUTPUT_FILES["text"], txt)
            atomic.write_bytes(tmp / OUTPUT_FILES["plot"], plot(res))
        print(txt, end="")
        print(f"wrote {opts.output}/ ({', '.join(OUTPUT_FILES.values())})")
        return 0
    res, txt = compute()
    print(txt, end="")
    if opts.json:
        atomic.write_text(opts.json, json.dumps(res, indent=1) + "\n")
        print(f"wrote {opts.json}")
    if opts.plot:
        atomic.write_bytes(opts.plot, plot(res))
        print(f"wrote {opts.plot}")
    return 0
