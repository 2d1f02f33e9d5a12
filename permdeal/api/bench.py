"""``permdeal bench``: the benchmark of record (issue 6), printed as tables and written as JSON.

Four parts (``--parts``, default all):

- ``eie``: EIE's nine benchmark layers (:data:`golden.workloads.EIE_LAYERS`) on the paper's
  design (:data:`synth.memory.PAPER`: 32 PE x 8 lanes at 1200 MHz), through the cycle model
  (:func:`golden.cycles.layer_cycles`). Each layer is compressed to permuted-diagonal form at the
  block size whose density ``1/p`` is nearest EIE's weight density, ``p = round(1 / density)``
  (:func:`block_size`). Its cycles are the mean (and spread) over ``draws`` random activation
  vectors at the layer's activation density; the weights are not drawn, because PD timing does
  not depend on them: every non-zero input costs ``B = ceil(M' / NL)`` cycles whatever the
  weights and permutations are (docs/design.md 4.2). Reported beside EIE's published times: our time
  at our clock and at EIE's (800 MHz), the speed-up at each clock, lane utilization against
  EIE's ideal/actual, the weight storage of both, and EIE's own cycle model
  (:mod:`golden.eie_cycles`) on a random layer of the same shape and densities.
- ``rtl``: the validation of those figures by RTL simulation: every layer scaled down (both sides
  divided by ``scale``, rounded up; ``p`` and the densities kept), compressed from a random float
  layer, generated for an engine with ``1/scale`` of the paper's lanes (:func:`scaled_engine`, so
  that ``B`` stays the full layer's) and simulated on a few inputs; the RTL's cycles must equal
  the cycle model's and its outputs the golden model's, input by input.
- ``flow``: the RTL flow's own figures (:func:`.engine_bench.run`): generation time, simulator
  build time, simulated cycles per second, on one random layer.
- ``golden``: the golden model's speed (:func:`golden.bench.golden_bench`): projection and matvec
  timings of a large layer (default EIE's Alex-6) for several block sizes.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from permdeal import atomic, checks, limits
from permdeal.executor import Executor, Task, executor, using
from permdeal.checks import integer
from permdeal.errors import PermdealError, ToolMissing
from permdeal.golden.bench import DEFAULT_LAYER
from permdeal.golden.cycles import (DEFAULT_SCAN_WIDTH, EngineConfig, auto_groups, group_choices,
                                    layer_cycles)
from permdeal.golden.permdiag import PermDiag, check_block_fit
from permdeal.golden.workloads import EIE, EIE_LAYERS, EieLayer, eie_layer
from permdeal.synth.memory import PAPER

from permdeal.api.settings import GEN_SETTINGS, parse_shapes

from . import bench_efficiency as be
from . import engine_bench
from .bench_report import bench_table, eie_tables, power_tables, rtl_exact, rtl_tables

if TYPE_CHECKING:
    from tqdm import tqdm

PARTS = ("eie", "rtl", "power", "flow", "golden")
SIMULATORS = ("verilator", "icarus")
#: The PermDNN paper's throughput over EIE "on different workloads" (docs/references.md [paper]).
PAPER_SPEEDUP_VS_EIE = (3.3, 4.8)
#: Which EIE layer's outputs are a layer's inputs on the engine (fc6 -> fc7 -> fc8 of AlexNet
#: and VGG-16); the others take their inputs from outside the engine (convolutions, the LSTM's
#: gates), laid out as the network input.
PRODUCERS = {"Alex-7": "Alex-6", "Alex-8": "Alex-7", "VGG-7": "VGG-6", "VGG-8": "VGG-7"}
#: Defaults of the command's flags.
DEFAULTS = {"parts": ",".join(PARTS), "layers": None, "draws": 10, "eie_draws": 1, "seed": 0,
            "scale": 16, "rtl_pes": None, "rtl_lanes": None, "inputs": 3, "sim": "verilator",
            "no_rtl": False, "workdir": "build/bench", "flow_pes": [8], "flow_lanes": 8,
            "flow_shape": "1024x1024", "flow_p": 8, "flow_density": 0.35, "flow_batch": 4,
            "m": DEFAULT_LAYER.n_out, "n": DEFAULT_LAYER.n_in, "p": [1, 2, 4, 8, 16],
            "repeat": 3, "json": None, "force": False, "jobs": 1, "dask": None,
            "groups": "auto", "scan_width": DEFAULT_SCAN_WIDTH}


# -- the design points ----------------------------------------------------------------------------

def paper_engine() -> EngineConfig:
    """The paper's engine (:data:`PAPER`): 32 PE x 8 lanes, default scan width."""
    return EngineConfig(PAPER["n_pe"], PAPER["lanes"])


def block_size(layer: EieLayer) -> int:
    """``p = round(1 / weight_density)``, at least 1: the PD block size whose density ``1/p``
    is nearest EIE's density of the layer (11, 11, 4, 25, 25, 4, 10, 9, 10 for the nine)."""
    return max(1, round(1 / layer.weight_density))


def scaled_shape(layer: EieLayer, scale: int) -> tuple[int, int]:
    """``(m, n)`` of the layer with both sides divided by ``scale``, rounded up."""
    return -(-layer.n_out // scale), -(-layer.n_in // scale)


def scaled_engine(scale: int) -> EngineConfig:
    """The paper's engine with ``1/scale`` of its lanes: ``round(256 / scale)`` lanes (at
    least 1) as PEs of the paper's 8 lanes (one PE of fewer once under 8). A layer scaled by
    the same factor keeps its ``B`` and its lane occupancy ``M'/(NL*B)`` (2 PE x 8 for 16)."""
    total = max(1, round(PAPER["n_pe"] * PAPER["lanes"] / scale))
    lanes = min(PAPER["lanes"], total)
    return EngineConfig(max(1, total // lanes), lanes)


def layer_seed(seed: int, layer: EieLayer) -> int:
    """A seed per (bench seed, layer) so that a layer's draws do not depend on which layers
    run: the layer's index in :data:`EIE_LAYERS` mixed into ``seed`` (numpy SeedSequence)."""
    return int(np.random.SeedSequence([seed, EIE_LAYERS.index(layer)]).generate_state(1)[0])


def activation_draws(layer: EieLayer, draws: int, seed: int) -> np.ndarray:
    """``draws`` activation vectors (``draws x n_in``, 0/1) with every word non-zero with the
    layer's activation density, independently; only zero/non-zero matters to the cycle model."""
    rng = np.random.default_rng(layer_seed(seed, layer))
    return (rng.random((draws, layer.n_in)) < layer.act_density).astype(np.int8)


def producer_block(layer: EieLayer, cfg: EngineConfig) -> int:
    """The block size of the layer whose outputs are ``layer``'s inputs (:data:`PRODUCERS`), or
    for inputs laid out as the network input ``cfg``'s (``D``, or ``p`` with lane groups)."""
    prev = PRODUCERS.get(layer.name)
    return (cfg.in_block(block_size(layer), None) if prev is None
            else block_size(eie_layer(prev)))


# -- weight storage -------------------------------------------------------------------------------

def pd_storage(m: int, n: int, p: int, weight_bits: int) -> dict[str, int]:
    """Bits of an ``m x n`` PD layer at block size ``p``: ``M' N' p`` stored weights of
    ``weight_bits`` (the zero padding included, as the ROMs hold it) and ``ceil(log2 p)`` index
    bits per block (:class:`PermDiag`). The storage does not depend on the weights."""
    mb, nb = -(-m // p), -(-n // p)
    pd = PermDiag((m, n), p, np.zeros((mb, nb), np.int64), np.zeros((mb, nb, p), np.int8))
    weights = int(pd.q.size)
    return {"weights": weights, "weight_bits": weights * weight_bits,
            "index_bits": pd.index_bits_total,
            "total_bits": weights * weight_bits + pd.index_bits_total}


def eie_storage(layer: EieLayer, seed: int) -> dict[str, int]:
    """EIE's storage of a random layer of ``layer``'s shape and weight density (uniform random
    positions, as :func:`golden.eie_cycles.eie_layer_run` draws them): interleaved CSC on
    EIE's 64 PEs, 4-bit codebook index + 4-bit relative row index per entry (padding included),
    column pointers and the codebook (:meth:`golden.eie.EieMatrix.storage`). The codebook's
    values do not change the bit count, so none is fitted."""
    from permdeal.golden.formats import Fixed
    eie = importlib.import_module("permdeal.golden.eie")  # ImportError where it is missing
    rng = np.random.default_rng(seed)
    m, n = layer.shape
    flat = rng.choice(m * n, eie.nonzero_count(layer.weight_density, m * n), replace=False)
    csc = eie.encode((m, n), flat // n, flat % n, np.ones(flat.size, np.int64), EIE["n_pe"],
                     EIE["index_bits"], EIE["codebook_bits"])
    book = eie.Codebook(np.zeros(1 << EIE["codebook_bits"], np.int64),
                        Fixed(EIE["weight_bits"], 0), EIE["codebook_bits"])
    return eie.EieMatrix(csc, book).storage()


def eie_model(layer: EieLayer, seed: int) -> dict[str, Any] | None:
    """EIE's own cycle model (:func:`golden.eie_cycles.eie_layer_run`) on a random layer of the
    same shape and densities: its ideal and actual cycles and times, or ``None`` where
    ``golden/eie_cycles.py`` is missing."""
    try:
        eie_cycles = importlib.import_module("permdeal.golden.eie_cycles")
    except ImportError:
        return None
    run = eie_cycles.eie_layer_run(layer, seed=seed)
    c = run.cycles
    return {"seed": run.seed, "ideal_cycles": c.ideal, "actual_cycles": c.actual,
            "ideal_us": run.ideal_us, "actual_us": run.actual_us,
            "ideal_over_actual": c.ideal / c.actual if c.actual else None,
            "padding_share": c.padding_share}


# -- part 1: the EIE comparison -------------------------------------------------------------------

def layer_groups(layer: EieLayer, cfg: EngineConfig, x: np.ndarray,
                 groups: int | str = "auto", shape: tuple[int, int] | None = None) -> EngineConfig:
    """``cfg`` with the lane groups of ``layer`` (``groups``; ``auto``:
    :func:`golden.cycles.auto_groups` on the first :data:`AUTO_DRAWS` activation draws ``x``,
    as ``permdeal gen --groups auto`` chooses on inputs of the layer's density; a number: the
    most it takes), at its own shape or ``shape`` (``(m, n)``, the RTL part's scaled one)."""
    p = block_size(layer)
    m, n = layer.shape if shape is None else shape
    prev = PRODUCERS.get(layer.name)
    producer = None if prev is None else block_size(eie_layer(prev))
    if groups == "auto":
        groups = auto_groups([(n, -(-m // p), p)], cfg, [[xi] for xi in x[:AUTO_DRAWS]],
                             producer=producer)
    else:
        # a number is the most the layer takes: the largest count up to it that the engine's
        # PEs and the layer's blocks allow (a layer fed in other blocks than its p takes 1)
        for k in sorted((k for k in group_choices(cfg) if k <= groups), reverse=True):
            try:
                replace(cfg, groups=k).in_block(p, producer)
            except PermdealError:
                continue
            if -(-n // p) >= k:
                groups = k
                break
    return replace(cfg, groups=groups)


#: Activation draws of a layer that ``--groups auto`` weighs.
AUTO_DRAWS = 3


def eie_layer_figures(layer: EieLayer, cfg: EngineConfig, x: np.ndarray,
                      clock_mhz: float = PAPER["clock_mhz"]) -> dict[str, Any]:
    """Our figures for one EIE layer on engine ``cfg`` (its lane groups included, see
    :func:`layer_groups`) at ``clock_mhz`` from the activation draws ``x`` (``draws x n_in``),
    beside EIE's published ones.

    Cycles are :func:`golden.cycles.layer_cycles` of the layer at :func:`block_size` with its
    inputs laid out by :func:`producer_block`: the layer's own compute, from its start to the
    next layer's (activations already in the banks, as EIE's figures count them).
    """
    p = block_size(layer)
    m, n = layer.shape
    mb = -(-m // p)
    in_block = producer_block(layer, cfg)
    runs = [layer_cycles(xi, mb, p, cfg, in_block) for xi in x]
    cyc = np.array([r.total for r in runs], dtype=np.float64)
    mean = float(cyc.mean())
    ours_us, ours_us_eie_clock = mean / clock_mhz, mean / EIE["clock_mhz"]
    return {
        "name": layer.name, "in": n, "out": m, "p": p, "weight_density": 1 / p,
        "eie_weight_density": layer.weight_density, "act_density": layer.act_density,
        "input_block": in_block, "input_from": PRODUCERS.get(layer.name, "network input"),
        "draws": len(runs), "nnz_mean": float(np.mean([r.nnz for r in runs])),
        "block_rows": mb, "slots": runs[0].slots, "groups": cfg.groups,
        "static_bound": mb / (cfg.group_lanes * runs[0].slots),
        "cycles": [int(c) for c in cyc], "cycles_mean": mean, "cycles_std": float(cyc.std()),
        "cycles_min": int(cyc.min()), "cycles_max": int(cyc.max()),
        "ideal_mean": float(np.mean([r.ideal for r in runs])),
        "ideal_over_actual": float(np.mean([r.ideal / r.total for r in runs])),
        "utilization": float(np.mean([r.utilization for r in runs])),
        "us": ours_us, "us_at_eie_clock": ours_us_eie_clock,
        "eie_ideal_us": layer.ideal_us, "eie_actual_us": layer.actual_us,
        "eie_ideal_over_actual": layer.ideal_us / layer.actual_us,
        "speedup": layer.actual_us / ours_us,
        "speedup_at_eie_clock": layer.actual_us / ours_us_eie_clock,
        # at equal clock and equal multipliers: EIE has one a PE
        "speedup_per_multiplier": (layer.actual_us / ours_us_eie_clock * EIE["n_pe"]
                                   / cfg.total_lanes),
    }


def geomean(values: Sequence[float]) -> float:
    """The geometric mean of positive ``values``."""
    return float(math.exp(np.mean(np.log(values))))


def eie_comparison(layers: Sequence[EieLayer], draws: int, seed: int, eie_draws: int = 1,
                   bar: tqdm | None = None, groups: int | str = "auto",
                   scan_width: int = DEFAULT_SCAN_WIDTH) -> dict[str, Any]:
    """Part ``eie``: :func:`eie_layer_figures` for every layer on the paper's engine, with the
    storage of both and EIE's own cycle model (``eie_draws`` random layers each, 0 for none);
    returns the part's dict. ``bar`` (a tqdm bar) shows the progress; ``groups``: the lane groups
    of every layer's engine (:func:`layer_groups`), ``scan_width`` its detectors' width."""
    cfg = replace(paper_engine(), scan_width=scan_width)
    rows = []
    for layer in layers:
        if bar is not None:
            bar.set_postfix_str(layer.name)
        x = activation_draws(layer, draws, seed)
        row = eie_layer_figures(layer, layer_groups(layer, cfg, x, groups), x)
        row["storage_bits"] = pd_storage(row["out"], row["in"], row["p"],
                                         engine_bench.SPEC.weight.bits)
        s = layer_seed(seed, layer)
        try:
            row["eie_storage_bits"] = eie_storage(layer, s)
        except ImportError:
            row["eie_storage_bits"] = None
        models = [eie_model(layer, s + i) for i in range(eie_draws)]
        row["eie_model"] = (None if not models or models[0] is None else
                            {"draws": eie_draws, "runs": models,
                             "ideal_over_actual": float(np.mean(
                                 [r["ideal_over_actual"] for r in models])),
                             "actual_us": float(np.mean([r["actual_us"] for r in models]))})
        rows.append(row)
        if bar is not None:
            bar.update(1)
    return {
        "design": {**cfg.to_json(), "groups": groups, "clock_mhz": PAPER["clock_mhz"],
                   "source": PAPER["source"]},
        "eie": EIE, "block_size_rule": "p = round(1 / EIE weight density); PD density 1/p",
        "draws": draws, "seed": seed, "layers": rows,
        "geomean_speedup": geomean([r["speedup"] for r in rows]),
        "geomean_speedup_at_eie_clock": geomean([r["speedup_at_eie_clock"] for r in rows]),
        "geomean_speedup_per_multiplier": geomean([r["speedup_per_multiplier"] for r in rows]),
        "paper_claim": list(PAPER_SPEEDUP_VS_EIE),
    }


def rtl_layer(workdir: Path, layer: EieLayer, scale: int, cfg: EngineConfig,
              sims: Sequence[str], inputs: int, seed: int,
              groups: int | str = "auto") -> dict[str, Any]:
    """One layer of part ``rtl`` (a task of the executor), designs and results in
    ``workdir``; the engine ``cfg`` with the layer's lane groups (:func:`layer_groups` at the
    scaled shape)."""
    p = block_size(layer)
    m, n = scaled_shape(layer, scale)
    s = layer_seed(seed, layer)
    model = engine_bench.random_layer_model(m, n, p, s)
    x = engine_bench.random_inputs(model, inputs, layer.act_density, s)
    cfg = layer_groups(layer, cfg, x, groups, shape=(m, n))
    fig = engine_bench.figures_task(workdir, model, x, cfg, sims, seed, label=layer.name)
    mb = -(-m // p)
    return {"name": layer.name, "out": m, "in": n, "p": p, "seed": s,
            "inputs": inputs, "nnz": [int(v) for v in np.count_nonzero(x, axis=1)],
            # (the full layer's B on the paper's engine with its own lane groups, as part eie)
            "slots_full": layer_groups(layer, paper_engine(),
                                       activation_draws(layer, AUTO_DRAWS, seed),
                                       groups).slots(-(-layer.n_out // p)),
            "slots": cfg.slots(mb),
            "groups": cfg.groups,
            "layer_cycles": [layer_cycles(xi, mb, p, cfg).total for xi in x], **fig}


def rtl_validation(layers: Sequence[EieLayer], scale: int, cfg: EngineConfig,
                   sims: Sequence[str], inputs: int, workdir: str | Path, seed: int,
                   executor: Executor | None = None,
                   groups: int | str = "auto") -> list[dict[str, Any]]:
    """Part ``rtl``: every layer scaled by ``scale`` (:func:`scaled_shape`, same ``p`` and
    densities), compressed from a random float layer, generated for ``cfg`` and simulated on
    ``inputs`` random inputs on each of ``sims`` (:func:`.engine_bench.engine_figures`), one
    layer a task of ``executor``. Returns one row per layer with the RTL's and the cycle model's
    cycles per input."""
    tasks = [Task(rtl_layer, (layer, scale, cfg, list(sims), inputs, seed, groups), layer.name,
                  layer.name) for layer in layers]
    with using(executor) as ex:
        return ex.run(tasks, workdir, desc="RTL validation")


def parse_parts(text: str) -> list[str]:
    """``--parts``: a comma-separated subset of :data:`PARTS`, in :data:`PARTS` order."""
    names = [v.strip() for v in str(text).split(",") if v.strip()]
    for v in names:
        if v not in PARTS:
            raise PermdealError(f"--parts: {v!r} is not one of {', '.join(PARTS)}")
    if not names:
        raise PermdealError("--parts names no part")
    return [v for v in PARTS if v in names]


def parse_layers(text: str | None) -> list[EieLayer]:
    """``--layers``: EIE layer names, comma-separated (case-insensitive), or all when None."""
    if text is None:
        return list(EIE_LAYERS)
    if not str(text).strip(" ,"):
        raise PermdealError("--layers names no layer (give EIE layer names separated by commas, "
                            "or leave it out for all nine)")
    out = []
    for v in str(text).split(","):
        try:
            layer = eie_layer(v.strip())
        except PermdealError as e:
            raise PermdealError(f"--layers: {e}") from None
        if layer in out:
            raise PermdealError(f"--layers: {layer.name} is named twice")
        out.append(layer)
    return out


def _options(options):
    """The checked settings of ``options`` (:data:`DEFAULTS`' keys, any missing one at its
    default): ``(settings dict, parts, layers)``."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise PermdealError(f"bench: unknown option {unknown[0]!r} (options: "
                            f"{', '.join(DEFAULTS)})")
    o = {**DEFAULTS, **options}
    checks.seed(o["seed"], "--seed")
    limits.check_array(o["m"], o["n"], f"--golden-m {o['m']} x --golden-n {o['n']}")
    limits.check_array(o["draws"], max(layer.n_in for layer in EIE_LAYERS),
                       f"--draws {o['draws']} activation vectors")
    for key, lo in (("draws", 1), ("eie_draws", 0), ("scale", 1), ("inputs", 1), ("scan_width", 1),
                    ("flow_lanes", 1), ("flow_p", 1), ("flow_batch", 1), ("m", 1), ("n", 1),
                    ("repeat", 1)):
        integer(o[key], f"--{key.replace('_', '-')}", lo)
    for key in ("rtl_pes", "rtl_lanes"):
        if o[key] is not None:
            integer(o[key], f"--{key.replace('_', '-')}", 1)
    try:
        o["groups"] = GEN_SETTINGS["groups"][0](o["groups"])
    except PermdealError as e:
        raise PermdealError(f"--groups: {e}") from None
    if isinstance(o["groups"], tuple):
        raise PermdealError(f"--groups: the bench runs every EIE layer on an engine of its own, "
                            f"so it takes auto or one count, not one per layer "
                            f"({','.join(map(str, o['groups']))})")
    for key in ("flow_pes", "p"):
        o[key] = [integer(v, f"--{'flow-pes' if key == 'flow_pes' else 'p'}", 1)
                  for v in o[key]]
    for p in o["p"]:
        check_block_fit(o["m"], o["n"], p, "--golden-p",
                        f"the golden part's {o['n']} in x {o['m']} out layer")
    if o["sim"] not in (*SIMULATORS, "both"):
        raise PermdealError(f"--sim must be one of {', '.join(SIMULATORS)} or both, not "
                            f"{o['sim']!r}")
    parts = parse_parts(o["parts"])
    running = [v for v in parts if not (o["no_rtl"] and v in RTL_PARTS)]
    for part, keys in PART_OPTIONS.items():
        changed = [k for k in keys if o[k] != DEFAULTS[k]
                   and not any(k in PART_OPTIONS[q] for q in running)]
        if changed and part not in running:
            why = "--no-rtl skips it" if o["no_rtl"] and part in parts else \
                f"--parts {','.join(parts)} does not run it"
            raise PermdealError(f"{PART_FLAGS.get(changed[0], '--' + changed[0].replace('_', '-'))}"
                                f" applies to the {part} part, and {why}")
    return o, parts, parse_layers(o["layers"])


#: The options each part alone reads (a changed one for a part not run is refused).
PART_OPTIONS = {"eie": ("draws", "eie_draws", "scan_width"),
                "rtl": ("scale", "rtl_pes", "rtl_lanes", "inputs", "scan_width"),
                "power": ("scale", "rtl_pes", "rtl_lanes", "inputs"),
                "flow": ("flow_pes", "flow_lanes", "flow_shape", "flow_p", "flow_density",
                         "flow_batch"),
                "golden": ("m", "n", "p", "repeat")}
#: The parts that generate and simulate RTL (``--no-rtl`` skips them).
RTL_PARTS = ("rtl", "power", "flow")
#: Flags whose names are not ``--`` and the option's.
PART_FLAGS = {"m": "--golden-m", "n": "--golden-n", "p": "--golden-p"}


def _rtl_engine(o):
    """The RTL part's engine and the rule it follows."""
    auto = replace(scaled_engine(o["scale"]), scan_width=o["scan_width"])
    if o["rtl_pes"] is None and o["rtl_lanes"] is None:
        return auto, (f"the paper's {PAPER['n_pe']} x {PAPER['lanes']} with 1/{o['scale']} of "
                      "its lanes, so that B is the full layer's")
    cfg = EngineConfig(o["rtl_pes"] or auto.n_pe, o["rtl_lanes"] or auto.lanes,
                       scan_width=o["scan_width"])
    return cfg, "given by --rtl-pes / --rtl-lanes"


def _check_rtl(layers, o, cfg):
    """Refuse a scaled layer whose weight memory per lane is beyond the engine's limit."""
    from permdeal.golden.geometry import layer_placements
    from permdeal.hdl.engine import MAX_MEMORY_WORDS
    for layer in layers:
        p = block_size(layer)
        m, n = scaled_shape(layer, o["scale"])
        depth = layer_placements([((-(-m // p), -(-n // p)), p)], cfg)[0].weight_depth
        if depth > MAX_MEMORY_WORDS:
            raise PermdealError(f"--scale {o['scale']}: {layer.name} scaled to {n} x {m} needs "
                                f"{depth} weight words per lane on {cfg.n_pe} PE x {cfg.lanes} "
                                f"lanes (more than {MAX_MEMORY_WORDS}); use a larger --scale")


def _available(sims, say):
    """The simulators of ``sims`` installed here; each missing one is said."""
    from permdeal.verif import runner
    out = []
    for sim in sims:
        try:
            runner.check_tools(sim)
            out.append(sim)
        except ToolMissing as e:
            say(f"skipped {sim}: {e}")
    return out


def run(**options: Any) -> int:
    """``permdeal bench`` with the settings ``options`` (:data:`DEFAULTS`' keys): compute the
    parts, print their tables, write ``--json`` (atomically, not over an existing
    file without ``--force``); the RTL and flow parts' layers and engines are tasks of ``-j``
    local processes or of the ``--dask`` cluster. Returns the exit code: 1 when an RTL run
    differs from the golden or cycle model, else 0."""
    o = {**DEFAULTS, **options}
    with executor(o["jobs"], o["dask"]) as ex:
        return _run(ex, **options)


def _run(ex: Executor, **options: Any) -> int:
    from tqdm import tqdm

    t_start = time.perf_counter()
    o, parts, layers = _options(options)
    if o["json"]:
        atomic.check_new_file(o["json"], o["force"])
    sims = list(SIMULATORS) if o["sim"] == "both" else [o["sim"]]
    cfg, rule = _rtl_engine(o)
    flow_shape = None
    if o["no_rtl"]:
        parts = [v for v in parts if v not in RTL_PARTS]
    if "rtl" in parts or "power" in parts:
        _check_rtl(layers, o, cfg)
    if "flow" in parts:
        flow_shape = parse_shapes(o["flow_shape"])
        if len(flow_shape) != 1:
            raise PermdealError("--flow-shape: the flow part takes one layer")
        flow_shape = flow_shape[0]
        engine_bench.check_args(o["flow_pes"], o["flow_lanes"], flow_shape, o["flow_p"],
                                o["flow_density"], flag="flow-")

    res = {"parts": parts, "seed": o["seed"], "layers": [l.name for l in layers]}
    if o["no_rtl"]:
        res["skipped"] = {k: "--no-rtl" for k in RTL_PARTS if k in parse_parts(o["parts"])}
        print("--no-rtl: no RTL generated or simulated (rtl, power and flow parts skipped)")
    if {"rtl", "flow"} & set(parts):
        sims = _available(sims, print)
        if not sims:
            res.setdefault("skipped", {}).update(
                {k: "no simulator installed" for k in ("rtl", "flow") if k in parts})
            parts = [v for v in parts if v not in ("rtl", "flow")]
    if "power" in parts and not _available(["verilator"], print):
        res.setdefault("skipped", {})["power"] = "Verilator (the SAIF trace) is not installed"
        parts = [v for v in parts if v != "power"]
    work = Path(o["workdir"])
    failed = False

    if "eie" in parts:
        t0 = time.perf_counter()
        with tqdm(total=len(layers), desc="EIE layers", unit="layer", dynamic_ncols=True,
                  disable=None) as bar:  # no bar when stderr is not a terminal
            eie = eie_comparison(layers, o["draws"], o["seed"], o["eie_draws"], bar,
                                 groups=o["groups"], scan_width=o["scan_width"])
        eie["seconds"] = round(time.perf_counter() - t0, 1)
        res["eie"] = eie
        print(eie_tables(eie) + "\n", flush=True)

    if "rtl" in parts:
        t0 = time.perf_counter()
        rows = rtl_validation(layers, o["scale"], cfg, sims, o["inputs"], work / "rtl",
                              o["seed"], ex, groups=o["groups"])
        res["rtl"] = {"scale": o["scale"], "engine": cfg.to_json(), "engine_rule": rule,
                      "inputs": o["inputs"], "sims": sims, "layers": rows,
                      "seconds": round(time.perf_counter() - t0, 1)}
        failed |= not all(rtl_exact(r, sim) for r in rows for sim in r["sims"])
        print(rtl_tables(res["rtl"]) + "\n", flush=True)

    if "power" in parts:
        t0 = time.perf_counter()
        # (the power part measures engines of one lane group, full size and reduced alike: the
        # per-lane figures it carries over would not hold between different group counts)
        eie = res.get("eie")
        if eie is None or eie["design"].get("groups") != 1:
            eie = eie_comparison(layers, o["draws"], o["seed"], 0, groups=1)
        rows = []
        with tqdm(total=len(layers), desc="energy and area", unit="layer", disable=None,
                  dynamic_ncols=True) as bar:
            for layer, row in zip(layers, eie["layers"]):
                bar.set_postfix_str(layer.name)
                rows.append(be.layer_efficiency(layer, row, o["scale"], cfg, paper_engine(),
                                                o["inputs"], work / "power" / layer.name,
                                                o["seed"]))
                bar.update(1)
        res["power"] = {"scale": o["scale"], "engine": cfg.to_json(), "engine_rule": rule,
                        "inputs": o["inputs"], "layers": rows, "rules": be.scaling_rules(),
                        "eie": {"area_mm2": be.EIE_AREA_MM2, "power_w": be.EIE_POWER_W,
                                "clock_mhz": EIE["clock_mhz"], "node_nm": 45},
                        "paper_claims": {"area_efficiency": list(be.PAPER_AREA_EFFICIENCY),
                                         "energy_efficiency": list(be.PAPER_ENERGY_EFFICIENCY)},
                        "geomean_area_efficiency_vs_eie": geomean(
                            [r["area_efficiency_vs_eie"] for r in rows]),
                        "geomean_energy_efficiency_vs_eie": geomean(
                            [r["energy_efficiency_vs_eie"] for r in rows]),
                        "seconds": round(time.perf_counter() - t0, 1)}
        failed |= not all(r["reduced_golden_match"] for r in rows)
        print(power_tables(res["power"]) + "\n", flush=True)

    if "flow" in parts:
        t0 = time.perf_counter()
        flow = engine_bench.run(o["flow_pes"], o["flow_lanes"], flow_shape, o["flow_p"],
                                o["flow_density"], o["flow_batch"], sims, work / "flow",
                                seed=o["seed"],
                                progress=lambda msg: tqdm.write(f"... flow: {msg}"),
                                executor=ex)
        flow["seconds"] = round(time.perf_counter() - t0, 1)
        res["flow"] = flow
        failed |= not all(s["golden_match"] and s["cycles_match_model"]
                          for e in flow["engines"] for s in e["sims"].values())
        print("the RTL flow: " + engine_bench.tables(flow) + "\n", flush=True)

    if "golden" in parts:
        from permdeal.golden.bench import golden_bench
        t0 = time.perf_counter()
        gold = golden_bench(m=o["m"], n=o["n"], ps=o["p"], repeat=o["repeat"], seed=o["seed"])
        gold["seconds"] = round(time.perf_counter() - t0, 1)
        res["golden"] = gold
        rate = ", ".join(f"p={r['p']}: {r['stored_weights'] / r['int_matvec_s'] / 1e6:,.0f}"
                         for r in gold["rows"] if r["int_matvec_s"] > 0)
        print(bench_table(gold))
        print(f"golden int matvec throughput (million stored weights per second): {rate}\n")

    res["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    print(f"wall time {res['wall_seconds']:.0f} s"
          + (f"; designs and results in {work}/" if set(RTL_PARTS) & set(parts) else ""))
    if o["json"]:
        atomic.write_text(o["json"], json.dumps(res, indent=2) + "\n")
        print(f"wrote {o['json']}")
    if failed:
        print("the RTL DIFFERS from the cycle or golden model (see the tables above)",
              file=sys.stderr)
    return 1 if failed else 0
