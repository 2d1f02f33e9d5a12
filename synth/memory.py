"""Weight memories, counted apart from logic (docs/design.md section 8).

The engine keeps every lane's weight, k and bias words in ROMs (``permdeal_rom`` instances in the
top). Standard-cell synthesis does not build memories, so the ASIC report counts their bits and
prices them with an SRAM area-per-bit model; on ECP5 they are synthesized (block RAM or LUTs).

The model's default is derived from EIE's published per-PE figures (docs/references.md): 162 KB of SRAM
is 93% of a 0.638 mm^2 PE in 45 nm, i.e. ``0.93 * 638000 / (162 * 1024 * 8) = 0.447 um^2`` per
bit including the arrays' periphery; scaled to 0.18 um by ``(180 / 45)^2 = 16`` that is
``7.15 um^2`` per bit. It is a first-order model, not a measurement (no SRAM compiler is
installed): the report labels the figure as such, and ``--sram-um2-per-bit`` sets another.
"""

from permdeal.errors import PermdealError
from permdeal.hdl.engine import Engine

__all__ = ["PAPER", "SRAM_UM2_PER_BIT", "node_scale", "paper_comparison", "sram_model",
           "weight_memories"]

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
    given ASIC clock, the peak throughput and area efficiency on the scaled area."""
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
    try:
        value = float(um2_per_bit)
    except (TypeError, ValueError):
        value = -1.0
    if not value > 0:
        raise PermdealError(f"--sram-um2-per-bit must be a positive number, not {um2_per_bit!r}")
    return {"um2_per_bit": value, "source": "given by the user (--sram-um2-per-bit)"}


def weight_memories(engine: Engine, model: dict) -> dict:
    """Bits and modelled area of the engine's weight, k and bias ROMs: ``{memory: {width,
    depth, instances, bits, area_um2}, "total": {...}}`` with ``model`` from :func:`sram_model`."""
    lanes = engine.cfg.total_lanes
    out, bits = {}, 0
    for mem, (width, depth) in engine.lane_memories.items():
        b = width * depth * lanes
        out[mem] = {"width": width, "depth": depth, "instances": lanes, "bits": b,
                    "area_um2": round(b * model["um2_per_bit"], 1)}
        bits += b
    out["total"] = {"bits": bits, "area_um2": round(bits * model["um2_per_bit"], 1)}
    return out
