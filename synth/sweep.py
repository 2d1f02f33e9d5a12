"""``permdeal synth --sweep PARAM=V1,V2,...``: one design per value, synthesized, tabulated, plotted.

Each point generates its design (``points/<param>-<value>/design``) with the other settings fixed,
synthesizes it for the chosen targets (``points/<param>-<value>/report.json``) and becomes one row
of ``sweep.csv`` and ``sweep.json``; ``sweep.png`` plots area and Fmax against the parameter. A
target that fails at one point (a design too large for the FPGA, say) leaves that row's figures
empty with the reason in ``status``; the sweep goes on.
"""

import csv
import io
import json
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from permdeal import atomic
from permdeal.errors import PermdealError
from permdeal.executor import Executor, Task, using

from .designs import synthesize
from .flow import SynthOptions
from .tools import DoesNotFit

__all__ = ["COLUMNS", "PARAMS", "parse_sweep", "run_sweep", "sweep_point"]

#: Sweepable parameters (``permdeal gen`` settings).
PARAMS = ("pes", "lanes", "p")

#: CSV columns: name -> (target, path into that target's report), or None for the point itself.
COLUMNS = {
    "n_pe": None, "lanes": None, "p": None,
    "generic_cells": ("generic", ("cells_total",)),
    "generic_transistors": ("generic", ("transistors",)),
    "asic_logic_mm2": ("asic", ("logic_area_um2",)),
    "asic_pe_mm2": ("asic", ("per_pe", "area_um2")),
    "asic_weight_mem_mm2": ("asic", ("weight_memory", "total", "area_um2")),
    "asic_total_mm2": ("asic", ("total_area_um2",)),
    "asic_memory_bits": ("asic", ("memories", "total", "bits")),
    "asic_memory_mm2": ("asic", ("memories", "total", "area_um2")),
    "asic_fmax_mhz": ("asic", ("fmax_mhz",)),
    "ecp5_lut4": ("ecp5", ("resources", "LUT4")),
    "ecp5_luts_placed": ("ecp5", ("luts_placed",)),
    "ecp5_ff": ("ecp5", ("resources", "FF")),
    "ecp5_mult18": ("ecp5", ("resources", "MULT18X18D")),
    "ecp5_dp16kd": ("ecp5", ("resources", "DP16KD")),
    "ecp5_fmax_mhz": ("ecp5", ("fmax_mhz",)),
    "ecp5_peak_gops": ("throughput", ("ecp5_peak_gops",)),
    "gen_s": None, "synth_s": None, "status": None,
}


def parse_sweep(text: str) -> tuple[str, list[int]]:
    """``PARAM=V1,V2,...`` -> ``(param, [values])``; values distinct integers >= 1."""
    name, eq, values = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not eq or name not in PARAMS:
        raise PermdealError(f"--sweep must be PARAM=V1,V2,... with PARAM one of "
                            f"{', '.join(PARAMS)}, not {text!r}")
    out = []
    for v in values.split(","):
        try:
            n = int(v)
        except ValueError:
            n = 0
        if n < 1:
            raise PermdealError(f"--sweep {name}: values must be integers >= 1, not {v!r}")
        out.append(n)
    if len(set(out)) != len(out):
        raise PermdealError(f"--sweep {name}: a value is repeated")
    return name, out


def _get(report, target, path):
    node = report.get(target)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _row(point, report, gen_s, failures):
    row = dict.fromkeys(COLUMNS)
    row.update(n_pe=point["pes"], lanes=point["lanes"], p=point["p"], gen_s=round(gen_s, 1))
    for name, where in COLUMNS.items():
        if where is None:
            continue
        value = _get(report, *where)
        if name.endswith("_mm2") and value is not None:
            value = round(value / 1e6, 4)
        row[name] = value
    row["synth_s"] = round(sum(report.get("seconds", {}).values()), 1)
    row["status"] = "; ".join(f"{t}: {msg}" for t, msg in failures.items()) or "ok"
    return row


def _plot(rows, param, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    key = {"pes": "n_pe", "lanes": "lanes", "p": "p"}[param]
    xs = [r[key] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for col, label in (("asic_logic_mm2", "ASIC logic (OSU 0.18 um)"),
                       ("asic_weight_mem_mm2", "weight memory (SRAM model)"),
                       ("asic_total_mm2", "ASIC total")):
        pts = [(x, r[col]) for x, r in zip(xs, rows) if r[col] is not None]
        if pts:
            ax1.plot(*zip(*pts), marker="o", label=label)
    ax1.set_xlabel(param)
    ax1.set_ylabel("area (mm^2)")
    ax1.set_title("ASIC area")
    if param in ("pes", "lanes"):
        ax1.set_xscale("log", base=2)
    ax1.grid(True, alpha=0.3)
    if ax1.lines:
        ax1.legend(fontsize=8)
    pts = [(x, r["ecp5_fmax_mhz"]) for x, r in zip(xs, rows) if r["ecp5_fmax_mhz"] is not None]
    asic = [(x, r["asic_fmax_mhz"]) for x, r in zip(xs, rows) if r["asic_fmax_mhz"] is not None]
    if asic:
        ax2.plot(*zip(*asic), marker="o", color="tab:blue", label="Fmax ASIC (OpenSTA)")
        ax2.set_ylabel("Fmax (MHz)")
    if pts:
        ax2.plot(*zip(*pts), marker="s", color="tab:red", label="Fmax (nextpnr-ecp5)")
        ax2.set_ylabel("Fmax (MHz)")
        ax2b = ax2.twinx()
        lut = [(x, r["ecp5_lut4"]) for x, r in zip(xs, rows) if r["ecp5_lut4"] is not None]
        ax2b.plot(*zip(*lut), marker="^", color="tab:gray", label="LUT4")
        ax2b.set_ylabel("LUT4")
        ax2.legend(loc="upper left", fontsize=8)
        ax2b.legend(loc="upper right", fontsize=8)
    elif asic:
        ax2.legend(loc="upper left", fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no Fmax figures\n(targets not run or no point fit the device)",
                 ha="center", va="center", transform=ax2.transAxes)
    ax2.set_xlabel(param)
    ax2.set_title("Fmax (and ECP5 LUT4)")
    if param in ("pes", "lanes"):
        ax2.set_xscale("log", base=2)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def _csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def table(rows: Sequence[dict]) -> str:
    """The sweep as an aligned text table (the columns that have figures)."""
    cols = [c for c in COLUMNS if c in ("n_pe", "lanes", "p", "status")
            or any(r[c] is not None for r in rows)]
    cells = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) if c != "status" else c for c, w in zip(cols, widths))]
    for row in cells:
        lines.append("  ".join(v.rjust(w) if c != "status" else v
                               for c, v, w in zip(cols, row, widths)))
    return "\n".join(lines)


def sweep_point(folder: Path, param: str, value: int, settings: dict,
                make_design: Callable[[dict, Path], Any], targets: Sequence[str],
                opts: SynthOptions) -> dict:
    """One point of a sweep (a task of the executor): the design of ``settings`` with ``param``
    set to ``value`` generated into ``folder/design`` and synthesized (``folder/logs``);
    returns ``(its row, its report)``, the report for the caller to write."""
    st = dict(settings)
    st[param] = [value] if param == "p" else value
    point = {"pes": st["pes"], "lanes": st["lanes"],
             "p": "(model)" if st.get("model") else ",".join(map(str, st["p"]))}
    folder = Path(folder)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    make_design(st, folder / "design")
    gen_s = time.perf_counter() - t0
    report, failures = {"seconds": {}}, {}
    for target in targets:
        try:
            rep = synthesize(folder / "design", [target], opts, folder / "logs")
        except DoesNotFit as e:
            failures[target] = str(e).splitlines()[0]
            report[target] = e.partial  # the resource counts, without Fmax
            continue
        except PermdealError as e:
            failures[target] = str(e).splitlines()[0]
            work = getattr(e, "work", None)
            if work is not None:  # the tools' files, inside the point's own folder
                shutil.move(str(work), folder / f"{target}-failed")
                failures[target] += f" (files in points/{folder.name}/{target}-failed/)"
            continue
        report.setdefault("throughput", {}).update(rep["throughput"])
        report["seconds"].update(rep["seconds"])
        report[target] = rep[target]
        report.setdefault("design", rep["design"])
    report["failures"] = failures
    return _row(point, report, gen_s, failures), report


def run_sweep(param: str, values: Sequence[int], settings: dict,
              make_design: Callable[[dict, Path], Any], targets: Sequence[str], opts: SynthOptions,
              out: str | Path, inputs: Iterable[str | Path] = (),
              executor: Executor | None = None) -> tuple[list[dict], float]:
    """Sweep ``param`` over ``values``; returns the rows.

    ``settings`` are the ``permdeal gen`` settings of every point; ``make_design(settings,
    folder)`` (a module-level function, for the executor's workers) writes a design. Each
    point is a task of ``executor`` (default: one at a time here). Writes ``out`` atomically
    (``sweep.csv``, ``sweep.json``, ``sweep.png``, ``sweep.txt`` and ``points/``).
    """
    t_start = time.perf_counter()
    with atomic.output_dir(out, inputs=inputs) as tmp:
        tasks = [Task(sweep_point, (param, v, settings, make_design, list(targets), opts),
                      f"points/{param}-{v}", f"{param}={v}") for v in values]
        with using(executor) as ex:
            done = ex.run(tasks, tmp, desc=f"sweep {param}")
        rows = [row for row, _ in done]
        for task, (_, report) in zip(tasks, done):
            atomic.write_text(tmp / task.folder / "report.json",
                              json.dumps(report, indent=2) + "\n")
        wall = round(time.perf_counter() - t_start, 1)
        summary = {"param": param, "values": values, "targets": targets,
                   "settings": {k: str(v) for k, v in settings.items()},
                   "device": opts.device.name, "hierarchical": not opts.flat,
                   "wall_seconds": wall, "rows": rows}
        atomic.write_text(tmp / "sweep.json", json.dumps(summary, indent=2) + "\n")
        atomic.write_text(tmp / "sweep.csv", _csv(rows))
        atomic.write_text(tmp / "sweep.txt", table(rows) + f"\nwall time {wall} s\n")
        _plot(rows, param, tmp / "sweep.png")
    return rows, wall
