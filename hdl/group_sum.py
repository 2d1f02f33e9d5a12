"""The lane groups' adder tree: every group's partial sums into group 0's (docs/design.md 4.2).

With ``K`` lane groups of ``G = NL / K`` lanes each, lane ``h`` of every group drains the partial
sum of the same output row in the same cycle; the tree adds them so that group 0's write-back sees
the whole sum.
"""

from typing import Any

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError

__all__ = ["GroupSum"]


class GroupSum(wiring.Component):
    """Adds lane ``h`` of ``groups`` groups of lanes, for every ``h``, in registered stages.

    Parameters
    ----------
    lanes : int
        ``NL``, the lanes in all, at least 1.
    groups : int
        ``K``, a power of two that divides ``lanes``.
    acc_layout : data.StructLayout
        One lane's drained sum ``{valid: 1 bit, value: signed(w)}`` (``PEWriteback.acc_layout``).
    masked : bool
        Add only the lanes whose ``valid`` is high (a lane not drained counts 0), and ``valid``
        out when any lane's is: the drain of a layer with fewer groups than the engine, whose
        hardware groups take turns (docs/design.md 4.2). Default ``False``: every lane drains at
        once and ``valid`` is group 0's.

    Members
    -------
    i : ``In(ArrayLayout(acc_layout, lanes))``
        Every lane's drained sum; lane ``k*G + h`` is lane ``h`` of group ``k``.
    o : ``Out(ArrayLayout(acc_layout, lanes / groups))``
        Element ``h``: the sum of lane ``h`` of every group (modulo ``2**w``, which is the true
        sum whenever that fits), ``valid`` that of group 0's lane ``h`` (``masked``: of any).

    Timing
    ------
    ``latency = log2 groups``: stage ``s`` adds lane ``h`` and lane ``h + NL / 2**(s+1)`` into a
    register, so one adder lies between two registers (``masked``: an AND gate a bit before the
    first stage's adder). With one group ``o`` is ``i``.
    """

    def __init__(self, lanes, groups, acc_layout, masked=False):
        self._lanes = integer(lanes, "group sum lanes", 1)
        self._groups = integer(groups, "group sum groups", 1)
        if self._groups & (self._groups - 1) or self._lanes % self._groups:
            raise PermdealError(f"group sum groups must be a power of two that divides the "
                                f"{self._lanes} lanes, not {self._groups}")
        self._masked = bool(masked)
        self._layout = data.StructLayout(acc_layout) if not isinstance(acc_layout, data.Layout) \
            else acc_layout
        super().__init__({
            "i": In(data.ArrayLayout(self._layout, self._lanes)),
            "o": Out(data.ArrayLayout(self._layout, self._lanes // self._groups)),
        })

    @property
    def latency(self) -> int:
        """Register stages, ``log2 groups``."""
        return self._groups.bit_length() - 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        sums = [self.i[g] for g in range(self._lanes)]
        for stage in range(self.latency):
            half = len(sums) // 2
            nxt = []
            for h in range(half):
                acc = Signal(self._layout, name=f"sum{stage + 1}_{h}")
                a, b = sums[h], sums[h + half]
                if self._masked:
                    if stage == 0:   # later stages add registers that are 0 when not valid
                        av, bv = (Mux(x.valid, x.value, 0) for x in (a, b))
                    else:
                        av, bv = a.value, b.value
                    m.d.sync += [acc.valid.eq(a.valid | b.valid), acc.value.eq(av + bv)]
                else:
                    m.d.sync += [acc.valid.eq(a.valid), acc.value.eq(a.value + b.value)]
                nxt.append(acc)
            sums = nxt
        m.d.comb += [self.o[h].eq(s) for h, s in enumerate(sums)]
        return m
