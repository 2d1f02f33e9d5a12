"""A SmartDeal model on the SmartDeal engine (``hdl.smartdeal_engine``) in RTL, against golden.

:func:`simulate` emits the engine for a model and a lane count into a build folder, runs
``verif/tb_smartdeal_engine.py``'s ``test_cycles`` (one input vector at a time, no idle, the output
always ready: every output against ``SmartDealModel.forward``, every vector's cycles against
``golden.smartdeal_engine_cycles.model_cycles``) and, with ``streams``, also ``test_streams``
(random idle and back-pressure). It returns a report: the RTL's outputs, the mismatches, the RTL's
and the model's cycles and the model's utilization.

:func:`simulate_design` is ``permdeal sim`` of an engine design folder
(``gen.smartdeal_engine_design``): its own Verilog under the same ``test_cycles``, the golden
outputs from the model its ``rom/`` holds, and a results folder as ``verif.sim`` writes one
(``outputs.npy``, ``report.json``: per vector whether every output matched, the mismatches, the
RTL's and the model's cycles, the model's utilization per vector and per layer, the tool's
timings). A failed build leaves no results folder; its logs are kept in ``<out>.failed``.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import atomic
from permdeal.errors import PermdealError
from permdeal.gen.smartdeal_engine_design import (SmartDealEngineDesign, layer_figures,
                                                  pad_batches)
from permdeal.golden.smartdeal_engine_cycles import model_cycles

from . import runner
from .activity import Bench
from .sim import first_mismatches, run_checked
from .tb_smartdeal_engine import bench_config, deinterleave

#: The cocotb test module, and the test ``permdeal sim`` runs.
TEST_MODULE, TESTCASE = "permdeal.verif.tb_smartdeal_engine", "test_cycles"


def simulate(model, x_codes: npt.ArrayLike, lanes: int, sim: str, build: str | Path, *,
             batch: int = 1, seed: int | None = None, streams: bool = False) -> dict:
    """Run ``model`` (a ``SmartDealModel``) on ``lanes`` lanes, ``batch`` vectors at a time, over
    input codes ``x_codes`` (vectors x n, whole batches) on ``sim`` in the folder ``build``;
    returns the report (module docstring; cycles and utilization per batch)."""
    from permdeal.gen.verilog import emit
    from permdeal.hdl.smartdeal_engine import SmartDealEngine

    build = Path(build)
    build.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x_codes, dtype=np.int64)
    top = SmartDealEngine(model.layers, lanes, batch=batch)
    emit(top, "smartdeal_engine", build / "smartdeal_engine.v")
    config = bench_config(model, x, lanes, batch)
    golden = np.asarray(config["expected"], dtype=np.int64)
    cyc = model_cycles(model, x, lanes, batch=batch)
    try:
        result = runner.run(sim, sources=[build / "smartdeal_engine.v"],
                            toplevel="smartdeal_engine", test_module=TEST_MODULE,
                            build_dir=build, config=config, seed=seed,
                            testcase=None if streams else "test_cycles")
        failed = None
    except runner.SimulationFailed as e:
        result, failed = e.result, str(e)
    rep = result.report.get("test_cycles", {})
    observed = rep.get("observed", [])
    if len(observed) != golden.size:
        raise PermdealError(f"{sim}: the RTL gave {len(observed)} of {golden.size} outputs "
                            f"({failed or 'no failure reported'}); logs in {build}")
    y = np.array(observed, dtype=np.int64).reshape(golden.shape)
    golden, y = deinterleave(golden, batch), deinterleave(y, batch)
    rtl_cycles = rep.get("rtl_cycles", [])
    return {
        "sim": sim, "seed": result.seed, "lanes": lanes, "batch": batch,
        "vectors": int(x.shape[0]),
        "tests": list(result.tests), "failures": result.failures,
        "outputs": y, "golden_match": bool(np.array_equal(y, golden)),
        "vectors_matching": int(np.all(y == golden, axis=1).sum()),
        "rtl_cycles": rtl_cycles, "model_cycles": [c.total for c in cyc],
        "cycles_match_model": rtl_cycles == [c.total for c in cyc],
        "utilization": [c.utilization for c in cyc],
        "streams": result.report.get("test_streams"),
        "build_seconds": result.build_seconds, "run_seconds": result.run_seconds,
    }


def bench(design: SmartDealEngineDesign, model, x_codes: npt.ArrayLike) -> Bench:
    """The test ``permdeal sim`` runs on the engine design ``design`` (its images' ``model``)
    with input codes ``x_codes``, as :mod:`.activity` records it."""
    config = bench_config(model, np.asarray(x_codes, dtype=np.int64), design.lanes,
                          design.batch)
    return Bench(TEST_MODULE, TESTCASE, config, np.asarray(config["expected"], dtype=np.int64),
                 list(config["vector_cycles"]))


def simulate_design(design_dir: str | Path, x_codes: npt.ArrayLike, sim: str, out: str | Path, *,
                    images: str | Path | None = None, seed: int | None = None,
                    waves: bool = False, inputs: Iterable[str | Path] = ()) -> dict:
    """Run the engine design folder ``design_dir`` on input codes ``x_codes`` (vectors x n) and
    write the results folder ``out``; returns the report dict (module docstring). ``images`` is
    refused (the engine's codes are in its Verilog). With a batch the inputs are padded with zero
    vectors to whole batches; the outputs and the comparison are of the real vectors, the cycles
    per batch."""
    design = SmartDealEngineDesign(design_dir)
    model, rom = design.load_model(images)
    V = design.batch
    x, pad = pad_batches(x_codes, V)
    b = bench(design, model, x)
    cyc = model_cycles(model, x, design.lanes, batch=V)
    expected = [c.total for c in cyc]
    with atomic.output_dir(out, inputs=[design_dir, *inputs]) as tmp:
        report = run_checked(tmp, sim, design, rom, b.config, b.golden, model.layers[-1].name,
                             test_module=TEST_MODULE, testcase=TESTCASE, seed=seed, waves=waves,
                             out=out, design_dir=design_dir)
        if V > 1:   # the batches' interleaved streams back to vectors, the padding dropped
            n = len(x) - pad
            y = deinterleave(np.load(tmp / "outputs.npy"), V)[:n]
            golden = deinterleave(b.golden, V)[:n]
            np.save(tmp / "outputs.npy", y)
            bad, mismatches = first_mismatches(golden, y, model.layers[-1].name)
            report.update({"inputs": n, "outputs_per_input": int(golden.shape[1]),
                           "golden_match": bool(bad.size == 0),
                           "inputs_matching": int(np.all(y == golden, axis=1).sum()),
                           "mismatches": int(len(bad)), "first_mismatches": mismatches})
        report.update({"padding": pad,
            "arch": "engine", "pes": design.pes, "lanes_per_pe": design.lanes_per_pe,
            "lanes": design.lanes, "batch": design.batch, "model_cycles": expected,
            "cycles_match_model": report["cycles"] == expected,
            "lane_utilization": float(np.mean([c.utilization for c in cyc])),
            "lane_utilization_per_input": [c.utilization for c in cyc],
            "layers": layer_figures(model, cyc)})
        atomic.write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
    return report
