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

How each figure is counted is :data:`RULES` (printed under the table and stored in the JSON).
Outputs: the printed tables (:func:`gen.report.table`), ``--json FILE``, ``--plot FILE.png``, or
``-o DIR`` with ``compare.json``, ``compare.txt`` and ``compare.png``; all written atomically, none
over an input. :func:`add_arguments` declares the flags, :func:`run` runs the command.
"""

import dataclasses
import io
import json
import math
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from permdeal import atomic
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden import cycles as pd_cycles
from permdeal.golden import eie, eie_cycles, smartdeal as sd, smartdeal_cycles as sd_cycles
from permdeal.golden import sme
from permdeal.golden.circulant_train import circulant_accuracy, circulant_mlp, train_circulant
from permdeal.golden.crossbar import (LIMITS, CrossbarConfig, circulant_mapping, dense_mapping,
                                      lossless_adc_bits, permdiag_mapping)
from permdeal.golden.permdiag import PermDiag, check_block_fit
from permdeal.golden.smartdeal_train import DENSE_BITS, finetune, quantized_mlp, smartdeal_mlp
from permdeal.golden.train import (MLP, _forward, accuracy, init_mlp, load_digits_split, project,
                                   train)
from permdeal.golden.workloads import EIE, EIE_LAYERS, eie_layer

from .report import table

FORMATS = ("dense", "permdiag", "eie", "circulant", "smartdeal", "sme")
LABELS = {"dense": "dense 16-bit", "permdiag": "PD", "eie": "EIE", "circulant": "block-circulant",
          "smartdeal": "SmartDeal", "sme": "SME"}
#: Weight width of the digital formats (dense, PD, block-circulant, EIE's codebook entries).
WEIGHT_BITS = DENSE_BITS
#: Random input vectors per layer or model when no data set gives the inputs (``--vectors``).
VECTORS = 4
#: Files of ``-o DIR``.
OUTPUT_FILES = {"json": "compare.json", "text": "compare.txt", "plot": "compare.png"}
#: Engine budgets when ``--pes``/``--lanes`` are not given: the demo's engine for a model, the
#: PermDNN paper's 32 x 8 design point for EIE's layers.
DEFAULT_BUDGET = {"model": (4, 2), "eie": (32, 8)}

#: How every figure of every format is counted.
RULES = {
    "dense": "storage: 16 bits per weight, no index. Multiplies and cycles: the PermDNN engine "
             "at p = 1 (column-wise, zero inputs skipped: m multiplies per non-zero input), "
             "cycles from its exact cycle model (golden.cycles); the JSON also gives m*n, the "
             "count without zero-skipping. Crossbars: golden.crossbar.dense_mapping.",
    "permdiag": "storage: 16 bits per stored weight inside the matrix plus ceil(log2 p) index "
                "bits per p x p block. Multiplies: every non-zero input meets one weight in each "
                "of the M' block-rows (padded rows included, as the lanes compute them): "
                "M' * nnz(x). Cycles: golden.cycles' exact engine model on the PE x lane budget "
                "(issue and write-back; input loading and output streaming left out, as for "
                "every format). Crossbars: permdiag_mapping, compact mode.",
    "eie": "storage: interleaved CSC entries (4-bit codebook index + 4-bit relative row index, "
           "padding zeros included), column pointers of every PE and the 16-bit codebook "
           "(golden.eie EieMatrix.storage); index overhead: every row-index field, the padding "
           "entries' weight fields and the pointers. Multiplies: the CSC entries (padding "
           "included) of the columns whose input is non-zero, one PE cycle each (zero inputs "
           "skipped). Cycles: golden.eie_cycles' FIFO schedule on one PE per multiplier of the "
           "budget (rows interleaved over them), no pipeline or write-back latency. No crossbar "
           "mapping.",
    "circulant": "storage: 16 bits per first-column value that reaches the matrix, no index. "
                 "Multiplies: by FFT, as real multiplies: an FFT or inverse FFT of k points "
                 "costs 2 k ceil(log2 k) (a radix-2 complex FFT, k/2 log2 k butterflies of one "
                 "4-multiply complex twiddle product each, trivial twiddles included); the "
                 "pointwise product of a block costs 4 per complex frequency bin and 1 per real "
                 "bin (of the floor(k/2) + 1 bins of a real FFT, bin 0 and, for even k, bin k/2 "
                 "are real); a block-column whose k inputs are all zero is skipped (its FFT and "
                 "products), nothing else: FFT(x_J) for every non-zero input block, M' products "
                 "per such block, one inverse FFT per block-row. Cycles: a simple model, "
                 "multiplies / multipliers (every multiplier busy every cycle, no FFT pipeline "
                 "or memory stalls). Crossbars: circulant_mapping (ReBoc storage, copies filling "
                 "spare columns).",
    "smartdeal": "storage: the ROM encoding of DESIGN.md 5.2: E + 2 bits per Ce element plus "
                 "b_B bits per B element (golden.smartdeal.storage_bits 'smartdeal_fixed'); "
                 "index overhead: the non-zero bit of every Ce code. Multiplies: MACs on rebuilt "
                 "weights as the SmartDeal layer unit does them: every weight inside the matrix "
                 "of every chunk the unit takes (a non-zero Ce row, or the last chunk of an "
                 "output row; golden.smartdeal_cycles.slot_plan), whatever the activations (the "
                 "JSON also gives the count with zero inputs skipped); shift-add work apart: "
                 "one shifted B term per non-zero Ce entry and rebuilt weight (S per non-zero Ce "
                 "entry). Cycles: a simple model: the exact one-unit count "
                 "(golden.smartdeal_cycles, one shift-add unit feeding S multipliers) divided "
                 "by the floor(multipliers / S) units the budget buys, output rows split evenly. "
                 "No crossbar mapping.",
    "sme": "storage: the cells (1 bit each) inside the matrix of the crossbars kept after "
           "squeeze-out (both polarities, every magnitude bit slice); index overhead: one bit "
           "per crossbar tile of the full grid (kept or squeezed out). Multiplies and cycles: "
           "none digital, the products are analog in the crossbars. Crossbars: golden.sme's "
           "count after squeeze-out; reads: one per input slice (every crossbar in parallel).",
}
#: Note on the crossbar columns, printed with the rules.
CROSSBAR_RULE = ("crossbars: inputs on rows, outputs on columns, signed weights in positive and "
                 "negative arrays, --xbar-weight-bits sign-magnitude weights in --cell-bits cells "
                 "(SME: 1-bit cells, one grid per bit slice); reads: crossbar read cycles per "
                 "inference, one per DAC slice of the --input-bits inputs; util: used cells over "
                 "the cells of the allocated crossbars.")


# -- arguments ------------------------------------------------------------------------------------

def add_arguments(p):
    """Declare the flags of ``permdeal compare`` on the argparse parser ``p``."""
    xb = CrossbarConfig()
    g = p.add_argument_group("workload")
    g.add_argument("--model", metavar="FILE.npz",
                   help="float model: NAME.weight (out x in) and NAME.bias arrays, in layer order "
                   "(default: train the digits MLP here)")
    g.add_argument("--eie-layers", metavar="LIST",
                   help="EIE's benchmark layers instead of a model: 'all' or names separated by "
                   f"commas ({', '.join(l.name for l in EIE_LAYERS)})")
    g.add_argument("--data", choices=["digits", "none"],
                   help="data set for accuracy and fine-tuning: digits (default for the digits "
                   "MLP) or none (default for --model; EIE layers have none)")
    g.add_argument("--hidden", default="128,64",
                   help="hidden widths of the digits MLP (default 128,64)")
    g.add_argument("--epochs", type=int, default=40,
                   help="training epochs of the digits MLP (default 40)")
    g.add_argument("--finetune-epochs", type=int, default=30,
                   help="epochs of every structure-keeping fine-tune; 0 = none (default 30)")
    g.add_argument("--vectors", type=int,
                   help=f"random input vectors without a data set (default {VECTORS})")
    g.add_argument("--input-density", metavar="D",
                   help="non-zero share of the random inputs, in (0, 1] (default: the EIE "
                   "layer's activation density; 0.5 for a model)")
    g.add_argument("--seed", type=int, default=0, help="seed of training and random data")
    g = p.add_argument_group("formats")
    g.add_argument("--p", type=int, default=4, help="PD block size (default 4)")
    g.add_argument("--k", type=int, default=4, help="block-circulant block size (default 4)")
    g.add_argument("--density", default="0.25",
                   help="EIE weight density in (0, 1], or 'eie' for each EIE layer's published "
                   "density (default 0.25)")
    g.add_argument("--S", type=int, default=3, help="SmartDeal chunk width S (default 3)")
    g.add_argument("--E", type=int, default=3, help="SmartDeal exponent bits E (default 3)")
    g.add_argument("--b-bits", type=int, default=8, help="SmartDeal B bits (default 8)")
    g.add_argument("--sme-cap", default="3",
                   help="SME: most set bits per weight magnitude, or 'none' (default 3)")
    g.add_argument("--sme-threshold", type=int, default=8,
                   help="SME: squeeze out crossbars with fewer set bits (default 8)")
    g = p.add_argument_group("engines (the same multiplier budget for every digital format)")
    g.add_argument("--pes", type=int, help="PEs (default 4 for a model, 32 for EIE layers)")
    g.add_argument("--lanes", type=int,
                   help="multiplier lanes per PE (default 2 for a model, 8 for EIE layers)")
    g.add_argument("--scan-width", type=int, default=8,
                   help="PD engine: activations the detector scans per cycle (default 8)")
    g.add_argument("--fifo-depth", type=int, default=EIE["fifo_depth"],
                   help=f"EIE activation FIFO depth (default {EIE['fifo_depth']})")
    g = p.add_argument_group("crossbars")
    g.add_argument("--xbar-rows", type=int, default=xb.rows,
                   help=f"crossbar rows (default {xb.rows})")
    g.add_argument("--xbar-cols", type=int, default=xb.cols,
                   help=f"crossbar columns (default {xb.cols})")
    g.add_argument("--cell-bits", type=int, default=xb.cell_bits,
                   help=f"bits per cell (default {xb.cell_bits})")
    g.add_argument("--dac-bits", type=int, default=xb.dac_bits,
                   help=f"DAC bits (default {xb.dac_bits})")
    g.add_argument("--adc-bits", type=int, default=xb.adc_bits,
                   help=f"ADC bits (default {xb.adc_bits})")
    g.add_argument("--xbar-weight-bits", type=int, default=xb.weight_bits,
                   help="sign-magnitude weight bits on crossbars and SME "
                   f"(default {xb.weight_bits})")
    g.add_argument("--input-bits", type=int, default=xb.input_bits,
                   help=f"input bits on crossbars (default {xb.input_bits})")
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    g.add_argument("--plot", metavar="FILE.png", help="also plot them (PNG)")
    g.add_argument("-o", "--output", metavar="DIR",
                   help="instead: write compare.json, compare.txt and compare.png into DIR")
    g.add_argument("--force", action="store_true",
                   help="overwrite the --json / --plot files if they exist")


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

    @property
    def multipliers(self):
        """The multiplier budget: ``pes * lanes``."""
        return self.engine.total_lanes

    def to_json(self):
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


def settings(args, kind):
    """Check the flags of ``args`` for a workload of ``kind`` (``"model"`` or ``"eie"``)."""
    pes, lanes = DEFAULT_BUDGET[kind]
    density = _fraction(args.density, "--density", allow="eie")
    if density is None and kind != "eie":
        raise PermdealError("--density eie (the published densities) needs --eie-layers")
    cap = None if str(args.sme_cap).strip().lower() == "none" else args.sme_cap
    if cap is not None:
        try:
            cap = int(cap)
        except ValueError:
            raise PermdealError(f"--sme-cap must be an integer >= 1 or 'none', not "
                                f"{args.sme_cap!r}") from None
        integer(cap, "--sme-cap", 1, LIMITS["weight_bits"][2])
    xbar = {"rows": "--xbar-rows", "cols": "--xbar-cols", "cell_bits": "--cell-bits",
            "dac_bits": "--dac-bits", "adc_bits": "--adc-bits",
            "weight_bits": "--xbar-weight-bits", "input_bits": "--input-bits"}
    dest = {"rows": "xbar_rows", "cols": "xbar_cols", "weight_bits": "xbar_weight_bits"}
    for name, flag in xbar.items():
        _, lo, hi = LIMITS[name]
        integer(getattr(args, dest.get(name, name)), flag, lo, hi)
    return Settings(
        p=integer(args.p, "--p", 1), k=integer(args.k, "--k", 1), density=density,
        S=integer(args.S, "--S", 1, sd.MAX_S), E=integer(args.E, "--E", *sd.E_RANGE),
        b_bits=integer(args.b_bits, "--b-bits", *sd.B_BITS_RANGE), sme_cap=cap,
        sme_threshold=integer(args.sme_threshold, "--sme-threshold", 0),
        engine=pd_cycles.EngineConfig(
            integer(pes if args.pes is None else args.pes, "--pes", 1),
            integer(lanes if args.lanes is None else args.lanes, "--lanes", 1),
            integer(args.scan_width, "--scan-width", 1)),
        fifo_depth=integer(args.fifo_depth, "--fifo-depth", 1),
        xbar=CrossbarConfig(**{name: getattr(args, dest.get(name, name)) for name in xbar}),
        epochs=integer(args.epochs, "--epochs", 1),
        finetune_epochs=integer(args.finetune_epochs, "--finetune-epochs", 0),
        seed=integer(args.seed, "--seed", 0))


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


def _mlp(layers):
    """The dense :class:`MLP` of ``[(W, b), ...]``."""
    return MLP(tuple(PermDiag.from_dense(np.asarray(W, np.float64), 1) for W, _ in layers),
               tuple(np.asarray(b, np.float64) for _, b in layers))


def random_inputs(n, density, count, rng):
    """``count`` non-negative input vectors of ``n`` values with exactly
    ``round(density * n)`` non-zeros each (uniform in (0, 1], at random positions)."""
    nnz = eie.nonzero_count(density, n)
    X = np.zeros((count, n))
    for row in X:
        row[rng.choice(n, nnz, replace=False)] = 1.0 - rng.random(nnz)
    return X


def workload(args):
    """The :class:`Workload` the flags ask for (the digits MLP trained here by default)."""
    from permdeal.golden.model import load_float_model
    if args.model is not None and args.eie_layers is not None:
        raise PermdealError("give --model or --eie-layers, not both")
    seed = integer(args.seed, "--seed", 0)
    vectors = VECTORS if args.vectors is None else integer(args.vectors, "--vectors", 1)
    rng = np.random.default_rng(seed)
    on_digits = args.eie_layers is None and (args.model is None or args.data == "digits")
    if on_digits:
        for flag, value in (("--vectors", args.vectors), ("--input-density", args.input_density)):
            if value is not None:
                raise PermdealError(f"{flag} sets the random inputs, but the inputs here are the "
                                    "digits test images (random inputs come with --eie-layers, "
                                    "or --model without --data digits)")
    if args.eie_layers is not None:
        if args.data == "digits":
            raise PermdealError("--data digits does not apply to --eie-layers (random layers)")
        names = [t.strip() for t in args.eie_layers.split(",") if t.strip()]
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
            dens = (l.act_density if args.input_density is None
                    else _fraction(args.input_density, "--input-density"))
            nets.append(Net(_mlp([(W, np.zeros(m))]), [l.name],
                            random_inputs(n, dens, vectors, rng), l.weight_density))
        title = (f"EIE layers {', '.join(l.name for l in layers)}: random N(0, 1/n) weights "
                 f"(seed {seed}); {vectors} random input vector(s) per layer at "
                 + ("the layer's activation density" if args.input_density is None
                    else f"density {args.input_density}"))
        return Workload("eie", title, nets, None, [])
    if args.model is None:
        if args.data == "none":
            raise PermdealError("--data none needs --model (the digits MLP is trained on digits)")
        hidden = _int_list(args.hidden, "--hidden")
        data = load_digits_split(seed)
        sizes = [data[0].shape[1], *hidden, 10]
        epochs = integer(args.epochs, "--epochs", 1)
        model = train(init_mlp(sizes, seed=seed), data[0], data[1], epochs=epochs, seed=seed)
        title = (f"digits MLP {'-'.join(map(str, sizes))} (trained here, {epochs} epochs, seed "
                 f"{seed}); counts are means over the {len(data[2])} test images")
        names = [f"fc{i + 1}" for i in range(len(sizes) - 1)]
        return Workload("model", title, [Net(model, names, data[2])], data, [])
    layers = load_float_model(args.model)
    model = _mlp([(l.weight, l.bias) for l in layers])
    names = [l.name for l in layers]
    sizes = "-".join(map(str, model.sizes))
    if args.data == "digits":
        data = load_digits_split(seed)
        if model.sizes[0] != data[0].shape[1] or model.sizes[-1] != 10:
            raise PermdealError(f"--data digits needs a model of {data[0].shape[1]} inputs and 10 "
                                f"outputs; {args.model} is {sizes}")
        title = (f"{args.model} ({sizes}) on digits; counts are means over the {len(data[2])} "
                 "test images")
        return Workload("model", title, [Net(model, names, data[2])], data, [args.model])
    dens = 0.5 if args.input_density is None else _fraction(args.input_density,
                                                            "--input-density")
    title = (f"{args.model} ({sizes}), no data set; {vectors} random input vector(s) at density "
             f"{dens:g} (seed {seed})")
    return Workload("model", title,
                    [Net(model, names, random_inputs(model.sizes[0], dens, vectors, rng))],
                    None, [args.model])


def check_fit(wl, st):
    """Refuse block sizes that do not fit a layer (before any training)."""
    for net in wl.nets:
        for name, w in zip(net.names, net.model.weights):
            m, n = w.shape
            for flag, v in (("--p", st.p), ("--k", st.k)):
                check_block_fit(m, n, v, flag, f"layer {name} ({n} inputs x {m} outputs)")


class _flag:
    """Context manager: a :class:`PermdealError` inside is re-raised naming ``flag`` (and the
    layer)."""

    def __init__(self, flag, where=None):
        self.prefix = f"{flag}: " + (f"layer {where}: " if where else "")

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if isinstance(e, PermdealError) and not str(e).startswith(self.prefix):
            raise PermdealError(self.prefix + str(e)) from None
        return False


# -- the formats ----------------------------------------------------------------------------------

@dataclass
class Built:
    """One format on one net: per layer its object (as the golden model holds it), the float
    weights of the format's model (whose activations are counted) and its accuracies (dict, or
    None without data)."""

    layers: list
    weights: list
    biases: tuple
    accuracy: dict | None = None


def _acc(weights, biases, data):
    return accuracy(_mlp(list(zip(weights, biases))), data[2], data[3])


def build(fmt, net, data, st):
    """:class:`Built` of format ``fmt`` on ``net`` (fine-tuned on ``data`` where it can be)."""
    model, names = net.model, net.names
    dense = [W for _, W, _ in model.dense_weights()]
    ft = data is not None and st.finetune_epochs > 0
    fit = dict(epochs=st.finetune_epochs, seed=st.seed)
    if fmt == "dense":
        acc = {"float": accuracy(model, data[2], data[3])} if data else None
        return Built(dense, dense, model.biases, acc)
    if fmt == "permdiag":
        with _flag("--p"):
            proj = project(model, st.p)
        tuned = train(proj, data[0], data[1], **fit) if ft else proj
        acc = None
        if data:
            acc = {"projected": accuracy(proj, data[2], data[3]),
                   "float": accuracy(tuned, data[2], data[3]), "finetuned": ft}
        return Built(list(tuned.weights), [w.to_dense() for w in tuned.weights], tuned.biases, acc)
    if fmt == "eie":
        density = [net.eie_density if st.density is None else st.density] * len(dense)
        with _flag("--density"):
            pruned = [eie.prune(W, d) for W, d in zip(dense, density)]
        tuned = pruned
        if ft:
            # Deep Compression's retraining before weight sharing: the zero pattern kept.
            m = train(_mlp(list(zip(pruned, model.biases))), data[0], data[1],
                      grad_mask=[(W != 0)[..., None] for W in pruned], **fit)
            tuned = [W for _, W, _ in m.dense_weights()]
            biases = m.biases
        else:
            biases = model.biases
        mats = [eie.compress(W, d, n_pe=st.multipliers, random_state=st.seed)
                for W, d in zip(tuned, density)]
        floats = [e.to_float() for e in mats]
        acc = None
        if data:
            shared = [eie.compress(W, d, n_pe=st.multipliers, random_state=st.seed).to_float()
                      for W, d in zip(pruned, density)] if ft else floats
            acc = {"pruned_shared": _acc(shared, model.biases, data),
                   "float": _acc(floats, biases, data), "finetuned": ft,
                   "codebook_finetuned": False}
        return Built(mats, floats, biases, acc)
    if fmt == "circulant":
        with _flag("--k"):
            proj = circulant_mlp(model, st.k)
        tuned = train_circulant(proj, data[0], data[1], **fit) if ft else proj
        acc = None
        if data:
            acc = {"projected": circulant_accuracy(proj, data[2], data[3]),
                   "float": circulant_accuracy(tuned, data[2], data[3]), "finetuned": ft}
        return Built(list(tuned.layers), [w.to_dense() for w in tuned.layers], tuned.biases, acc)
    if fmt == "smartdeal":
        with _flag("--S/--E"):
            dec = smartdeal_mlp(model, st.S, st.E)
        tuned = finetune(dec, data[0], data[1], **fit) if ft else dec
        q_mlp, codes = quantized_mlp(tuned, st.b_bits)
        acc = None
        if data:
            acc = {"decomposed": accuracy(dec.to_mlp(), data[2], data[3]),
                   "float": accuracy(tuned.to_mlp(), data[2], data[3]),
                   "quantized_b": accuracy(q_mlp, data[2], data[3]), "finetuned": ft}
        return Built(list(zip(tuned.layers, codes)), [w.to_dense() for w in tuned.layers],
                     tuned.biases, acc)
    if fmt == "sme":
        x = st.xbar
        sm, layers = sme.sme_model(model, x.weight_bits, st.sme_cap, st.sme_threshold, x.rows,
                                   x.cols)
        acc = {"float": accuracy(sm, data[2], data[3]), "finetuned": False} if data else None
        return Built(layers, [W for _, W, _ in sm.dense_weights()], sm.biases, acc)
    raise PermdealError(f"unknown format {fmt!r}")


# -- per-layer figures ----------------------------------------------------------------------------

def fft_mults(k):
    """Real multiplies of an FFT (or inverse FFT) of ``k`` points: ``2 k ceil(log2 k)``."""
    return 2 * k * (k - 1).bit_length()


def pointwise_mults(k):
    """Real multiplies of the pointwise product of two real FFTs of ``k`` points: 4 per complex
    bin, 1 per real bin (bin 0, and bin ``k/2`` for even ``k``) of the ``floor(k/2) + 1``."""
    bins, real = k // 2 + 1, 1 + (k % 2 == 0 and k > 1)
    return 4 * (bins - real) + real


def _mean(values):
    return float(np.mean(values))


def _mapping(mp, cfg):
    """The crossbar figures of a :class:`golden.crossbar.Mapping`."""
    lossless = cfg.lossless_bits(min(mp.rows, cfg.rows))
    return {"crossbars": mp.crossbars, "crossbar_reads": mp.cycles,
            "used_cells": mp.used_cells, "total_cells": mp.total_cells,
            "adc_lossless_bits": lossless, "adc_exact": cfg.adc_bits >= lossless,
            "mapping": mp.to_json()}


def dense_figures(W, X, st, in_block=None):
    """Dense 16-bit layer ``W`` on inputs ``X`` (batch x n): :data:`RULES` ``["dense"]``."""
    m, n = W.shape
    nnz = np.count_nonzero(X, axis=1)
    cyc = [pd_cycles.layer_cycles(x, m, 1, st.engine, in_block).total for x in X]
    return {"storage_bits": m * n * WEIGHT_BITS, "index_bits": 0,
            "multiplies": _mean(m * nnz), "multiplies_no_skip": m * n, "cycles": _mean(cyc),
            **_mapping(dense_mapping((m, n), st.xbar), st.xbar)}


def permdiag_figures(pd, X, st, in_block=None):
    """PD layer ``pd`` (a :class:`PermDiag`) on inputs ``X``: :data:`RULES` ``["permdiag"]``."""
    mb = pd.blocks[0]
    nnz = np.count_nonzero(X, axis=1)
    cyc = [pd_cycles.layer_cycles(x, mb, pd.p, st.engine, in_block).total for x in X]
    return {"storage_bits": pd.n_weights * WEIGHT_BITS + pd.index_bits_total,
            "index_bits": pd.index_bits_total, "multiplies": _mean(mb * nnz),
            "cycles": _mean(cyc), "block_rows": mb, "slots": st.engine.slots(mb),
            "crossbars_dense_mode": permdiag_mapping(pd.shape, pd.p, st.xbar, "dense").crossbars,
            **_mapping(permdiag_mapping(pd.shape, pd.p, st.xbar), st.xbar)}


def eie_figures(em, X, st):
    """EIE layer ``em`` (an :class:`golden.eie.EieMatrix`) on inputs ``X``: :data:`RULES`
    ``["eie"]``."""
    c = em.csc
    per_col = c.slice_entries.sum(axis=0)
    pad_col = c.slice_padding.sum(axis=0)
    nz = X != 0
    runs = [eie_cycles.layer_cycles(c, x, st.fifo_depth) for x in X]
    s = em.storage()
    return {"storage_bits": s["total_bits"], "index_bits": s["index_overhead_bits"],
            "multiplies": _mean(nz @ per_col), "padding_multiplies": _mean(nz @ pad_col),
            "cycles": _mean([r.actual for r in runs]),
            "ideal_cycles": _mean([r.ideal for r in runs]),
            "imbalance": _mean([r.imbalance for r in runs]), "n_pe": c.n_pe,
            "nonzero_weights": int(c.entries - c.padding), "storage": s}


def circulant_figures(bc, X, st):
    """Block-circulant layer ``bc`` on inputs ``X``: :data:`RULES` ``["circulant"]``."""
    (m, n), (mb, nb), k = bc.shape, bc.blocks, bc.k
    xb = np.pad(X != 0, ((0, 0), (0, nb * k - n))).reshape(len(X), nb, k)
    live = xb.any(axis=2).sum(axis=1)  # input blocks with a non-zero
    mults = live * (fft_mults(k) + mb * pointwise_mults(k)) + (live > 0) * mb * fft_mults(k)
    return {"storage_bits": bc.storage_bits(WEIGHT_BITS), "index_bits": 0,
            "multiplies": _mean(mults), "cycles": _mean(-(-mults // st.multipliers)),
            "live_input_blocks": _mean(live), "fft_mults": fft_mults(k),
            "pointwise_mults": pointwise_mults(k),
            **_mapping(circulant_mapping((m, n), k, st.xbar), st.xbar)}


def smartdeal_figures(dec, enc, X, st):
    """SmartDeal layer (its :class:`golden.smartdeal.Decomposition` ``dec`` and quantized codes
    ``enc``) on inputs ``X``: :data:`RULES` ``["smartdeal"]``."""
    m, n = dec.shape
    S = dec.S
    unit = types.SimpleNamespace(codes=enc)  # what smartdeal_cycles reads of a layer
    active, _ = sd_cycles.slot_plan(unit)     # (m, r) chunks the unit takes
    r = active.shape[1]
    width = np.minimum(S, n - S * np.arange(r))          # weights inside the matrix per chunk
    xs = np.pad(X != 0, ((0, 0), (0, r * S - n))).reshape(len(X), r, S).sum(axis=2)
    lc = sd_cycles.layer_cycles(unit)
    units = max(1, st.multipliers // S)
    nz_ce = int(np.count_nonzero(dec.ce))
    bits = sd.storage_bits(dec, st.b_bits, dense_bits=WEIGHT_BITS)
    return {"storage_bits": bits["smartdeal_fixed"], "index_bits": int(dec.ce.size),
            "multiplies": int((active * width).sum()),
            "multiplies_zero_skip": _mean(xs @ active.sum(axis=0)),
            "shift_add_terms": S * nz_ce, "ce_nonzeros": nz_ce,
            "ce_density": nz_ce / dec.ce.size,
            "cycles": float(-(-lc.compute // units)), "units": units,
            "unit_cycles": lc.compute, "storage": bits}


def sme_figures(layer, shape, st):
    """SME layer (a :class:`golden.sme.SMELayer` of an ``m x n`` matrix): :data:`RULES`
    ``["sme"]``."""
    m, n = shape
    R, C = st.xbar.rows, st.xbar.cols
    # Squeeze-out zeroes the bits of every removed tile and keeps >= 1 bit in every kept one, so
    # the kept tiles are those of the final codes that hold a set bit.
    kept = sme.tile_counts(layer.codes, R, C) > 0
    rows_in = np.minimum(R, n - R * np.arange(kept.shape[2]))
    cols_in = np.minimum(C, m - C * np.arange(kept.shape[3]))
    cells = int((kept * np.multiply.outer(rows_in, cols_in)).sum())
    cfg = dataclasses.replace(st.xbar, cell_bits=1)
    lossless = lossless_adc_bits(min(n, R), 1, cfg.dac_bits)
    return {"storage_bits": cells, "index_bits": layer.crossbars_total, "multiplies": None,
            "cycles": None, "crossbars": layer.crossbars_squeezed,
            "crossbar_reads": cfg.input_slices, "used_cells": cells,
            "total_cells": layer.crossbars_squeezed * R * C,
            "crossbars_total": layer.crossbars_total,
            "crossbars_quantized": layer.crossbars_quantized,
            "crossbars_capped": layer.crossbars_capped, "bits_dropped": layer.bits_dropped,
            "adc_lossless_bits": lossless, "adc_exact": st.xbar.adc_bits >= lossless}


def layer_figures(fmt, obj, X, st, in_block=None):
    """The figures of one layer of format ``fmt`` (``obj`` as :func:`build` holds it)."""
    if fmt == "dense":
        return dense_figures(obj, X, st, in_block)
    if fmt == "permdiag":
        return permdiag_figures(obj, X, st, in_block)
    if fmt == "eie":
        return eie_figures(obj, X, st)
    if fmt == "circulant":
        return circulant_figures(obj, X, st)
    if fmt == "smartdeal":
        return smartdeal_figures(*obj, X, st)
    return sme_figures(obj, obj.codes.mag.shape, st)


def _in_block(fmt, obj):
    """The block size in which a layer of ``fmt`` writes its outputs (the next PD-engine layer's
    input layout): ``p`` for PD, 1 for dense."""
    return obj.p if fmt == "permdiag" else 1


SUM_KEYS = ("storage_bits", "index_bits", "multiplies", "cycles", "crossbars", "crossbar_reads",
            "used_cells", "total_cells")


def _total(layers):
    """Sums over layers of :data:`SUM_KEYS` (None where a layer has none), and the crossbar
    utilization of the sums."""
    tot = {}
    for key in SUM_KEYS:
        vals = [l.get(key) for l in layers]
        tot[key] = None if any(v is None for v in vals) else sum(vals)
    tot["crossbar_utilization"] = (tot["used_cells"] / tot["total_cells"]
                                   if tot["total_cells"] else None)
    return tot


def _setting(fmt, st):
    return {"dense": f"{WEIGHT_BITS}-bit", "permdiag": f"p={st.p}",
            "eie": ("published density" if st.density is None else f"{100 * st.density:g}%")
                   + f", {EIE['codebook_bits']}-bit codebook",
            "circulant": f"k={st.k}", "smartdeal": f"S={st.S} E={st.E} B {st.b_bits}-bit",
            "sme": f"{st.xbar.weight_bits}-bit, cap {st.sme_cap or 'none'}, "
                   f"squeeze <{st.sme_threshold}"}[fmt]


def compare(wl, st, log=None):
    """Every format on every net of the :class:`Workload` ``wl``: the results as a dict (the
    JSON). ``log(text)`` hears of each format's progress."""
    t0 = time.perf_counter()
    check_fit(wl, st)
    out = []
    for fmt in FORMATS:
        t = time.perf_counter()
        layers, accs = [], []
        for net in wl.nets:
            b = build(fmt, net, wl.data, st)
            acts = _forward(b.weights, b.biases, net.X)
            in_block = None
            for name, w, obj, X in zip(net.names, net.model.weights, b.layers, acts):
                fig = layer_figures(fmt, obj, X, st, in_block)
                m, n = w.shape
                layers.append({"layer": name, "shape": [int(m), int(n)],
                               "input_density": float(np.count_nonzero(X) / X.size), **fig})
                in_block = _in_block(fmt, obj)
            accs.append(b.accuracy)
        entry = {"format": fmt, "label": LABELS[fmt], "setting": _setting(fmt, st),
                 "rule": RULES[fmt], "layers": layers, "total": _total(layers),
                 "accuracy": accs[0] if len(accs) == 1 else None,
                 "seconds": round(time.perf_counter() - t, 2)}
        out.append(entry)
        if log:
            log(f"{LABELS[fmt]}: {entry['seconds']:.1f} s")
    return {"workload": {"kind": wl.kind, "title": wl.title,
                         "layers": [{"name": nm, "shape": list(w.shape)} for net in wl.nets
                                    for nm, w in zip(net.names, net.model.weights)]},
            "settings": st.to_json(), "crossbar_rule": CROSSBAR_RULE, "formats": out,
            "seconds": round(time.perf_counter() - t0, 1)}


# -- text and plot --------------------------------------------------------------------------------

def _n(v):
    return "-" if v is None else f"{v:,.0f}"


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def text(res):
    """The printed report: the per-layer table (when there are several layers), the totals, the
    counting rules."""
    st = res["settings"]
    e, x = st["engine"], st["xbar"]
    lines = [f"permdeal compare: {res['workload']['title']}",
             f"budget: {e['n_pe']} PE x {e['lanes']} lanes = {st['multipliers']} multipliers "
             f"(EIE: {st['multipliers']} PEs, FIFO depth {st['fifo_depth']}); crossbars "
             f"{x['rows']}x{x['cols']}, {x['cell_bits']}-bit cells, {x['dac_bits']}-bit DAC, "
             f"{x['adc_bits']}-bit ADC, {x['weight_bits']}-bit weights, {x['input_bits']}-bit "
             "inputs"]
    fmts = res["formats"]
    n_layers = len(fmts[0]["layers"])
    if n_layers > 1:
        rows = []
        for i in range(n_layers):
            for f in fmts:
                l = f["layers"][i]
                rows.append([l["layer"], f"{l['shape'][1]} x {l['shape'][0]}", f["label"],
                             _pct(l["input_density"]), _n(l["storage_bits"]),
                             _n(l["index_bits"]), _n(l["multiplies"]), _n(l["cycles"]),
                             _n(l.get("crossbars"))])
        lines += ["", "per layer", table(["layer", "in x out", "format", "x density",
                                          "storage bits", "index bits", "multiplies", "cycles",
                                          "crossbars"], rows, "lllrrrrrr")]
    dense_bits = fmts[0]["total"]["storage_bits"]
    rows = []
    has_acc = any(f["accuracy"] for f in fmts)
    for f in fmts:
        t = f["total"]
        row = [f["label"], f["setting"], _n(t["storage_bits"]),
               f"{dense_bits / t['storage_bits']:.2f}x", _n(t["index_bits"]),
               _n(t["multiplies"]), _n(t["cycles"]), _n(t["crossbars"]),
               _pct(t["crossbar_utilization"]), _n(t["crossbar_reads"])]
        if has_acc:
            a = f["accuracy"]
            row.append("-" if not a else _pct(a["float"]) + (
                "" if a.get("finetuned", True) else " (not fine-tuned)"))
        rows.append(row)
    head = ["format", "setting", "storage bits", "vs dense", "index bits", "multiplies",
            "cycles", "crossbars", "xbar util", "xbar reads"] + (["accuracy"] if has_acc else [])
    lines += ["", f"total over {n_layers} layer(s), per inference",
              table(head, rows, "ll" + "r" * (len(head) - 2))]
    if has_acc:
        lines.append(_accuracy_note(fmts))
    lines += ["", "how each figure is counted:"]
    lines += [f"- {f['label']}: {f['rule']}" for f in fmts]
    lines += [f"- {res['crossbar_rule']}", "", f"({res['seconds']:.1f} s)"]
    return "\n".join(lines) + "\n"


def _accuracy_note(fmts):
    """One line on what each accuracy is."""
    a = {f["format"]: f["accuracy"] for f in fmts}
    parts = [f"dense {_pct(a['dense']['float'])}"]
    for fmt, before in (("permdiag", "projected"), ("circulant", "projected"),
                        ("smartdeal", "decomposed"), ("eie", "pruned_shared")):
        parts.append(f"{LABELS[fmt]} {before.replace('_', '+')} {_pct(a[fmt][before])} -> "
                     f"fine-tuned {_pct(a[fmt]['float'])}")
    parts[-1] += " (pruned weights retrained with the mask fixed, codebook not fine-tuned)"
    parts.append(f"SmartDeal fine-tuned with {fmts[4]['setting'].split()[-1]} B "
                 f"{_pct(a['smartdeal']['quantized_b'])}")
    parts.append(f"SME quantized, capped and squeezed, not fine-tuned {_pct(a['sme']['float'])}")
    if not a["permdiag"]["finetuned"]:
        parts.append("--finetune-epochs 0: nothing fine-tuned")
    return "accuracy (float, test set): " + "; ".join(parts)


def plot(res):
    """PNG bytes: storage against accuracy (or storage alone), multiplies and cycles, crossbars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fmts = res["formats"]
    labels = [f["label"] for f in fmts]
    tot = [f["total"] for f in fmts]
    with matplotlib.rc_context({"font.size": 9}):
        fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(15, 4.4))
        if all(f["accuracy"] for f in fmts):
            for i, (f, t) in enumerate(zip(fmts, tot)):
                a0.scatter(t["storage_bits"], 100 * f["accuracy"]["float"], s=40)
                a0.annotate(f["label"], (t["storage_bits"], 100 * f["accuracy"]["float"]),
                            textcoords="offset points", xytext=(5, 4 if i % 2 else -11))
            a0.set_xscale("log")
            a0.set_xlabel("storage (bits, log)")
            a0.set_ylabel("test accuracy (%)")
            a0.set_title("storage against accuracy")
        else:
            a0.bar(labels, [t["storage_bits"] for t in tot], color="tab:blue")
            a0.set_yscale("log")
            a0.set_ylabel("storage (bits, log)")
            a0.set_title("storage")
            a0.tick_params(axis="x", rotation=30)
        xs = np.arange(len(fmts))
        for off, key, color in ((-0.2, "multiplies", "tab:orange"), (0.2, "cycles", "tab:green")):
            a1.bar(xs + off, [t[key] or 0 for t in tot], 0.4, label=key, color=color)
        a1.set_xticks(xs, labels, rotation=30)
        a1.set_yscale("log")
        a1.set_title(f"per inference, {res['settings']['multipliers']} multipliers")
        a1.legend(loc="upper center")
        xb = [(f["label"], f["total"]["crossbars"]) for f in fmts
              if f["total"]["crossbars"] is not None]
        a2.bar([l for l, _ in xb], [v for _, v in xb], color="tab:purple")
        x = res["settings"]["xbar"]
        a2.set_title(f"crossbars ({x['rows']}x{x['cols']}, {x['cell_bits']}-bit cells)")
        a2.tick_params(axis="x", rotation=30)
        for ax in (a0, a1, a2):
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
    return buf.getvalue()


# -- the command ----------------------------------------------------------------------------------

def run(args):
    """``permdeal compare``: compute, print, write the outputs; returns the exit code."""
    if args.output is not None and (args.json or args.plot):
        raise PermdealError("give -o DIR or --json/--plot, not both")
    kind = "eie" if args.eie_layers is not None else "model"
    st = settings(args, kind)
    inputs = [args.model] if args.model else []
    files = [f for f in (args.json, args.plot) if f]
    if len(files) == 2 and Path(files[0]).resolve() == Path(files[1]).resolve():
        raise PermdealError("--json and --plot name the same file")
    for f in files:
        atomic.check_new_file(f, args.force, inputs)

    def compute():
        t0 = time.perf_counter()
        wl = workload(args)
        res = compare(wl, st)
        res["seconds"] = round(time.perf_counter() - t0, 1)  # training the digits MLP included
        return res, text(res)

    if args.output is not None:
        with atomic.output_dir(args.output, inputs=inputs) as tmp:
            res, txt = compute()
            atomic.write_text(tmp / OUTPUT_FILES["json"], json.dumps(res, indent=1) + "\n")
            atomic.write_text(tmp / OUTPUT_FILES["text"], txt)
            atomic.write_bytes(tmp / OUTPUT_FILES["plot"], plot(res))
        print(txt, end="")
        print(f"wrote {args.output}/ ({', '.join(OUTPUT_FILES.values())})")
        return 0
    res, txt = compute()
    print(txt, end="")
    if args.json:
        atomic.write_text(args.json, json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        atomic.write_bytes(args.plot, plot(res))
        print(f"wrote {args.plot}")
    return 0
