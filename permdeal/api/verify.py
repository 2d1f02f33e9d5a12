# amaranth: UnusedElaboratable=no
"""``permdeal verify``: the cocotb regression of one design configuration, or of random legal
configurations, with JUnit XML and a JSON summary in the results folder."""

from __future__ import annotations

import contextlib
import json
import random
import shlex
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from permdeal import atomic, checks, limits
from permdeal.errors import PermdealError
from permdeal.executor import Executor, Task, using
from permdeal.golden import rom
from permdeal.golden.cycles import model_cycles
from permdeal.methods.permdiag import with_groups
from .models import load, method_of
from permdeal.hdl.engine import Engine
from permdeal.verif import runner
from permdeal.verif import verify as vf

from .settings import GEN_SETTINGS, VERIFY_SHAPE, DesignSettings, design_settings, flag

#: The settings a ``permdeal verify`` rerun command repeats, in order.
RERUN_SETTINGS = ("pes", "lanes", "scan_width", "multiplier", "groups", "model", "shape", "p", "act_format",
                  "weight_format", "bias_format", "out_format")


def rerun_command(settings: dict, seed: int, test: str, sim: str, output: str,
                  config: str | None = None) -> str:
    """The ``permdeal verify`` command that reruns one bench with ``settings`` (flag values)."""
    words = ["permdeal", "verify"]
    if config is not None:
        words += ["--config", str(config)]
    for name in RERUN_SETTINGS:
        if settings.get(name) is not None:
            words += [flag(name), str(settings[name])]
    if settings.get("relu"):
        words.append("--relu")
    words += ["--seed", str(seed), "--tests", test, "--sim", sim, "-o", output]
    return " ".join(shlex.quote(w) for w in words)


@dataclass
class Verified:
    """A regression's result: ``records`` (one per run, as in ``summary.json``), ``seed``,
    ``wall`` seconds, and for one configuration its ``settings`` and ``coverage`` rows."""

    records: list
    seed: int
    wall: float
    settings: DesignSettings | None = None
    configs: int | None = None

    @property
    def failed(self) -> list:
        return [r for r in self.records if not r["passed"]]


def _bench(build: Path, job: vf.Job, target: vf.Target, seed: int, waves: bool) -> dict:
    """One bench run in ``build`` (a task of the executor)."""
    return vf.run_job(job, target, build, seed, waves)


def _failed(record: dict) -> bool:
    return not record["passed"]


def sims_of(sim: str) -> list[str]:
    return list(runner.SIMULATORS) if sim == "both" else [sim]


def estimate(target: vf.Target, benches: list[str], sims: list[str], seed: int) -> str | None:
    """Refuse a regression whose engine benches would simulate past the limit
    (:mod:`permdeal.limits`); returns a warning for a long one, else None."""
    runs = [b for b in benches if b.startswith("engine")]
    if not runs:
        return None
    x = vf.engine_inputs(target.model, seed)
    cycles = len(runs) * sum(model_cycles(target.model, xi, target.cfg).total for xi in x)
    notes = [limits.check_simulation(cycles, sim, target.cfg.total_lanes,
                                     f"the engine benches ({', '.join(runs)})") for sim in sims]
    return next((n for n in notes if n), None)


def verify_config(given: dict, output: str | None, *, config: str | None = None,
                  sim: str = "both",
                  tests: str | None = None, seed: int | None = None, waves: bool = False,
                  jobs: int = 1, progress: Callable[[str], None] | None = None,
                  executor: Executor | None = None) -> Verified:
    """The regression of one configuration: the settings ``given`` (flag values) over the
    ``config`` file, each bench of ``tests`` (comma-separated; default all) on each simulator."""
    st = design_settings({**given, "output": output}, config, {"shape": VERIFY_SHAPE},
                         required=("pes", "lanes", "output"))
    for name in ("arch", "batch"):
        if getattr(st, name) is not None:
            raise PermdealError(f"{flag(name)} does not apply to verify (its benches run the "
                                "PermDNN engine of the settings; the smartdeal_engine bench "
                                "draws its own network and lanes)")
    output = st.output
    # (with --model, --groups auto weighs the model's layers: gen's choice)
    cfg = replace(st, groups=1).engine if st.model is not None else st.engine
    sims = sims_of(sim)
    benches = list(vf.BENCHES) if tests is None else tests.split(",")
    jobs_list = vf.plan(benches, sims)
    for s in sims:
        runner.check_tools(s)
    seed = checks.seed(seed, "--seed") if seed is not None else vf.new_seed()
    inputs = [config] if config else []
    if st.model is not None:
        model = load(st.model)
        if method_of(model).name != "permdiag":
            raise PermdealError(f"--model {st.model}: verify runs the PermDNN engine's benches, "
                                f"which take permuted-diagonal models; this is a "
                                f"{method_of(model).label} model (simulate its design with "
                                "permdeal sim)")
        inputs.append(st.model)
        cfg = with_groups(cfg, st.groups, model)
    else:
        for layer in st.layers():
            limits.check_random_weights(layer.n_out, layer.n_in, f"--shape {layer.name}")
        model = vf.random_model(st.layers(), seed)
    target = vf.Target(cfg, model)
    note = estimate(target, benches, sims, seed)  # before building anything large
    Engine(cfg, model.layers, contents=rom.lane_contents(model, cfg))  # refuse what cannot work
    if note and progress:
        progress(f"note: {note}")
    if progress:
        progress(f"verify: {cfg.n_pe} PE x {cfg.lanes} lanes, scan width {cfg.scan_width}, "
                 "layers " + ", ".join(f"{l.shape[0]}x{l.shape[1]} p={l.matrix.p}"
                                       for l in model.layers)
                 + f"; {len(jobs_list)} run(s), seed {seed}")
    t0 = time.perf_counter()
    with atomic.output_dir(output, inputs=inputs) as tmp:
        tasks = [Task(_bench, (job, target, seed, waves), f"builds/{job.bench}-{job.sim}",
                      job.name) for job in jobs_list]

        def each(i: int, record: dict) -> None:
            if progress:
                progress(f"... {jobs_list[i].name}: {'pass' if record['passed'] else 'FAIL'}")
        with using(executor, jobs) as ex:
            records = ex.run(tasks, tmp, desc="verify", each=each)
        wall = time.perf_counter() - t0
        failed = [r for r in records if not r["passed"]]
        summary = {"config": {**cfg.to_json(), "layers": [
                       {"in": l.shape[1], "out": l.shape[0], "p": l.matrix.p,
                        "formats": l.fmts.to_json(), "relu": l.relu} for l in model.layers]},
                   "seed": seed, "sims": sims, "tests": benches, "passed": not failed,
                   "wall_seconds": round(wall, 1), "runs": records}
        atomic.write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic.write_bytes(tmp / "junit.xml", vf.junit(records))
    return Verified(records, seed, wall, st)


def verify_random(n: int, output: str | None, *, sim: str = "icarus", seed: int | None = None,
                  jobs: int = 1, progress: Callable[[str], None] | None = None,
                  executor: Executor | None = None) -> Verified:
    """``verify --random-configs N``: ``n`` legal configurations drawn from the seed, each run
    bit-exact against the golden model (the engine on the whole network)."""
    if output is None:
        raise PermdealError("-o/--output (the results folder) is required")
    sims = sims_of(sim)
    for s in sims:
        runner.check_tools(s)
    seed = checks.seed(seed, "--seed") if seed is not None else vf.new_seed()
    rng = random.Random(seed)
    drawn: list[Any] = []
    while len(drawn) < n:
        st_text = vf.random_settings(rng)
        try:
            st = design_settings(st_text, required=("pes", "lanes"))
            cfg = st.engine
            model = vf.random_model(st.layers(), seed + len(drawn))
            Engine(cfg, model.layers, contents=rom.lane_contents(model, cfg))
        except PermdealError:
            continue  # not a legal configuration: draw again
        drawn.append((st_text, vf.Target(cfg, model), seed + len(drawn)))
    if progress:
        progress(f"verify: {len(drawn)} random configurations from seed {seed} on "
                 f"{', '.join(sims)}")
    t0 = time.perf_counter()
    with atomic.output_dir(output) as tmp:
        tasks = [Task(_bench, (vf.Job("engine_network", s), target, cseed, False),
                      f"builds/config{i}-{s}", f"config{i} on {s}", keep=_failed)
                 for i, (_, target, cseed) in enumerate(drawn) for s in sims]
        done = []

        def each(i: int, rec: dict) -> None:
            done.append(rec["passed"])
            if progress and (len(done) % 10 == 0 or len(done) == len(tasks)):
                progress(f"... {len(done)} of {len(tasks)} runs, {done.count(False)} failed")
        with using(executor, jobs) as ex:
            records = ex.run(tasks, tmp, desc="random configurations", each=each)
        for i, (rec, task) in enumerate(zip(records, tasks)):
            st_text = drawn[i // len(sims)][0]
            rec["config"] = st_text
            rec["command"] = rerun_command(st_text, rec["seed"], "engine_network",
                                           rec["sim"], f"{output}-config{i}")
            if rec["passed"]:  # thousands of passing builds are not worth keeping
                shutil.rmtree(tmp / task.folder, ignore_errors=True)
        wall = time.perf_counter() - t0
        failed = [r for r in records if not r["passed"]]
        summary = {"seed": seed, "configs": len(drawn), "sims": sims, "passed": not failed,
                   "failures": len(failed), "wall_seconds": round(wall, 1), "runs": records}
        atomic.write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic.write_bytes(tmp / "junit.xml", vf.junit(records))
        with contextlib.suppress(OSError):
            (tmp / "builds").rmdir()  # when every run passed
    return Verified(records, seed, wall, configs=len(drawn))


__all__ = ["GEN_SETTINGS", "Verified", "rerun_command", "verify_config", "verify_random"]
