"""Permutation-index logic of a PE: the row ``r = (c - k) mod p`` of a block's one non-zero.

docs/design.md section 4.1 (column view): in input column ``c`` of a block with permutation value ``k``
the one stored weight sits in row ``r = (c - k) mod p``, the golden
:func:`permdeal.golden.permdiag.diag_row`. ``p`` is any integer >= 1, so there is no divider: with
``c, k`` in ``[0, p)`` the difference ``c - k`` lies in ``(-p, p)``, and one conditional correction
brings it into ``[0, p)``.
"""

from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.permdiag import index_bits

__all__ = ["PermIndex"]


def _is_pow2(p):
    return p & (p - 1) == 0


class PermIndex(wiring.Component):
    """``r = (c - k) mod p`` for one or several block sizes ``p``, without a divider.

    The subtraction ``d = c - k`` is ``width + 1`` bits wide; its top bit is the borrow
    (``c < k``). A power-of-two ``p`` (``p = 1`` included) is a wrap: ``r`` is the low
    ``ceil(log2 p)`` bits of ``d``, so ``p = 1`` always gives ``r = 0``. Any other ``p`` is
    compare-and-correct: ``r = d + p`` when ``d`` is negative, else ``d`` (low ``width`` bits).
    With several block sizes, ``sel`` picks the correction constant and the mask of the current
    ``p`` from small tables (one subtractor and one adder are shared by all of them).

    Parameters
    ----------
    ps : int or sequence of int
        The block size(s) to support, distinct integers >= 1 (a network may use a different
        ``p`` per layer). Kept as a tuple in the given order; ``sel = i`` selects ``ps[i]``.
    registered : bool
        ``True`` (default): ``r`` is registered (``latency = 1``); ``False``: combinational
        (``latency = 0``, no clock or reset port).

    Members
    -------
    c : ``In(width)``
        Column of the input within its block.
    k : ``In(width)``
        Permutation value of the block.
    sel : ``In(sel_bits)``
        Only when ``len(ps) > 1``: index into ``ps`` of the current block size (e.g. from the
        layer descriptor); it may change every cycle, like ``c`` and ``k``. A value
        ``>= len(ps)`` gives ``r = 0``.
    r : ``Out(width)``
        Row of the non-zero, ``(c - k) mod p``.

    ``width = max(1, ceil(log2 max(ps)))``. Inputs must satisfy ``c, k < p`` for the selected
    ``p``; otherwise ``r`` is unspecified (don't-care), except that a power-of-two ``p`` gives
    ``(c - k) mod p`` for every input and ``p = 1`` gives 0.

    Timing
    ------
    ``registered=True``: one register stage, no handshake: ``r`` in cycle ``n + 1`` is the
    result for ``c``, ``k`` and ``sel`` of cycle ``n``; a new input every cycle. ``rst``
    (synchronous) clears ``r`` to 0. ``registered=False``: ``r`` follows the inputs
    combinationally (at most a subtractor, a table of constants, an adder and a mask).
    """

    def __init__(self, ps, *, registered=True):
        if isinstance(ps, (str, bytes)) or not hasattr(ps, "__iter__"):
            ps = (ps,)
        ps = tuple(integer(p, "block size p", 1) for p in ps)
        if not ps:
            raise PermdealError("permutation index needs at least one block size p")
        dup = sorted({p for p in ps if ps.count(p) > 1})
        if dup:
            raise PermdealError(f"block sizes must be distinct, not {ps!r} "
                                f"(repeated: {', '.join(map(str, dup))})")
        if not isinstance(registered, bool):
            raise PermdealError(f"permutation index registered must be True or False, "
                                f"not {registered!r}")
        self._ps, self._registered = ps, registered
        ports = {"c": In(self.width), "k": In(self.width)}
        if len(ps) > 1:
            ports["sel"] = In(self.sel_bits)
        ports["r"] = Out(self.width)
        super().__init__(ports)

    @property
    def ps(self) -> tuple[int, ...]:
        """The supported block sizes, in ``sel`` order."""
        return self._ps

    @property
    def registered(self) -> bool:
        return self._registered

    @property
    def latency(self) -> int:
        """Clock cycles from ``c``, ``k``, ``sel`` to ``r``: 1 if registered, else 0."""
        return int(self._registered)

    @property
    def width(self) -> int:
        """Bits of ``c``, ``k`` and ``r``: ``ceil(log2 max(ps))``, at least 1."""
        return max(1, index_bits(max(self._ps)))

    @property
    def sel_bits(self) -> int:
        """Bits of ``sel`` (0: no ``sel`` port, a single block size)."""
        return 0 if len(self._ps) == 1 else (len(self._ps) - 1).bit_length()

    def _terms(self, p):
        """``(correction, mask)`` for block size ``p``: ``r = ((c - k) + (borrow ? correction
        : 0)) & mask``. A power of two wraps (no correction); other ``p`` add ``p`` back."""
        if _is_pow2(p):
            return 0, (1 << index_bits(p)) - 1
        return p, (1 << self.width) - 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        w = self.width
        diff = Signal(w + 1)  # c - k modulo 2**(w+1); bit w is the borrow (c < k)
        m.d.comb += diff.eq(self.c - self.k)
        borrow = diff[w]

        if len(self._ps) == 1:
            corr, mask = self._terms(self._ps[0])
            if corr:  # compare-and-correct
                result = Mux(borrow, diff[:w] + corr, diff[:w])[:w]
            else:  # wrap: the low bits (none for p = 1)
                result = diff[:w] & mask
        else:
            # Per-p constants chosen by sel; 0 when sel is out of range. A chain of muxes, not a
            # Switch: Yosys turns a Switch into an `always @*` case block, which Icarus does not
            # evaluate until sel first changes, leaving r undefined for a constant sel.
            terms = [self._terms(p) for p in self._ps]
            correct = any(c_i for c_i, _ in terms)  # some p is not a power of two
            corr, mask = Const(0, w), Const(0, w)
            for i, (c_i, m_i) in enumerate(terms):
                hit = self.sel == i if i else ~self.sel.any()  # `== 0` would trip WIDTHTRUNC
                corr, mask = Mux(hit, c_i, corr), Mux(hit, m_i, mask)
            if correct:  # compare-and-correct, then the selected width
                result = (diff[:w] + Mux(borrow, corr, 0))[:w] & mask
            else:  # powers of two only: a wrap to the selected width
                result = diff[:w] & mask

        domain = m.d.sync if self._registered else m.d.comb
        domain += self.r.eq(result)
        return m
