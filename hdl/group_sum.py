"""The lane groups' adder tree: every group's partial sums into group 0's (docs/design.md 4.2).

With ``K`` lane groups of ``G = NL / K`` lanes each, lane ``h`` of every group drains the partial
sum of the same output row in the same cycle; the tree adds them so that group 0's write-back sees
the whole sum. With per-layer group counts (``min_groups < groups``) a layer of ``K_l`` groups
needs the sums of the ``K_l`` consecutive hardware groups ``i*K_l .. i*K_l + K_l - 1`` of each
turn ``i`` in group ``i*K_l``, whose write-back takes them: the tree adds neighbours first and
passes the sums on once the layer's groups are added.
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
    min_groups : int, optional
        ``K_min``, the fewest groups a layer has (default ``groups``): a power of two dividing
        ``groups``. With fewer than ``groups`` the tree sums, for a layer of ``K_l`` groups
        (``en``), the ``K_l`` groups from each multiple of ``K_l`` into that one, and has an
        output for each of the ``W = groups / min_groups`` groups ``0, K_min, 2K_min, ...``.

    Members
    -------
    i : ``In(ArrayLayout(acc_layout, lanes))``
        Every lane's drained sum; lane ``k*G + h`` is lane ``h`` of group ``k``.
    en : ``In(log2(groups / min_groups))``
        With ``min_groups < groups``: bit ``e`` set when the layer's ``K_l`` is more than
        ``min_groups * 2**e`` (the tree's stage ``log2 min_groups + e`` adds); held while its
        sums pass (a layer's constant). No port otherwise.
    o : ``Out(ArrayLayout(acc_layout, W * lanes / groups))``
        Element ``w*G + h``: lane ``h`` of group ``w*K_min``: the sum of lane ``h`` of groups
        ``w*K_min .. w*K_min + K_l - 1`` when ``w*K_min`` is a multiple of ``K_l`` (modulo
        ``2**w``, which is the true sum whenever that fits), ``valid`` that of the group's own
        lane ``h``. With ``min_groups = groups`` (``W = 1``): the sum of lane ``h`` of every
        group.

    Timing
    ------
    ``latency = log2 groups``: every stage adds into a register, so one adder (after an AND gate
    a bit for the stages ``en`` enables) lies between two registers. With one group ``o`` is
    ``i``.
    """

    def __init__(self, lanes, groups, acc_layout, min_groups=None):
        self._lanes = integer(lanes, "group sum lanes", 1)
        self._groups = integer(groups, "group sum groups", 1)
        if self._groups & (self._groups - 1) or self._lanes % self._groups:
            raise PermdealError(f"group sum groups must be a power of two that divides the "
                                f"{self._lanes} lanes, not {self._groups}")
        self._min = self._groups if min_groups is None else \
            integer(min_groups, "group sum min_groups", 1)
        if self._min & (self._min - 1) or self._groups % self._min:
            raise PermdealError(f"group sum min_groups must be a power of two that divides the "
                                f"{self._groups} groups, not {self._min}")
        self._layout = data.StructLayout(acc_layout) if not isinstance(acc_layout, data.Layout) \
            else acc_layout
        ports = {"i": In(data.ArrayLayout(self._layout, self._lanes))}
        if self.en_bits:
            ports["en"] = In(self.en_bits)
        ports["o"] = Out(data.ArrayLayout(self._layout, self.heads * self.group_lanes))
        super().__init__(ports)

    @property
    def latency(self) -> int:
        """Register stages, ``log2 groups``."""
        return self._groups.bit_length() - 1

    @property
    def group_lanes(self) -> int:
        """``G = lanes / groups``."""
        return self._lanes // self._groups

    @property
    def heads(self) -> int:
        """``W = groups / min_groups``: the groups with an output."""
        return self._groups // self._min

    @property
    def en_bits(self) -> int:
        """Width of ``en``: the stages a layer may skip, ``log2(groups / min_groups)``."""
        return self.heads.bit_length() - 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        if self._min == self._groups:
            # every group into group 0: stage s adds lane h and lane h + NL / 2**(s+1)
            sums = [self.i[g] for g in range(self._lanes)]
            for stage in range(self.latency):
                half = len(sums) // 2
                nxt = []
                for h in range(half):
                    acc = Signal(self._layout, name=f"sum{stage + 1}_{h}")
                    m.d.sync += [acc.valid.eq(sums[h].valid),
                                 acc.value.eq(sums[h].value + sums[h + half].value)]
                    nxt.append(acc)
                sums = nxt
            m.d.comb += [self.o[h].eq(s) for h, s in enumerate(sums)]
            return m
        # Neighbours first: stage s adds group k + 2**s into group k (k a multiple of 2**(s+1))
        # when the layer has more than 2**s groups, else passes it; after stage s it keeps the
        # groups that later stages read (multiples of 2**(s+1)) and the outputs (of K_min).
        g, k_min, k_all = self.group_lanes, self._min, self._groups
        groups = {k: [self.i[k * g + h] for h in range(g)] for k in range(k_all)}
        min_stages = k_min.bit_length() - 1
        for stage in range(self.latency):
            step = 1 << stage
            nxt = {}
            for k in sorted(groups):
                if k % (2 * step) and k % k_min:
                    continue
                adds = k % (2 * step) == 0 and k + step < k_all
                row = []
                for h in range(g):
                    acc = Signal(self._layout, name=f"sum{stage + 1}_{k}_{h}")
                    a = groups[k][h]
                    if not adds:
                        value = a.value
                    elif stage < min_stages:   # every layer has more groups: always adds
                        value = a.value + groups[k + step][h].value
                    else:
                        other = groups[k + step][h].value
                        value = a.value + Mux(self.en[stage - min_stages], other, 0)
                    m.d.sync += [acc.valid.eq(a.valid), acc.value.eq(value)]
                    row.append(acc)
                nxt[k] = row
            groups = nxt
        m.d.comb += [self.o[w * g + h].eq(groups[w * k_min][h])
                     for w in range(self.heads) for h in range(g)]
        return m
