"""``permdeal sim``: a generated design on a batch of inputs, in a simulator, against the golden model.

The design folder's Verilog runs under ``verif/tb_engine.py`` (its ``test_cycles``: inputs back to
back, no back-pressure), with the ROM images linked in as ``rom/`` beside the build. The results
folder gets ``outputs.npy`` (what the RTL produced, one row per input, codes of the model's output
format) and ``report.json`` (cycles per input from the RTL and from the cycle model, whether every
output matched the golden model, the mismatches, lane utilization, and the tool's timings:
``simulated_cycles_per_second`` is the test's simulated clock cycles over its own wall time, without
the simulator's start-up). A failed build leaves no results folder; its logs are kept in a
temporary folder the error names.
"""

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import atomic
from permdeal.errors import PermdealError
from permdeal.golden.conv_walk import engine_cycles, engine_input
from permdeal.golden.rom import ROM_KIND, _config, model_from_images
from permdeal.golden.manifest import read_manifest
from permdeal.golden.model import QuantModel
from permdeal.verif import runner
from permdeal.verif.streams import PERIOD_NS

from permdeal.gen.design import Design
from permdeal.gen.smartdeal_design import SmartDealDesign

#: The cocotb test ``permdeal sim`` runs.
TEST_MODULE, TESTCASE = "permdeal.verif.tb_engine", "test_cycles"


def load_model(design: Design, images: str | Path | None = None) -> tuple[QuantModel, Path]:
    """The model of the images for ``design`` (``images`` or the design's ``rom/``), checked
    against the design's configuration and layers."""
    folder = Path(images) if images is not None else design.rom_dir
    man_path = folder / atomic.MANIFEST_NAME
    if not folder.is_dir() or not man_path.is_file():
        raise PermdealError(
            f"{folder}: no ROM images; generate the design with --model, or write them with "
            f"`permdeal rom MODEL --pes {design.cfg.n_pe} --lanes {design.cfg.lanes} -o DIR` "
            "and pass --images DIR")
    man = read_manifest(man_path, ROM_KIND)
    model = model_from_images(folder)
    design.check_model(model, _config(man, man_path), folder)
    return model, folder


def _keep_logs(build: Path, out: str | Path) -> Path | None:
    """Copy a failed run's logs out of the output folder that is about to be removed, into
    ``<out>.failed`` (:func:`permdeal.atomic.keep_failed`), and return that folder."""
    return atomic.keep_failed(out, [build / name for name in
                                    ("build.log", "sim.log", "results.xml", "config.json")])


def _kept(build: Path, out: str | Path) -> str:
    """Where a failed run's logs are kept, as the end of its one-line error."""
    kept = _keep_logs(build, out)
    if kept is None:
        return f"its logs are not kept ({out}{atomic.FAILED_SUFFIX} is a folder of yours)"
    return f"logs kept in {kept}/"


def run_design(tmp: Path, sim: str, design: Design | SmartDealDesign, rom: Path, config: dict, *,
               test_module: str, testcase: str, seed: int | None, waves: bool,
               out: str | Path) -> tuple[runner.SimResult, Path, float]:
    """Build and run ``testcase`` of the cocotb module ``test_module`` with ``config`` on the
    Verilog of ``design`` (a checked design folder: ``sources``, ``top``, ``manifest``) in
    ``tmp/build-{sim}``, the ROM images ``rom`` linked in beside it as the design's ``rom_dir``.

    Returns ``(result, build folder, wall seconds)``; a test that fails still returns its result.
    A failed build raises a one-line ``PermdealError`` naming ``<out>.failed``, where its logs
    are kept.
    """
    build = tmp / f"build-{sim}"
    build.mkdir()
    # relative, so that the link survives the rename of the folder into place
    os.symlink(os.path.relpath(rom.resolve(), build.resolve()),
               build / design.manifest["rom_dir"])
    t0 = time.perf_counter()
    try:
        result = runner.run(sim, sources=design.sources, toplevel=design.top,
                            test_module=test_module, build_dir=build, config=config,
                            seed=seed, waves=waves, testcase=testcase)
    except runner.SimulationFailed as e:
        result = e.result
    except runner.ToolMissing:
        raise
    except PermdealError as e:  # the build failed: keep its logs, the output goes away
        first = str(e).splitlines()[0] if str(e) else "the build failed"
        raise PermdealError(f"{first}; {_kept(build, out)}") from None
    return result, build, time.perf_counter() - t0


def run_checked(tmp: Path, sim: str, design: Design | SmartDealDesign, rom: Path, config: dict,
                golden: np.ndarray, layer: str, *, test_module: str, testcase: str,
                seed: int | None, waves: bool, out: str | Path, design_dir: str | Path) -> dict:
    """:func:`run_design`, then the test's outputs against ``golden`` (inputs x outputs), saved
    as ``tmp/outputs.npy``: the report's fields common to every design (the simulator, the seed,
    the mismatches, named in the last ``layer``, the RTL's ``cycles`` per input, the timings).
    Too few outputs raise a
    one-line error naming where the logs are kept."""
    result, build, wall = run_design(tmp, sim, design, rom, config, test_module=test_module,
                                     testcase=testcase, seed=seed, waves=waves, out=out)
    rep = result.report.get(testcase, {})
    observed = rep.get("observed", [])
    if len(observed) != golden.size:
        raise PermdealError(f"{sim}: the RTL gave {len(observed)} of {golden.size} outputs "
                            f"({'; '.join(rep.get('errors', [])[:2])}); {_kept(build, out)}")
    y = np.array(observed, dtype=np.int64).reshape(golden.shape)
    np.save(tmp / "outputs.npy", y)
    bad, mismatches = first_mismatches(golden, y, layer)
    return {"sim": sim, "sim_version": result.sim_version, "seed": result.seed,
            "design": str(Path(design_dir)), "images": str(rom),
            "inputs": int(golden.shape[0]), "outputs_per_input": int(golden.shape[1]),
            "golden_match": bool(bad.size == 0),
            "inputs_matching": int(np.all(y == golden, axis=1).sum()),
            "mismatches": int(len(bad)), "first_mismatches": mismatches,
            "cycles": rep.get("rtl_cycles", []), **tool_timings(result, wall, testcase)}


def first_mismatches(golden: np.ndarray, y: np.ndarray, layer: str,
                     most: int = 20) -> tuple[np.ndarray, list[dict]]:
    """``(positions, records)``: every ``(input, output)`` where the RTL's outputs ``y`` differ
    from ``golden`` (both inputs x outputs), and the first ``most`` as report records naming
    ``layer``."""
    bad = np.argwhere(y != golden)
    return bad, [{"input": int(v), "layer": layer, "output": int(i),
                  "expected": int(golden[v, i]), "observed": int(y[v, i])}
                 for v, i in bad[:most]]


def tool_timings(result: runner.SimResult, wall: float, testcase: str) -> dict:
    """The report's timings of a run (``runner`` result ``result``, ``wall`` seconds) and its
    failures: ``simulated_cycles_per_second`` is the test's clock cycles over its own time."""
    test_seconds, sim_ns = (result.timings or {}).get(testcase, (0.0, 0.0))
    simulated = int(sim_ns // PERIOD_NS)
    return {
        "build_seconds": round(result.build_seconds, 3),
        "run_seconds": round(result.run_seconds, 3), "wall_seconds": round(wall, 3),
        "simulated_cycles": simulated,
        "simulated_cycles_per_second": (round(simulated / test_seconds, 1)
                                        if test_seconds else None),
        "failures": result.failures,
    }


def simulate(design_dir: str | Path, x_codes: npt.ArrayLike, sim: str, out: str | Path, *,
             images: str | Path | None = None, seed: int | None = None, waves: bool = False,
             inputs: Iterable[str | Path] = ()) -> dict:
    """Run the design on input codes ``x_codes`` (batch x n) and write the results folder
    ``out``; returns the report dict."""
    design = Design(design_dir)
    model, rom = load_model(design, images)
    x = np.asarray(x_codes, dtype=np.int64)
    golden = model.forward(x)
    runs = [engine_cycles(model, xi, design.cfg) for xi in x]
    expected_cycles = [r.total for r in runs]
    with atomic.output_dir(out, inputs=[design_dir, rom, *inputs]) as tmp:
        config = {"in_bits": design.manifest["ports"]["in_bits"],
                  "out_bits": design.manifest["ports"]["out_bits"],
                  "inputs": engine_input(model, x).tolist(),
                  "expected": golden.tolist(), "cycles": expected_cycles}
        result, build, wall = run_design(tmp, sim, design, rom, config, test_module=TEST_MODULE,
                                         testcase=TESTCASE, seed=seed, waves=waves, out=out)
        rep = result.report.get(TESTCASE, {})
        observed = rep.get("observed", [])
        m = model.layers[-1].shape[0]
        if len(observed) != golden.size:
            raise PermdealError(f"{sim}: the RTL gave {len(observed)} of {golden.size} outputs; "
                                f"{_kept(build, out)}")
        y = np.array(observed, dtype=np.int64).reshape(golden.shape)
        np.save(tmp / "outputs.npy", y)
        bad, mismatches = first_mismatches(golden, y, model.layers[-1].name)
        rtl_cycles = rep.get("rtl_cycles", [])
        lanes = design.cfg.total_lanes
        util = [sum(l.useful_lane_cycles for l in r.layers)
                / (lanes * (c - r.load - r.unload)) for r, c in zip(runs, rtl_cycles)]
        report = {
            "sim": sim, "sim_version": result.sim_version, "seed": result.seed,
            "design": str(Path(design_dir)), "images": str(rom),
            "inputs": int(x.shape[0]), "outputs_per_input": m,
            "golden_match": bool(bad.size == 0),
            "inputs_matching": int(np.all(y == golden, axis=1).sum()),
            "mismatches": int(len(bad)), "first_mismatches": mismatches,
            "cycles": rtl_cycles, "model_cycles": expected_cycles,
            "cycles_match_model": rtl_cycles == expected_cycles,
            "lane_utilization": float(np.mean(util)) if util else None,
            "lane_utilization_per_input": util,
            **tool_timings(result, wall, TESTCASE),
        }
        atomic.write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
    return report
