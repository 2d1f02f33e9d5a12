"""``permdeal sim`` of a SmartDeal design: its Verilog on a batch of inputs, against golden.

The design folder's network (``hdl.smartdeal_net``) runs under ``verif/tb_smartdeal_layer.py``'s
``test_cycles``: one input vector at a time, no idle, the output always ready, each vector's
outputs compared with ``SmartDealModel.forward`` and its cycles with
``golden.smartdeal_cycles.model_cycles``. The ROM images are linked in as ``rom/`` beside the build.
The results folder gets ``outputs.npy`` (the RTL's outputs, one row per input vector) and
``report.json``: per vector whether every output matched, the mismatches (vector, layer, output,
expected, observed), the RTL's and the model's cycles, cycles per rebuilt weight and per output,
and the tool's timings. A failed build leaves no results folder; its logs are kept in a temporary
folder the error names.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import atomic
from permdeal.golden.smartdeal_cycles import model_cycles
from permdeal.verif.tb_smartdeal_layer import bench_config

from permdeal.gen.smartdeal_design import SmartDealDesign

from .activity import Bench
from .sim import run_checked

#: The cocotb test ``permdeal sim`` runs.
TEST_MODULE, TESTCASE = "permdeal.verif.tb_smartdeal_layer", "test_cycles"


def bench(design: SmartDealDesign, model, x_codes: npt.ArrayLike) -> Bench:
    """The test ``permdeal sim`` runs on the SmartDeal design ``design`` (its images'
    ``model``) with input codes ``x_codes``, as :mod:`.activity` records it."""
    config = bench_config(model, np.asarray(x_codes, dtype=np.int64), design.lanes)
    return Bench(TEST_MODULE, TESTCASE, config, np.asarray(config["expected"], dtype=np.int64),
                 [config["cycles"]] * len(config["inputs"]))


def simulate(design_dir: str | Path, x_codes: npt.ArrayLike, sim: str, out: str | Path, *,
             images: str | Path | None = None, seed: int | None = None, waves: bool = False,
             inputs: Iterable[str | Path] = ()) -> dict:
    """Run the design on input codes ``x_codes`` (vectors x n) and write the results folder
    ``out``; returns the report dict."""
    design = SmartDealDesign(design_dir)
    model, rom = design.load_model(images)
    x = np.asarray(x_codes, dtype=np.int64)
    b = bench(design, model, x)
    config, golden = b.config, b.golden
    cyc = model_cycles(model, design.lanes)
    with atomic.output_dir(out, inputs=[design_dir, rom, *inputs]) as tmp:
        report = run_checked(tmp, sim, design, rom, config, golden, model.layers[-1].name,
                             test_module=TEST_MODULE, testcase=TESTCASE, seed=seed, waves=waves,
                             out=out, design_dir=design_dir)
        report.update({
            "model_cycles": cyc.total,
            "cycles_match_model": report["cycles"] == [cyc.total] * len(x),
            "layers": [{"name": l.name, **lc.to_json()} for l, lc in zip(model.layers,
                                                                         cyc.layers)]})
        atomic.write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
    return report
