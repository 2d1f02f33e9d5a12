# amaranth: UnusedElaboratable=no
"""``permdeal bench`` part ``power``: area and energy efficiency on EIE's nine layers, next to EIE
(docs/design.md section 13).

A full layer on the paper's 32 PE x 8 lane engine is too big to simulate at gate level or to
synthesize nine times, so every layer is measured at the reduced scale of the ``rtl`` part (both
sides divided by ``scale``, ``p`` and the densities kept, on ``1/scale`` of the lanes so that
``B`` is the full layer's) and carried over:

- **Energy.** ``permdeal power`` on the reduced design, random activations at the layer's
  density. Its logic energy per lane per cycle times the full engine's lanes and the full
  layer's cycles (the ``eie`` part's cycle model) is the full logic energy. Every memory kind's
  accesses per instance per cycle are carried over the same way, each access priced at the full
  design's memory size (:mod:`permdeal.synth.energy`).
- **Area.** One chip for all nine layers, as EIE's 40.8 mm^2 is one chip: the reduced design's
  logic area per lane (OSU 0.18 um, the asic mapping) times the full engine's lanes, plus the
  memories of the largest of the nine layers' full designs (the per-bit models of
  :mod:`permdeal.synth.memory`, the measured layer's number formats). The area of a design
  sized for the layer alone is kept too (``layer_sized_*``).
- **Efficiency.** Work is the layer's dense-equivalent operations, ``2 * out * in``, for both
  designs, so a ratio of efficiencies is the ratio of times (or energies) times the inverse ratio
  of areas. Area efficiency is taken at EIE's clock (800 MHz) on the area scaled to 45 nm by
  ``(45/180)^2``; energy efficiency on the energy scaled to 45 nm by ``1/16``
  (:func:`permdeal.synth.energy.node_energy_scale`). The raw 0.18 um figures are kept.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from permdeal.gen.design import write_design
from permdeal.golden.formats import LayerFormats
from permdeal.golden.geometry import EngineLayer
from permdeal.golden.workloads import EIE, EIE_LAYERS, EieLayer
from permdeal.hdl.engine import Engine
from permdeal.synth import energy as energy_model
from permdeal.synth import memory
from permdeal.synth.tools import liberty

from . import engine_bench
from . import power as power_api

__all__ = ["AREA_SCALE_180_TO_45", "PAPER_AREA_EFFICIENCY", "PAPER_ENERGY_EFFICIENCY",
           "layer_efficiency"]

#: PermDNN's claims against EIE (docs/references.md [paper]).
PAPER_AREA_EFFICIENCY, PAPER_ENERGY_EFFICIENCY = (5.9, 8.5), (2.8, 4.0)
#: First-order area scaling from 0.18 um to EIE's 45 nm.
AREA_SCALE_180_TO_45 = memory.node_scale(memory.OSU_NM, 45)
#: EIE's published design: 64 PEs, 45 nm, 800 MHz, 40.8 mm^2, 0.59 W (docs/references.md).
EIE_AREA_MM2, EIE_POWER_W = 40.8, 0.59


def _full_engine(layer: EieLayer, p: int, fmts: LayerFormats, cfg) -> Engine:
    """The full layer's engine (not elaborated), for its memory shapes."""
    full = EngineLayer(layer.name, layer.n_in, layer.n_out, p, True,
                       LayerFormats(fmts.act, fmts.weight, fmts.bias, fmts.out,
                                    -(-layer.n_in // p)))
    # (its memory shapes need no images: the folder is named, never read)
    return Engine(cfg, [full], images=Path("rom"), check_images=False)


def _memories(engine: Engine) -> dict:
    """The asic report's memories of ``engine`` (the default per-bit models)."""
    return memory.memories(engine, memory.sram_model(), memory.register_file_model(liberty(None)))


@functools.lru_cache(maxsize=None)
def chip_memory_um2(fmts: LayerFormats, cfg) -> float:
    """Memory area of one chip for the nine layers, as EIE's 40.8 mm^2 is one chip: the largest
    of the nine layers' full designs on ``cfg`` in formats ``fmts`` (computed once a run)."""
    from .bench import block_size  # (bench imports this module)
    return max(_memories(_full_engine(layer, block_size(layer), fmts, cfg))["total"]["area_um2"]
               for layer in EIE_LAYERS)


def layer_efficiency(layer: EieLayer, row: dict[str, Any], scale: int, cfg_small, cfg_full,
                     inputs: int, workdir: Path, seed: int) -> dict[str, Any]:
    """The ``power`` part's figures of one layer: ``row`` is its ``eie`` part row (full-scale
    cycles), ``cfg_small`` the reduced engine, ``cfg_full`` the paper's (both of one lane
    group, as the row's)."""
    from .bench import block_size, layer_seed, scaled_shape  # (bench imports this module)
    p = block_size(layer)
    m, n = scaled_shape(layer, scale)
    s = layer_seed(seed, layer)
    model = engine_bench.random_layer_model(m, n, p, s)
    x = engine_bench.random_inputs(model, inputs, layer.act_density, s)
    workdir = Path(workdir)
    design = workdir / "design"
    write_design(design, cfg_small, model.layers, model=model)
    rep = power_api.run(design, x, workdir / "power", seed=seed, what=f"{layer.name} inputs")
    lanes_small, lanes_full = cfg_small.total_lanes, cfg_full.total_lanes
    cycles_small = rep["simulated_cycles"]
    per_lane_cycle_pj = (rep["energy"]["logic_pj"] * rep["inputs"]) / (cycles_small * lanes_small)
    cycles_full = row["cycles_mean"]
    logic_full_pj = per_lane_cycle_pj * lanes_full * cycles_full
    full = _full_engine(layer, p, model.layers[0].fmts, cfg_full)
    mems = _memories(full)
    mem_full = {}
    for kind, k in rep["memories"].items():
        rate = (k["reads"] + k["writes"]) / (k["instances"] * cycles_small)
        f = mems["kinds"][kind]
        mem_full[kind] = (rate * f["instances"] * cycles_full
                          * energy_model.access_pj(f["width"], f["depth"]))
    energy_full_pj = logic_full_pj + sum(mem_full.values())
    logic_um2 = rep["area"]["logic_um2"] / lanes_small * lanes_full
    area_um2 = logic_um2 + mems["total"]["area_um2"]
    chip_um2 = logic_um2 + chip_memory_um2(model.layers[0].fmts, cfg_full)
    ops = 2.0 * layer.n_out * layer.n_in
    scale_e = energy_model.node_energy_scale()
    area45_mm2 = chip_um2 * AREA_SCALE_180_TO_45 / 1e6
    seconds_eie_clock = cycles_full / (EIE["clock_mhz"] * 1e6)
    seconds_ours = cycles_full / (rep["clock_mhz"] * 1e6)
    gops_eie_clock = ops / seconds_eie_clock / 1e9
    eie_gops = ops / (layer.actual_us * 1e-6) / 1e9
    out = {
        "name": layer.name, "scaled_shape": [m, n], "p": p, "reduced_engine": cfg_small.to_json(),
        "reduced_inputs": inputs, "reduced_clock_mhz": rep["clock_mhz"],
        "reduced_golden_match": rep["golden_match"] and rep["cycles_match_model"],
        "ops_dense_equivalent": ops, "cycles_full": cycles_full,
        "logic_pj_per_lane_cycle": per_lane_cycle_pj,
        "energy_pj_0p18um": energy_full_pj, "logic_pj_0p18um": logic_full_pj,
        "memory_pj_0p18um": mem_full,
        "energy_pj_45nm": energy_full_pj / scale_e,
        "area_mm2_0p18um": chip_um2 / 1e6, "logic_area_mm2_0p18um": logic_um2 / 1e6,
        "area_mm2_45nm": area45_mm2,
        "layer_sized_area_mm2_0p18um": area_um2 / 1e6,
        "layer_sized_gops_per_mm2": gops_eie_clock / (area_um2 * AREA_SCALE_180_TO_45 / 1e6),
        "gops_at_eie_clock": gops_eie_clock,
        "gops_at_our_fmax_0p18um": ops / seconds_ours / 1e9,
        "gops_per_mm2": gops_eie_clock / area45_mm2,
        "gops_per_mm2_0p18um": ops / seconds_ours / 1e9 / (chip_um2 / 1e6),
        "gops_per_w": ops / (energy_full_pj / scale_e * 1e-12) / 1e9,
        "gops_per_w_0p18um": ops / (energy_full_pj * 1e-12) / 1e9,
        "eie_gops": eie_gops, "eie_gops_per_mm2": eie_gops / EIE_AREA_MM2,
        "eie_gops_per_w": eie_gops / EIE_POWER_W,
    }
    out["area_efficiency_vs_eie"] = out["gops_per_mm2"] / out["eie_gops_per_mm2"]
    out["energy_efficiency_vs_eie"] = out["gops_per_w"] / out["eie_gops_per_w"]
    return out


def scaling_rules() -> dict[str, str]:
    """The scaling rules, printed beside every scaled number."""
    return {"area": f"A_45nm = A_180nm * (45/180)^2 = A_180nm * {AREA_SCALE_180_TO_45:g}",
            "energy": energy_model.MODEL["scaling"],
            "clock": f"area efficiency at EIE's clock, {EIE['clock_mhz']:g} MHz, for both",
            "work": "2 * out * in dense-equivalent operations a layer, for both designs",
            "chip": "one chip for the nine layers, as EIE's: this layer's logic per lane times "
                    "the full engine's lanes, plus the memories of the largest layer's design",
            "carry_over": "energy per lane per cycle and memory accesses per instance per "
                          "cycle of the reduced design, times the full engine's lanes and the "
                          "full layer's cycles",
            "groups": "both engines of one lane group (the cycles too): per-lane figures do not "
                      "carry over between different group counts (lane groups' energy is not "
                      "measured here yet)"}

