"""``permdeal bench-engine``: the RTL flow's figures for engines of several PE counts.

For each PE count: generate the design for one random layer (``permdeal gen``), simulate a batch
of inputs at a given density on each simulator (``permdeal sim``), and report generation time,
simulator build time, simulated cycles per second, RTL cycles against the cycle model and lane
utilization. Also the cycle model's utilization on the layers the RTL issue names.
"""

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from permdeal import atomic
from permdeal.errors import PermdealError
from permdeal.executor import Executor, Task, using
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig, layer_cycles
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer, QuantModel

from permdeal.gen.design import write_design
from permdeal.tables import table
from permdeal.verif.sim import simulate

#: The formats of the benchmark layer (16-bit, as in the paper).
SPEC = QuantSpec(act=Fixed(16, 8), weight=Fixed(16, 12), bias=Fixed(16, 12))


def random_layer_model(m: int, n: int, p: int, seed: int) -> QuantModel:
    """A one-layer model (ReLU) compressed at block size ``p`` from a random ``m x n`` float layer
    (N(0, 0.25/n) weights, N(0, 0.01) biases) drawn from ``seed``, in the :data:`SPEC` formats."""
    rng = np.random.default_rng(seed)
    layer = FloatLayer("fc0", rng.normal(0, 0.5 / np.sqrt(n), (m, n)), rng.normal(0, 0.1, m))
    return compress_permdiag([layer], p, SPEC, relu_last=True)


def random_inputs(model: QuantModel, batch: int, density: float, seed: int) -> np.ndarray:
    """``batch`` input-code vectors for ``model``: uniform in a quarter of the input format's
    range, each word kept non-zero with probability ``density`` (seed ``seed + 1``)."""
    rng = np.random.default_rng(seed + 1)
    fmt = model.input_format
    x = rng.integers(fmt.min // 4, fmt.max // 4, size=(batch, model.n_inputs))
    x[rng.random(x.shape) >= density] = 0
    return x


def utilization_cases(seed: int = 0) -> list[tuple[str, dict[str, float]]]:
    """The cycle model on the RTL issue's utilization cases: ``(name, figures)``."""
    rng = np.random.default_rng(seed)
    cases = [("1024x1024 p=8, 35% dense, 8 PE x 4 lanes", 1024, 1024, 8, 0.35, 8, 4),
             ("600x600 p=10, 35% dense, 32 PE x 8 lanes", 600, 600, 10, 0.35, 32, 8),
             ("1000x1024 p=8 (M'=125), 35% dense, 8 PE x 4 lanes", 1000, 1024, 8, 0.35, 8, 4),
             ("1024x1024 p=8, 100% dense, 8 PE x 4 lanes", 1024, 1024, 8, 1.0, 8, 4),
             ("1024x1024 p=8, 5% dense, 8 PE x 4 lanes", 1024, 1024, 8, 0.05, 8, 4)]
    out = []
    for name, m, n, p, density, pes, lanes in cases:
        cfg = EngineConfig(pes, lanes)
        runs = []
        for _ in range(20):
            x = (rng.random(n) < density).astype(np.int64)
            runs.append(layer_cycles(x, -(-m // p), p, cfg))
        mb = -(-m // p)
        out.append((name, {
            "block_rows": mb, "lanes": cfg.total_lanes, "slots": runs[0].slots,
            "static_bound": mb / (cfg.total_lanes * runs[0].slots),
            "cycles": float(np.mean([r.total for r in runs])),
            "ideal": float(np.mean([r.ideal for r in runs])),
            "utilization": float(np.mean([r.utilization for r in runs]))}))
    return out


def check_args(pes_list: Sequence[int], lanes: int, shape: tuple[int, int], p: int,
               density: float, flag: str = "") -> None:
    """Refuse a benchmark that cannot run: a density outside (0, 1], or a layer whose weight
    memory per lane exceeds the engine's limit on one of the PE counts. ``flag`` prefixes the
    flag names in the messages (``"flow-"`` for ``permdeal bench``)."""
    from permdeal.golden.geometry import layer_placements
    from permdeal.hdl.engine import MAX_MEMORY_WORDS
    if not 0 < density <= 1:
        raise PermdealError(f"--{flag}density must lie in (0, 1], not {density}")
    (m, n) = shape
    for pes in pes_list:
        depth = layer_placements([((-(-m // p), -(-n // p)), p)],
                                 EngineConfig(pes, lanes))[0].weight_depth
        if depth > MAX_MEMORY_WORDS:
            raise PermdealError(f"--{flag}shape {m}x{n} at p = {p} on {pes} PE x {lanes} lanes "
                                f"needs {depth} weight words per lane (more than "
                                f"{MAX_MEMORY_WORDS}); use a larger p or more PEs")


def engine_figures(model: QuantModel, x: npt.ArrayLike, cfg: EngineConfig, sims: Sequence[str],
                   workdir: str | Path, seed: int = 0,
                   progress: Callable[[str], None] = print,
                   label: str | None = None) -> dict[str, Any]:
    """Generate the design of ``model`` for engine ``cfg`` in ``workdir/design`` and simulate the
    input codes ``x`` (batch x n) on each of ``sims`` (results in ``workdir/res-SIM``).

    Returns ``{"pes", "lanes", "gen_seconds", "verilog_bytes", "sims": {sim: figures}}``; the
    figures are :func:`permdeal.verif.sim.simulate`'s timings, cycles (RTL and cycle model, per input) and
    golden match, plus ``images_equal``: per input, whether every output equals the golden
    model's (read back from the RTL's ``outputs.npy``).
    """
    workdir = Path(workdir)
    label = label or f"{cfg.n_pe} PE x {cfg.lanes} lanes"
    design = workdir / "design"
    progress(f"{label}: generating")
    t0 = time.perf_counter()
    write_design(design, cfg, model.layers, model=model)
    gen_seconds = time.perf_counter() - t0
    verilog = sum(f.stat().st_size for f in (design / "rtl").iterdir())
    golden = model.forward(np.asarray(x, dtype=np.int64))
    row = {"pes": cfg.n_pe, "lanes": cfg.lanes, "gen_seconds": round(gen_seconds, 2),
           "verilog_bytes": verilog, "sims": {}}
    for sim in sims:
        progress(f"{label}: {sim}")
        res = workdir / f"res-{sim}"
        rep = simulate(design, x, sim, res, seed=seed)
        y = np.load(res / "outputs.npy")
        row["sims"][sim] = {k: rep[k] for k in (
            "build_seconds", "run_seconds", "simulated_cycles", "simulated_cycles_per_second",
            "cycles", "model_cycles", "cycles_match_model", "golden_match", "lane_utilization")}
        row["sims"][sim]["images_equal"] = [bool(v) for v in np.all(y == golden, axis=1)]
    return row


def _quiet(msg: str) -> None:
    pass


def figures_task(workdir: Path, model: QuantModel, x: np.ndarray, cfg: EngineConfig,
                 sims: Sequence[str], seed: int, label: str | None = None) -> dict[str, Any]:
    """:func:`engine_figures` as a task of the executor (quiet: a worker has no terminal)."""
    return engine_figures(model, x, cfg, sims, workdir, seed, progress=_quiet, label=label)


def run(pes_list: Sequence[int], lanes: int, shape: tuple[int, int], p: int, density: float,
        batch: int, sims: Sequence[str], workdir: str | Path, seed: int = 0,
        progress: Callable[[str], None] = print,
        executor: Executor | None = None) -> dict[str, Any]:
    """The benchmark, one engine (PE count) a task of ``executor``; returns ``{"engines":
    [...], "utilization": [...]}``."""
    m, n = shape
    model = random_layer_model(m, n, p, seed)
    x = random_inputs(model, batch, density, seed)
    tasks = [Task(figures_task, (model, x, EngineConfig(pes, lanes), sims, seed),
                  f"{pes}x{lanes}", f"{pes} PE x {lanes} lanes") for pes in pes_list]
    with using(executor) as ex:
        engines = ex.run(tasks, workdir, desc="engines",
                         each=lambda i, _: progress(f"{tasks[i].name}: done"))
    return {"layer": {"m": m, "n": n, "p": p, "density": density, "batch": batch},
            "engines": engines,
            "utilization": [{"case": name, **fig} for name, fig in utilization_cases(seed)]}


def tables(res: dict[str, Any]) -> str:
    lay = res["layer"]
    rows = []
    for e in res["engines"]:
        for sim, s in e["sims"].items():
            rows.append([f"{e['pes']} x {e['lanes']}", f"{e['gen_seconds']:.1f}", sim,
                         f"{s['build_seconds']:.1f}", f"{s['run_seconds']:.1f}",
                         f"{s['simulated_cycles_per_second'] or 0:.0f}",
                         f"{np.mean(s['cycles']):.1f}", f"{np.mean(s['model_cycles']):.1f}",
                         "yes" if s["cycles_match_model"] and s["golden_match"] else "NO",
                         f"{100 * s['lane_utilization']:.1f}%"])
    head = (f"engine flow on a {lay['m']}x{lay['n']} layer, p = {lay['p']}, "
            f"{100 * lay['density']:.0f}% dense inputs, {lay['batch']} inputs per run")
    t1 = table(["PEs x lanes", "gen s", "sim", "build s", "run s", "cycles/s", "RTL cycles",
                "model cycles", "exact", "util"], rows)
    urows = [[u["case"], u["block_rows"], u["lanes"], u["slots"],
              f"{100 * u['static_bound']:.1f}%", f"{u['ideal']:.0f}", f"{u['cycles']:.0f}",
              f"{100 * u['utilization']:.1f}%"] for u in res["utilization"]]
    t2 = table(["cycle model case", "M'", "lanes", "B", "M'/(NL*B)", "ideal", "cycles", "util"],
               urows)
    return f"{head}\n{t1}\n\n{t2}"


def write_json(path: str | Path, res: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(res, indent=2) + "\n")
