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
"""

from __future__ import annotations

import math

from permdeal.checks import positive

__all__ = ["MODEL", "NODE_45NM", "NODE_OSU", "SRAM_45NM_PJ_PER_64_BITS", "access_pj",
           "node_energy_scale"]

#: (bytes, pJ per 64-bit read) at 45 nm, 0.9 V (docs/references.md: Horowitz, ISSCC 2014).
SRAM_45NM_PJ_PER_64_BITS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
#: (feature size in nm, supply in V) of the model's source and of the OSU cells.
NODE_45NM, NODE_OSU = (45, 0.9), (180, 1.8)


def node_energy_scale(frm: tuple[float, float] = NODE_45NM,
                      to: tuple[float, float] = NODE_OSU) -> float:
    """Factor from energy at node ``frm`` to node ``to`` (``(nm, V)`` each):
    ``(nm_to / nm_frm) * (V_to / V_frm)^2``."""
    return (to[0] / frm[0]) * (to[1] / frm[1]) ** 2


def _pj_64_45nm(size_bytes: float) -> float:
    pts = SRAM_45NM_PJ_PER_64_BITS
    if size_bytes <= pts[0][0]:
        (s0, e0), (s1, e1) = pts[0], pts[1]
    elif size_bytes >= pts[-1][0]:
        (s0, e0), (s1, e1) = pts[-2], pts[-1]
    else:
        i = next(i for i in range(len(pts) - 1) if size_bytes <= pts[i + 1][0])
        (s0, e0), (s1, e1) = pts[i], pts[i + 1]
    slope = math.log(e1 / e0) / math.log(s1 / s0)
    return e0 * (size_bytes / s0) ** slope


def access_pj(width: int, depth: int, node: tuple[float, float] = NODE_OSU) -> float:
    """Energy (pJ) of one access of ``width`` bits to a memory of ``depth`` words of ``width``
    bits, at ``node`` (``(nm, V)``; default the OSU 0.18 um cells at 1.8 V)."""
    w = positive(width, "memory width")
    d = positive(depth, "memory depth")
    size = w * d / 8
    return _pj_64_45nm(size) * w / 64 * node_energy_scale(NODE_45NM, node)


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
