"""``permdeal bench-smartdeal --parts hardware``: the PermDNN engine and the SmartDeal engine side
by side on one network at one multiplier budget (issue 17's comparison).

The digits MLP of the ``engine`` part (``bench_smartdeal.digits_models``): its PD form at
``p = 4`` on the PermDNN engine of ``PD_ENGINE`` (4 PE x 2 lanes), and its SmartDeal form pruned
:data:`PRUNE` in groups of 8 and fine-tuned on the SmartDeal engine of as many MAC lanes, at batch 1
and at batch ``ENGINE_BATCH``. For each design: accuracy (golden, 450 test images), cycles per
image and MAC-lane utilization (the cycle models, which the RTL meets), weight storage (the
model's bits), OSU 0.18 um logic area, memory bits and area (every memory apart, priced per bit:
``synth.memory``), OpenSTA's Fmax, images per second at that clock, and the energy per image from
``permdeal power`` on the first :data:`IMAGES` test images (simulated activity, OpenSTA's power on
the netlist, memories by their access counts), at each design's own Fmax.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from permdeal.tables import table

from .bench_smartdeal import ENGINE_BATCH, ENGINE_LANES, PD_ENGINE, digits_models

__all__ = ["IMAGES", "PRUNE", "hardware_figures", "hardware_table", "storage_bits"]

#: The SmartDeal model's fraction of Ce rows pruned (in groups of ENGINE_LANES outputs): the
#: least of the engine part's that meets issue 17's cycle target at batch 1.
PRUNE = 0.55
#: Test images whose simulated activity gives the energy (a whole number of batches).
IMAGES = 2 * ENGINE_BATCH


def storage_bits(model) -> int:
    """A compressed model's weight storage: PD, ``bits`` per stored weight plus the ``ceil(log2
    p)``-bit index of every block (docs/design.md 4.1); SmartDeal, its layers' Ce and B codes
    (fixed-width codes, docs/design.md 5.2)."""
    if hasattr(model.layers[0], "matrix"):
        return sum(l.fmts.weight.bits * l.matrix.n_weights + l.matrix.index_bits_total
                   for l in model.layers)
    return sum(l.report["storage_bits"]["smartdeal_fixed"] for l in model.layers)


def _figures(folder: Path, model, codes, y, cycles: float, utilization: float,
             images: np.ndarray, work: Path) -> dict[str, Any]:
    """One design's row: the model's accuracy and storage, the cycle model's figures, and the
    design's synthesis (asic) and energy (``permdeal power`` on ``images``)."""
    from .designs import synthesize
    from .power import energy
    syn = synthesize(folder, ("asic",), work / "synth")["asic"]
    pw = energy(folder, images, work / "power")
    fmax = syn["fmax_mhz"]
    return {"accuracy": float(np.mean(np.argmax(model.forward(codes), 1) == y)),
            "cycles": cycles, "utilization": utilization,
            "storage_bits": int(storage_bits(model)),
            "logic_um2": syn["logic_area_um2"], "memory_bits": syn["memories"]["total"]["bits"],
            "memory_um2": syn["memories"]["total"]["area_um2"],
            "total_um2": syn["total_area_um2"], "fmax_mhz": fmax,
            "images_per_s": fmax * 1e6 / cycles,
            "energy_pj": pw["energy_per_inference_pj"],
            "energy_clock_mhz": pw["clock_mhz"]}


def hardware_figures(S: int, E: int, b_bits: int, seed: int,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The ``hardware`` part (module docstring)."""
    from permdeal.gen.smartdeal_engine_design import write_engine_design
    from permdeal.golden import smartdeal_engine_cycles as ec
    from permdeal.golden.cycles import EngineConfig, model_cycles

    from .designs import generate

    say = progress or (lambda text: None)
    t0 = time.perf_counter()
    dm = digits_models(S, E, b_bits, seed)
    _, _, X_te, y_te = dm["split"]
    pdm, sdm = dm["pd"], dm["pruned"](PRUNE)
    pes, lanes, p = PD_ENGINE
    pd_codes, _ = pdm.quantize_input(X_te)
    sd_codes, _ = sdm.quantize_input(X_te)
    pd_runs = [model_cycles(pdm, x, EngineConfig(pes, lanes)) for x in pd_codes]
    whole = len(sd_codes) - len(sd_codes) % ENGINE_BATCH
    rows = {}
    with tempfile.TemporaryDirectory(prefix="permdeal-bench-hw-") as tmp:
        tmp = Path(tmp)
        say(f"PermDNN engine {pes} PE x {lanes} lanes: synthesis and energy")
        design = generate(pdm, pes, lanes, output=tmp / "pd" / "design")
        rows["permdiag"] = _figures(
            design.folder, pdm, pd_codes, y_te, float(np.mean([r.total for r in pd_runs])),
            float(np.mean([r.utilization for r in pd_runs])), X_te[:IMAGES], tmp / "pd")
        for batch in (1, ENGINE_BATCH):
            say(f"SmartDeal engine {ENGINE_LANES} lanes, batch {batch}: synthesis and energy")
            folder = tmp / f"sd{batch}" / "design"
            write_engine_design(folder, sdm, ENGINE_LANES, batch=batch)
            runs = ec.model_cycles(sdm, sd_codes[:whole] if batch > 1 else sd_codes, ENGINE_LANES,
                                   batch=batch)
            rows[f"smartdeal_batch{batch}"] = _figures(
                folder, sdm, sd_codes, y_te, float(np.mean([r.per_vector for r in runs])),
                float(np.mean([r.utilization for r in runs])), X_te[:IMAGES], tmp / f"sd{batch}")
    return {"seed": seed, "sizes": dm["sizes"], "prune": PRUNE, "lanes": ENGINE_LANES,
            "pes": pes, "lanes_per_pe": lanes, "p": p, "batch": ENGINE_BATCH,
            "energy_images": IMAGES, "designs": rows,
            "seconds": round(time.perf_counter() - t0, 1)}


def hardware_table(h: dict[str, Any]) -> str:
    """The side-by-side table of :func:`hardware_figures`."""
    d = h["designs"]
    cols = [("permdiag", f"PermDNN, {h['pes']} PE x {h['lanes_per_pe']} lanes, p = {h['p']}"),
            ("smartdeal_batch1", f"SmartDeal, {h['lanes']} lanes, {100 * h['prune']:.0f}% "
                                 "pruned, batch 1"),
            (f"smartdeal_batch{h['batch']}", f"same, batch {h['batch']}")]
    pct = lambda v: f"{100 * v:.1f}%"
    mm2 = lambda v: f"{v / 1e6:.3f} mm^2"
    lines = [("accuracy (golden, 450 test images)", lambda r: pct(r["accuracy"])),
             ("cycles per image", lambda r: f"{r['cycles']:.1f}"),
             ("MAC-lane utilization", lambda r: pct(r["utilization"])),
             ("weight storage (model)", lambda r: f"{r['storage_bits']:,} bits"),
             ("logic, OSU 0.18 um", lambda r: mm2(r["logic_um2"])),
             ("memories (bits, area by the per-bit models)",
              lambda r: f"{r['memory_bits']:,} bits, {mm2(r['memory_um2'])}"),
             ("total area", lambda r: mm2(r["total_um2"])),
             ("Fmax (OpenSTA)", lambda r: f"{r['fmax_mhz']:.1f} MHz"),
             ("images per second at Fmax", lambda r: f"{r['images_per_s']:,.0f}"),
             (f"energy per image (permdeal power, {h['energy_images']} images)",
              lambda r: f"{r['energy_pj'] / 1000:,.1f} nJ")]
    rows = [[name, *(fmt(d[key]) for key, _ in cols)] for name, fmt in lines]
    return (f"\nPermDNN and SmartDeal engines at {h['lanes']} multipliers, digits MLP "
            f"{'-'.join(map(str, h['sizes']))} (seed {h['seed']}, {h['seconds']:.0f} s)\n"
            + table(["figure", *(label for _, label in cols)], rows, "l" + "r" * len(cols)))
