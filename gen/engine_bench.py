"""``permdeal bench-engine``: the RTL flow's figures for engines of several PE counts.

For each PE count: generate the design for one random layer (``permdeal gen``), simulate a batch
of inputs at a given density on each simulator (``permdeal sim``), and report generation time,
simulator build time, simulated cycles per second, RTL cycles against the cycle model and lane
utilization. Also the cycle model's utilization on the layers the RTL issue names.
"""

import json
import time
from pathlib import Path

import numpy as np

from permdeal import atomic
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig, layer_cycles
from permdeal.golden.formats import Fixed
from permdeal.golden.model import FloatLayer

from .design import write_design
from .report import table
from .sim import simulate

#: The formats of the benchmark layer (16-bit, as in the paper).
SPEC = QuantSpec(act=Fixed(16, 8), weight=Fixed(16, 12), bias=Fixed(16, 12))


def random_layer_model(m, n, p, seed):
    rng = np.random.default_rng(seed)
    layer = FloatLayer("fc0", rng.normal(0, 0.5 / np.sqrt(n), (m, n)), rng.normal(0, 0.1, m))
    return compress_permdiag([layer], p, SPEC, relu_last=True)


def random_inputs(model, batch, density, seed):
    rng = np.random.default_rng(seed + 1)
    fmt = model.input_format
    x = rng.integers(fmt.min // 4, fmt.max // 4, size=(batch, model.n_inputs))
    x[rng.random(x.shape) >= density] = 0
    return x


def utilization_cases(seed=0):
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


def run(pes_list, lanes, shape, p, density, batch, sims, workdir, seed=0, progress=print):
    """The benchmark; returns ``{"engines": [...], "utilization": [...]}``."""
    m, n = shape
    model = random_layer_model(m, n, p, seed)
    x = random_inputs(model, batch, density, seed)
    workdir = Path(workdir)
    engines = []
    for pes in pes_list:
        cfg = EngineConfig(pes, lanes)
        design = workdir / f"design-{pes}x{lanes}"
        progress(f"{pes} PE x {lanes} lanes: generating")
        t0 = time.perf_counter()
        write_design(design, cfg, model.layers, model=model)
        gen_seconds = time.perf_counter() - t0
        verilog = sum(f.stat().st_size for f in (design / "rtl").iterdir())
        row = {"pes": pes, "lanes": lanes, "gen_seconds": round(gen_seconds, 2),
               "verilog_bytes": verilog, "sims": {}}
        for sim in sims:
            progress(f"{pes} PE x {lanes} lanes: {sim}")
            rep = simulate(design, x, sim, workdir / f"res-{pes}x{lanes}-{sim}", seed=seed)
            row["sims"][sim] = {k: rep[k] for k in (
                "build_seconds", "run_seconds", "simulated_cycles",
                "simulated_cycles_per_second", "cycles", "model_cycles", "cycles_match_model",
                "golden_match", "lane_utilization")}
        engines.append(row)
    return {"layer": {"m": m, "n": n, "p": p, "density": density, "batch": batch},
            "engines": engines,
            "utilization": [{"case": name, **fig} for name, fig in utilization_cases(seed)]}


def tables(res):
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


def write_json(path, res):
    atomic.write_text(path, json.dumps(res, indent=2) + "\n")
