"""Cycle model of the bit-serial shift-add SmartDeal unit (docs/design.md 5.3), and its row rebuild.

The unit (``hdl.shift_add.ShiftAdd``) takes one row of a SmartDeal block per transfer: the ``S``
Ce codes of the row and the block's ``S x S`` basis codes ``B_int``. It rebuilds the ``S`` weights
of the row, ``lanes`` output columns at a time, one accumulator bit per cycle (LSB first), so that
a row takes ``P = ceil(S / lanes)`` passes of ``T = acc_bits`` cycles each.

Widths. Term ``k`` of column ``j`` is ``s_k * (B_int[k][j] << e_idx_k)`` with ``B_int`` in
``[-2**(b_B-1), 2**(b_B-1) - 1]`` and ``e_idx_k <= D = 2**E - 1``, so every term lies in
``[-2**(b_B-1+D), 2**(b_B-1+D)]`` (the top end is ``-1 * (-2**(b_B-1) << D)``) and the sum of ``S``
of them in ``[-S * 2**(b_B-1+D), S * 2**(b_B-1+D)]``. :func:`acc_bits` is the fewest
two's-complement bits holding that interval (``golden.formats.signed_bits``); both ends are
reached (every ``B`` code ``-2**(b_B-1)``, every ``e_idx = D``, all signs alike), so no narrower
accumulator is safe. That is ``b_B + D + floor(log2 S) + 1 = b_B + 2**E + floor(log2 S)`` bits
(``D = e_max - e_min``; the guard bits are ``floor(log2 S) + 1``): for ``S`` not a power of two
``b_B + D + ceil(log2 S)``, and for a power of two one bit more, since the top end
``2**(b_B-1+D+log2 S)`` is itself a power of two. Bit-serial addition is exact modulo ``2**T``
for any ``T`` (every term stream is sign-extended for ever), so ``T = acc_bits`` output bits give
the exact sum; all of them are needed, the low ones for the carries and the rounding.

Timing (cycles counted as in ``verif.streams``: a handshake in cycle ``c`` takes effect at the
rising edge that ends it). The control of the unit is four registers, ``busy``, the bit counter
``cnt`` (``0 .. T-1``), the pass counter ``pas`` (``0 .. P-1``) and ``o.valid``; with ``done =
busy & cnt == T-1 & pas == P-1`` (the last bit of the row's last pass is being added)::

    stall   = done & o.valid & ~o.ready        # the finished row has nowhere to go: freeze
    i.ready = ~busy | (done & ~stall)
    next state:
        i.valid & i.ready:     busy, cnt, pas = 1, 0, 0        (a new row; it wins)
        elif busy & ~stall:    cnt == T-1 ? (pas == P-1 ? busy = 0 : pas += 1; cnt = 0) : cnt += 1
        o.valid = (done & ~stall) | (o.valid & ~o.ready)

Hence, with the input always offered and the output always ready: a row accepted in cycle ``a``
adds its bits in cycles ``a + 1 .. a + P*T`` and its weights are valid on ``o`` from cycle ``a +
P*T + 1`` (:func:`latency` ``= P*T + 1``); the next row is accepted in cycle ``a + P*T``, the
cycle of the last bit (:func:`interval` ``= P*T``, no bubble), and ``N`` rows take
:func:`total_cycles` ``= (N-1) * P*T + latency + 1`` cycles from the first acceptance through the
last output transfer, both included. :func:`schedule` runs the same registers for any offer and
back-pressure pattern.

:func:`rebuild_rows` is the expected output: ``golden.smartdeal.rebuild_int`` applied to rows that
each form a block of their own.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from permdeal.checks import integer

from .formats import MAX_BITS, Fixed, signed_bits
from .smartdeal import (B_BITS_RANGE, E_RANGE, MAX_ALIGN, MAX_S, SmartDealCodes, rebuild_int)

__all__ = ["ShiftAddTiming", "acc_bits", "rebuild_rows", "schedule"]


def acc_bits(S: int, E: int, b_bits: int) -> int:
    """Accumulator width that no row of ``S`` terms can overflow (module docstring)."""
    top = S << (b_bits - 1 + (1 << E) - 1)
    return signed_bits(-top, top)


@dataclass(frozen=True)
class ShiftAddTiming:
    """The parameters of one shift-add unit that its timing depends on, checked, and the timing.

    ``S`` chunk width (1 to 16), ``E`` exponent bits (1 to 5), ``b_bits`` the width ``b_B`` of a
    basis code (2 to 16), ``lanes`` output columns rebuilt at once (1 to ``S``).
    """

    S: int
    E: int
    b_bits: int
    lanes: int

    def __post_init__(self):
        S = integer(self.S, "shift-add chunk width S", 1, MAX_S)
        integer(self.E, "shift-add exponent bits E", *E_RANGE)
        integer(self.b_bits, "shift-add B bits b_B", *B_BITS_RANGE)
        integer(self.lanes, "shift-add lanes", 1, S)

    @property
    def acc_bits(self) -> int:
        """Width ``T`` of the serial accumulator (:func:`acc_bits`)."""
        return acc_bits(self.S, self.E, self.b_bits)

    @property
    def passes(self) -> int:
        """``P = ceil(S / lanes)``: passes over the serial datapath per row."""
        return -(-self.S // self.lanes)

    @property
    def cycles_per_pass(self) -> int:
        """``T``: one accumulator bit per cycle, all of them (the low ones carry into the rest)."""
        return self.acc_bits

    @property
    def cycles_per_row(self) -> int:
        """``P * T``: cycles the serial datapath spends on one row."""
        return self.passes * self.cycles_per_pass

    @property
    def latency(self) -> int:
        """Cycles from a row's acceptance to its weights being valid on ``o``: ``P*T + 1``."""
        return self.cycles_per_row + 1

    @property
    def interval(self) -> int:
        """Initiation interval: rows accepted back to back are ``P*T`` cycles apart."""
        return self.cycles_per_row

    def total_cycles(self, n_rows: int) -> int:
        """Cycles from the first acceptance through the last output transfer, both included, of
        ``n_rows`` rows offered without idle to an output that is always ready."""
        n_rows = integer(n_rows, "number of rows", 1)
        return (n_rows - 1) * self.interval + self.latency + 1


def schedule(timing: ShiftAddTiming, offers: Iterable[int], ready: Callable[[int], bool],
             limit: int | None = None,
             counts: dict[str, int] | None = None) -> tuple[list[int], list[int]]:
    """Run the unit's control registers (module docstring) cycle by cycle.

    ``offers[n]`` is the first cycle in which row ``n`` is on offer (a source keeps a row on offer
    until it is taken, and offers row ``n`` only after row ``n-1`` was taken); ``ready(c)`` tells
    whether ``o.ready`` is high in cycle ``c``. The unit is idle (just out of reset) in cycle
    ``offers[0]``. Returns ``(accepted, delivered)``: the cycle of every row's input transfer and
    of every row's output transfer. ``limit`` (default generous) bounds the cycles simulated; rows
    not delivered by then are missing from ``delivered``. A dict ``counts`` gets ``frozen``: the
    cycles in which a finished row waited for ``o`` (``stall``).
    """
    offers = [int(c) for c in offers]
    if not offers:
        return [], []
    T, P = timing.cycles_per_pass, timing.passes
    if limit is None:
        limit = offers[-1] + (len(offers) + 1) * (timing.latency + 1) + 10_000
    busy, cnt, pas, o_valid = False, 0, 0, False
    accepted, delivered = [], []
    c = offers[0]
    while len(delivered) < len(offers) and c < limit:
        n = len(accepted)
        rdy = bool(ready(c))
        done = busy and cnt == T - 1 and pas == P - 1
        stall = done and o_valid and not rdy
        i_ready = not busy or (done and not stall)
        offered = n < len(offers) and offers[n] <= c
        if stall and counts is not None:
            counts["frozen"] = counts.get("frozen", 0) + 1
        if o_valid and rdy:
            delivered.append(c)
        o_valid = (done and not stall) or (o_valid and not rdy)
        if i_ready and offered:
            accepted.append(c)
            busy, cnt, pas = True, 0, 0
        elif busy and not stall:
            if cnt == T - 1:
                cnt = 0
                if pas == P - 1:
                    busy = False
                else:
                    pas += 1
            else:
                cnt += 1
        c += 1
    return accepted, delivered


def rebuild_rows(codes: npt.ArrayLike, b_int: npt.ArrayLike, E: int, b_bits: int, weight_bits: int,
                 shift: int) -> tuple[np.ndarray, int]:
    """The weights the unit gives for rows ``codes[n]`` (``S`` Ce codes) with bases ``b_int[n]``.

    Each row becomes a block of its own (``rows_per_block = 1``, ``e_min = 0``, ``b_frac = 0``) and
    the weight format ``Fixed(weight_bits, -shift)``, so that ``golden.smartdeal.rebuild_int``
    aligns by exactly ``shift``. Returns ``(weights (N, S) int64, n_saturated)``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    b_int = np.asarray(b_int, dtype=np.int64)
    n, S = codes.shape
    integer(weight_bits, "weight bits", 2, MAX_BITS)
    integer(shift, "alignment shift", -MAX_ALIGN, MAX_ALIGN)
    enc = SmartDealCodes((n, S), S, E, 1, 0, b_bits, 0, codes.reshape(n, 1, S), b_int)
    return rebuild_int(enc, Fixed(weight_bits, -shift))
