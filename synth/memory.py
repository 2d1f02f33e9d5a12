"""Memories, counted apart from logic (docs/design.md section 8).

The engine keeps every lane's weight, k and bias words in ROMs (``permdeal_rom`` instances in the
top), and its accumulators and activation banks in RAMs (``hdl.ram.Ram`` modules, listed by
``Engine.ram_memories``). Standard-cell synthesis does not build memories, so on ``generic`` and
``asic`` all of them are black boxes and the ASIC report counts their bits and prices them per bit
(:func:`memories`); on ECP5 they are synthesized (block RAM or LUTs).

Two area models. The ROMs, and any RAM of more than :data:`RF_MAX_BITS` bits, are SRAM
(:func:`sram_model`). A smaller RAM is a standard-cell latch register file
(:func:`register_file_model`): per bit one latch and one 2:1 multiplexer's share of the read
multiplexer (a ``D``-word column needs ``D - 1`` of them), both cells' areas read from the cell
library at run time.

The model's default is derived from EIE's published per-PE figures (docs/references.md): 162 KB of SRAM
is 93% of a 0.638 mm^2 PE in 45 nm, i.e. ``0.93 * 638000 / (162 * 1024 * 8) = 0.447 um^2`` per
bit including the arrays' periphery; scaled to 0.18 um by ``(180 / 45)^2 = 16`` that is
``7.15 um^2`` per bit. It is a first-order model, not a measurement (no SRAM compiler is
installed): the report labels the figure as such, and ``--sram-um2-per-bit`` sets another.
"""

import re
from pathlib import Path

from permdeal.checks import positive
from permdeal.errors import PermdealError
from permdeal.golden.geometry import MEMORIES
from permdeal.hdl.engine import Engine
from permdeal.hdl.rom import ROM_MODULE

__all__ = ["PAPER", "RF_MAX_BITS", "RULE", "SRAM_UM2_PER_BIT", "area_model", "memories",
           "memory_kinds", "node_scale", "paper_comparison", "price", "register_file_model",
           "rom_part", "sram_model"]

#: RAMs of at most this many bits (one instance) are priced as latch register files, larger ones
#: as SRAM. A choice of this project (docs/design.md 8), not a measured crossover: below a few
#: kilobits an SRAM macro's fixed periphery (decoders, sense amplifiers, timing) is a large part of
#: its area, which the per-bit SRAM figure (taken from large arrays) leaves out.
RF_MAX_BITS = 4096
#: The pricing rule of :func:`area_model`, as the reports state it.
RULE = (f"ROMs, and RAMs of more than {RF_MAX_BITS} bits an instance: SRAM; smaller RAMs: latch "
        "register file")


def area_model(rom: bool, width: int, depth: int) -> str:
    """The area model of one memory instance of ``width`` x ``depth`` bits (:data:`RULE`):
    ``"sram"`` or ``"register file"``."""
    return "sram" if rom or width * depth > RF_MAX_BITS else "register file"


def price(kinds: dict, models: dict) -> dict:
    """Price every memory kind of ``kinds`` (``{kind: {width, depth, instances, model}}``, the
    model a key of ``models``) in place: its ``bits``, ``um2_per_bit`` and ``area_um2``; returns
    the totals ``{bits, area_um2}``."""
    total_bits = total_area = 0
    for k in kinds.values():
        k["bits"] = k["width"] * k["depth"] * k["instances"]
        k["um2_per_bit"] = models[k["model"]]["um2_per_bit"]
        k["area_um2"] = round(k["bits"] * k["um2_per_bit"], 1)
        total_bits += k["bits"]
        total_area += k["area_um2"]
    return {"bits": total_bits, "area_um2": round(total_area, 1)}

#: EIE's SRAM area per bit in 45 nm (docs/references.md), and the scaling to 0.18 um.
EIE_UM2_PER_BIT_45NM = 0.93 * 0.638e6 / (162 * 1024 * 8)
SCALE_45_TO_180 = (180 / 45) ** 2

#: The PermDNN paper's design point (docs/references.md; a secondary source's figures).
PAPER = {"design": "PermDNN, 32 PE x 8 multipliers, 16 bit, 28 nm", "n_pe": 32, "lanes": 8,
         "node_nm": 28, "clock_mhz": 1200, "area_mm2": 8.85, "peak_gops": 614.4,
         "source": "docs/references.md (Deng et al., MICRO 2018; [2nd])"}
#: The node of the OSU cells.
OSU_NM = 180


def node_scale(from_nm: float, to_nm: float) -> float:
    """First-order area scaling between process nodes: ``(to_nm / from_nm)^2``."""
    return (to_nm / from_nm) ** 2


def paper_comparison(n_pe: int, lanes: int, logic_um2: float, total_um2: float,
                     asic_mhz: float | None = None) -> dict:
    """The design next to :data:`PAPER`: what the tools measured (0.18 um logic area), the
    first-order scaling of it to the paper's node (labelled, with its formula) and, at a
    given ASIC clock (the measured Fmax), the peak throughput and area efficiency on the scaled area."""
    k = node_scale(OSU_NM, PAPER["node_nm"])
    out = {
        "paper": PAPER,
        "this_design": {"n_pe": n_pe, "lanes": lanes, "multipliers": n_pe * lanes,
                        "logic_area_mm2_0p18um": round(logic_um2 / 1e6, 4),
                        "total_area_mm2_0p18um": round(total_um2 / 1e6, 4)},
        "scaled": {"formula": f"A_{PAPER['node_nm']}nm = A_{OSU_NM}nm * ({PAPER['node_nm']}/"
                              f"{OSU_NM})^2 = A_{OSU_NM}nm * {k:.5f}",
                   "caveat": "first-order scaling of a 0.18 um synthesis, not a measurement at "
                             f"{PAPER['node_nm']} nm (wires, SRAM macros and cell libraries do "
                             "not scale like this)",
                   "logic_area_mm2": round(logic_um2 * k / 1e6, 4),
                   "total_area_mm2": round(total_um2 * k / 1e6, 4)},
    }
    if asic_mhz is not None:
        gops = 2 * n_pe * lanes * asic_mhz / 1000
        out["scaled"].update(clock_mhz=asic_mhz, peak_gops=round(gops, 2),
                             gops_per_mm2=round(gops / (total_um2 * k / 1e6), 2))
        out["paper"] = {**PAPER, "gops_per_mm2": round(PAPER["peak_gops"] / PAPER["area_mm2"],
                                                       2)}
    return out
SRAM_UM2_PER_BIT = round(EIE_UM2_PER_BIT_45NM * SCALE_45_TO_180, 2)


def sram_model(um2_per_bit: float | None = None) -> dict:
    """The SRAM area model as the report records it."""
    if um2_per_bit is None:
        return {"um2_per_bit": SRAM_UM2_PER_BIT, "source":
                f"EIE 45 nm SRAM: 0.93 * 0.638 mm^2 / 162 KB = {EIE_UM2_PER_BIT_45NM:.3f} um^2/bit, "
                f"scaled by (180/45)^2 = {SCALE_45_TO_180:g} to 0.18 um (a model, not a "
                "measurement)"}
    value = positive(um2_per_bit, "--sram-um2-per-bit")
    return {"um2_per_bit": value, "source": "given by the user (--sram-um2-per-bit)"}


def rom_part(mems: dict) -> dict:
    """The weight, k and bias ROMs of a :func:`memories` report: ``{memory: {width, depth,
    instances, bits, area_um2}, "total": {bits, area_um2}}`` (the report's ``weight_memory``)."""
    keys = ("width", "depth", "instances", "bits", "area_um2")
    out = {mem: {k: mems["kinds"][mem][k] for k in keys} for mem in MEMORIES}
    bits = sum(out[mem]["bits"] for mem in MEMORIES)
    out["total"] = {"bits": bits,
                    "area_um2": round(bits * mems["models"]["sram"]["um2_per_bit"], 1)}
    return out


# -- the register-file model, from the cell library ----------------------------------------------

def _liberty_cells(text):
    """``{cell: (area, is_latch)}`` of a liberty file's text."""
    out = {}
    starts = [(m.start(), m[1]) for m in re.finditer(r'\bcell\s*\(\s*"?([\w$]+)"?\s*\)', text)]
    for i, (pos, name) in enumerate(starts):
        body = text[pos:starts[i + 1][0] if i + 1 < len(starts) else len(text)]
        area = re.search(r"\barea\s*:\s*([\d.eE+-]+)", body)
        out[name] = (float(area[1]) if area else 0.0, re.search(r"\blatch\s*\(", body) is not None)
    return out


def _lef_area(lef, cell):
    """Width times height of ``cell``'s ``SIZE`` in LEF text ``lef``, or None."""
    m = re.search(rf"^MACRO\s+{re.escape(cell)}\s*$.*?^\s*SIZE\s+([\d.]+)\s+BY\s+([\d.]+)",
                  lef, re.M | re.S)
    return None if m is None else round(float(m[1]) * float(m[2]), 3)


def register_file_model(liberty: str | Path) -> dict:
    """The latch register-file area model of the cell library ``liberty``: per bit the area of its
    smallest latch cell plus one 2:1 multiplexer (its smallest ``MUX2`` cell), the read
    multiplexer's share. A latch whose liberty area is 0 (the OSU 0.18 um liberty's ``LATCH``) is
    measured in the LEF file beside the liberty (same name, ``.lef``) instead."""
    path = Path(liberty)
    try:
        cells = _liberty_cells(path.read_text(errors="replace"))
    except OSError as e:
        raise PermdealError(f"cannot read the liberty file {path}: {e}") from None
    latches = sorted((n for n, (_, latch) in cells.items() if latch),
                     key=lambda n: (cells[n][0] or float("inf"), n))
    muxes = sorted((n for n in cells if n.upper().startswith("MUX2") and cells[n][0] > 0),
                   key=lambda n: (cells[n][0], n))
    if not latches or not muxes:
        raise PermdealError(f"{path}: the register-file model needs a latch cell and a MUX2 cell, "
                            "and the liberty file lacks one")
    latch, mux = latches[0], muxes[0]
    latch_um2, where = cells[latch][0], f"{path.name} (liberty)"
    if latch_um2 <= 0:
        lef = path.with_suffix(".lef")
        found = _lef_area(lef.read_text(errors="replace"), latch) if lef.is_file() else None
        if not found:
            raise PermdealError(f"{path}: latch cell {latch} has area 0 and no LEF {lef.name} "
                                "beside it gives its size")
        latch_um2, where = found, f"{lef.name} (SIZE; the liberty gives area 0)"
    per_bit = round(latch_um2 + cells[mux][0], 3)
    return {"um2_per_bit": per_bit, "latch_cell": latch, "latch_um2": latch_um2,
            "mux_cell": mux, "mux_um2": cells[mux][0],
            "source": f"latch register file: {latch} {latch_um2:g} um^2 from {where} + {mux} "
                      f"{cells[mux][0]:g} um^2 (the read multiplexer's share) per bit "
                      "(a model, not a layout)"}


# -- every memory of the engine -------------------------------------------------------------------

#: Report names of the memory kinds, in report order.
KINDS = (*MEMORIES, "accumulator", "activation bank")


def memory_kinds(engine: Engine) -> dict[str, dict]:
    """Every memory kind of ``engine``: its module, ``width``, ``depth``, ``instances`` (and a
    RAM's ``granularity`` and ``modules``, ``{module: instances}``: a lane's accumulator sets of
    two depths are two modules, counted as one memory of both depths), in :data:`KINDS`
    order."""
    out = {mem: {"module": ROM_MODULE, "width": width, "depth": depth,
                 "instances": engine.rom_instances[mem]}
           for mem, (width, depth) in engine.lane_memories.items()}
    for module, r in engine.ram_memories.items():
        if r["kind"] in out:
            # a second module of a kind (a lane's accumulator sets of two depths): counted as
            # one memory a lane of both depths
            k = out[r["kind"]]
            if (k["width"], k["instances"]) != (r["width"], r["instances"]):
                raise PermdealError(f"{r['kind']}: modules {k['module']} and {module} differ in "
                                    f"width or count")
            k["modules"][module] = r["instances"]
            k["depth"] += r["depth"]
            continue
        out[r["kind"]] = {"module": module, "width": r["width"], "depth": r["depth"],
                          "granularity": r["granularity"], "instances": r["instances"],
                          "modules": {module: r["instances"]}}
    return {kind: out[kind] for kind in KINDS}


def memories(engine: Engine, sram: dict, rf: dict) -> dict:
    """The ``memories`` part of an asic report: per kind (the ``weight``, ``k`` and ``bias`` ROMs,
    the ``accumulator`` and ``activation bank`` RAMs) its module, width, depth, instances, bits,
    model, per-bit figure and area, with the storage efficiency of ``Geometry.storage`` (useful
    bits / stored bits); then the totals and both models."""
    store = engine.geometry.storage()
    kinds = memory_kinds(engine)
    for k in kinds.values():
        k["model"] = area_model(k["module"] == ROM_MODULE, k["width"], k["depth"])
    models = {"sram": sram, "register file": rf}
    total = price(kinds, models)
    for kind, k in kinds.items():
        s = store[kind]
        if s["stored_bits"] != k["bits"]:  # one geometry, one count: never two answers
            raise PermdealError(f"{kind}: the geometry stores {s['stored_bits']} bits, the "
                                f"engine {k['bits']}")
        k["useful_bits"] = s["useful_bits"]
        k["efficiency"] = round(s["useful_bits"] / k["bits"], 4)
        k["useful"] = s["what"]
    return {"kinds": {kind: kinds[kind] for kind in KINDS}, "total": total,
            "rf_max_bits": RF_MAX_BITS, "rule": RULE, "models": models}
