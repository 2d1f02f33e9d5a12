"""Energy per memory access, a stated model (docs/design.md section 13, docs/references.md).

No memory compiler is installed, so the memories' energy is not measured: an access costs what
the model says for a memory of its size and word width, and the report counts the accesses from
the simulation. The model:

- **45 nm figures** (Horowitz, ISSCC 2014, the table EIE also uses; 0.9 V): reading 64 bits
  from an 8 KB SRAM costs about 10 pJ, from 32 KB about 20 pJ, from 1 MB about 100 pJ
  (:data:`SRAM_45NM_PJ_PER_64_BITS`). Between these points the energy is interpolated on a
  log-log scale; below 8 KB and above 1 MB the nearest segment's slope is extended (below 8 KB:
  the energy halves for every factor of 4 in size).
- **Word width**: an access of ``w`` bits costs ``w / 64`` of the 64-bit figure.
- **Writes** cost what reads cost (a first-order choice; the source gives reads).
- **Node scaling**: dynamic energy is ``C * V^2`` and capacitance scales with the feature size,
  so ``E_180nm = E_45nm * (180 / 45) * (1.8 V / 0.9 V)^2 = 16 * E_45nm``
  (:func:`node_energy_scale`). The same rule, backwards, puts a 0.18 um figure next to a 45 nm
  one.
- The latch register files of the area model (small RAMs) are priced by the same law, extended
  below 8 KB: a first-order figure, as the report says.
- **Arithmetic and DRAM** (the counted model of ``permdeal compare``, the same table): an
  integer add of 8 bits 0.03 pJ, of 32 bits 0.1 pJ; a multiply of 8 bits 0.2 pJ, of 32 bits
  3.1 pJ, log-log in the width between (:func:`op_pj`: a 16-bit multiply 0.79 pJ, a 32-bit add
  0.1 pJ); DRAM 1.3 nJ per 64 bits, the low end of the table's 1.3-2.6 nJ (:func:`dram_pj`).
"""

from __future__ import annotations

import math

from permdeal.checks import positive

__all__ = ["ARITH_45NM_PJ", "DRAM_PJ_PER_64_BITS", "MODEL", "NODE_45NM", "NODE_OSU",
           "SRAM_45NM_PJ_PER_64_BITS", "access_pj", "dram_pj", "node_energy_scale", "op_pj"]

#: (bytes, pJ per 64-bit read) at 45 nm, 0.9 V (docs/references.md: Horowitz, ISSCC 2014).
SRAM_45NM_PJ_PER_64_BITS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
#: (bits, pJ) of an integer add and multiply at 45 nm, 0.9 V (the same table): add 8 bits
#: 0.03 pJ, 32 bits 0.1 pJ; multiply 8 bits 0.2 pJ, 32 bits 3.1 pJ.
ARITH_45NM_PJ = {"add": ((8, 0.03), (32, 0.1)), "mult": ((8, 0.2), (32, 3.1))}
#: pJ per 64 bits read from DRAM (the table gives 1.3 to 2.6 nJ; the low end, so that a format
#: that saves DRAM traffic is not flattered).
DRAM_PJ_PER_64_BITS = 1300.0
#: (feature size in nm, supply in V) of the model's source and of the OSU cells.
NODE_45NM, NODE_OSU = (45, 0.9), (180, 1.8)


def node_energy_scale(frm: tuple[float, float] = NODE_45NM,
                      to: tuple[float, float] = NODE_OSU) -> float:
    """Factor from energy at node ``frm`` to node ``to`` (``(nm, V)`` each):
    ``(nm_to / nm_frm) * (V_to / V_frm)^2``."""
    return (to[0] / frm[0]) * (to[1] / frm[1]) ** 2


def _loglog(pts, x: float) -> float:
    """``pts`` ``((x0, y0), (x1, y1), ...)`` interpolated at ``x`` on a log-log scale, the
    nearest segment's slope extended beyond the points."""
    if x <= pts[0][0]:
        (s0, e0), (s1, e1) = pts[0], pts[1]
    elif x >= pts[-1][0]:
        (s0, e0), (s1, e1) = pts[-2], pts[-1]
    else:
        i = next(i for i in range(len(pts) - 1) if x <= pts[i + 1][0])
        (s0, e0), (s1, e1) = pts[i], pts[i + 1]
    slope = math.log(e1 / e0) / math.log(s1 / s0)
    return e0 * (x / s0) ** slope


def op_pj(op: str, bits: int, node: tuple[float, float] = NODE_OSU) -> float:
    """Energy (pJ) of one integer ``op`` (``"add"`` or ``"mult"``, both operands ``bits``
    wide) at ``node`` (:data:`ARITH_45NM_PJ`, log-log in the width)."""
    if op not in ARITH_45NM_PJ:
        raise ValueError(f"op must be one of {sorted(ARITH_45NM_PJ)}, not {op!r}")
    return _loglog(ARITH_45NM_PJ[op], positive(bits, "operand bits")) \
        * node_energy_scale(NODE_45NM, node)


def dram_pj(bits: float) -> float:
    """Energy (pJ) of moving ``bits`` from DRAM (:data:`DRAM_PJ_PER_64_BITS`; off-chip, so
    not scaled with the logic's node)."""
    return DRAM_PJ_PER_64_BITS * bits / 64


def access_pj(width: int, depth: int, node: tuple[float, float] = NODE_OSU) -> float:
    """Energy (pJ) of one access of ``width`` bits to a memory of ``depth`` words of ``width``
    bits, at ``node`` (``(nm, V)``; default the OSU 0.18 um cells at 1.8 V)."""
    w = positive(width, "memory width")
    d = positive(depth, "memory depth")
    size = w * d / 8
    return _loglog(SRAM_45NM_PJ_PER_64_BITS, size) * w / 64 * node_energy_scale(NODE_45NM, node)


#: The model as the report records it.
MODEL = {
    "source": "Horowitz, ISSCC 2014 (45 nm, 0.9 V; the figures EIE uses): 64-bit SRAM read "
              "8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ (docs/references.md)",
    "rule": "log-log interpolation in size (nearest segment's slope beyond the points), times "
            "width / 64; a write costs a read; register files priced by the same law",
    "scaling": "E_180nm = E_45nm * (180/45) * (1.8/0.9)^2 = 16 * E_45nm (C ~ feature size, "
               "E = C V^2)",
    "node_scale_45_to_180": node_energy_scale(),
}
