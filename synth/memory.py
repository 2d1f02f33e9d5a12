"""Weight memories, counted apart from logic (DESIGN.md section 8).

The engine keeps every lane's weight, k and bias words in ROMs (``permdeal_rom`` instances in the
top). Standard-cell synthesis does not build memories, so the ASIC report counts their bits and
prices them with an SRAM area-per-bit model; on ECP5 they are synthesized (block RAM or LUTs).

The model's default is derived from EIE's published per-PE figures (REFERENCE.md): 162 KB of SRAM
is 93% of a 0.638 mm^2 PE in 45 nm, i.e. ``0.93 * 638000 / (162 * 1024 * 8) = 0.447 um^2`` per
bit including the arrays' periphery; scaled to 0.18 um by ``(180 / 45)^2 = 16`` that is
``7.15 um^2`` per bit. It is a first-order model, not a measurement (no SRAM compiler is
installed): the report labels the figure as such, and ``--sram-um2-per-bit`` sets another.
"""

from permdeal.errors import PermdealError

__all__ = ["SRAM_UM2_PER_BIT", "sram_model", "weight_memories"]

#: EIE's SRAM area per bit in 45 nm (REFERENCE.md), and the scaling to 0.18 um.
EIE_UM2_PER_BIT_45NM = 0.93 * 0.638e6 / (162 * 1024 * 8)
SCALE_45_TO_180 = (180 / 45) ** 2
SRAM_UM2_PER_BIT = round(EIE_UM2_PER_BIT_45NM * SCALE_45_TO_180, 2)


def sram_model(um2_per_bit=None):
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


def weight_memories(engine, model):
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
