# amaranth: UnusedElaboratable=no
"""The issuer: non-zero pairs in, the lanes' broadcast operations out (docs/design.md 4.2).

For each pair ``(j, x_j)`` of the non-zero detector the issuer broadcasts ``B`` operations, one per
slot ``t = 0 .. B-1`` of the layer (``hdl.lane``; ``N'`` block-columns, or ``N_k = ceil(N'/K)``
with ``K`` lane groups, whose issuers see their group's own input index ``j``)::

    w_addr   = w_base + j + t*w_step      w_step = N'*p (N_k*p)
    k_addr   = k_base + J + t*k_step      k_step = N' (N_k),  J = j div p
    c        = j mod p
    sel, x   = the layer's sel, x_j
    acc_addr = t*p

Slot ``t + 1`` is reached by adding the layer's steps: no address is a product. ``J`` and ``c``
come without a divider: ``J = floor(j * M / 2**s)`` with a constant reciprocal ``M = ceil(2**s /
p)``, ``s = N + ceil(log2 p)`` (``N = index_bits``) chosen per block size at generation time
(Granlund and Montgomery), and ``c = j - J*p``; both are multiplications by constants, each in a
pipeline stage of its own.
"""

from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_BITS
from permdeal.golden.permdiag import index_bits as perm_index_bits

from .lane import op_layout
from .nz_detect import pair_layout
from .perm_index import PermIndex

__all__ = ["LATENCY", "Issuer", "check_reciprocal", "reciprocal"]

#: Cycles from a pair's acceptance to its first op (the pair register, the address stage, ``op``).
LATENCY = 3


def reciprocal(p: int, n: int) -> tuple[int, int]:
    """``(M, s)``: ``floor(j * M / 2**s) == j // p`` for every ``0 <= j < 2**n``.

    ``s = n + ceil(log2 p)`` and ``M = ceil(2**s / p)``; for ``p = 1`` that is ``(1, n)``.
    """
    s = n + perm_index_bits(p)
    return -(-(1 << s) // p), s


def check_reciprocal(p: int, n: int, m: int, s: int) -> None:
    """Raise :class:`PermdealError` unless ``(m, s)`` divides every ``n``-bit ``j`` by ``p``.

    Two cheap checks: the sufficient condition ``0 <= m*p - 2**s`` and ``(m*p - 2**s) * 2**n <=
    2**s`` (the error ``j*(m*p - 2**s) / (p * 2**s)`` stays below ``1/p``), and the boundary values
    ``j = q*p - 1, q*p`` at the ends of the range.
    """
    e = m * p - (1 << s)
    ok = e >= 0 and e << n <= 1 << s
    top = ((1 << n) - 1) // p
    for q in {1, 2, top - 1, top, top + 1}:
        for j in (q * p - 1, q * p, 0, (1 << n) - 1):
            if 0 <= j < 1 << n and (j * m) >> s != j // p:
                ok = False
    if not ok:
        raise PermdealError(f"issuer reciprocal of p = {p} for {n}-bit indices is wrong: "
                            f"M = {m}, s = {s}")


class Issuer(wiring.Component):
    """Turns the detector's pairs into ``B`` broadcast operations each, one layer at a time.

    Parameters
    ----------
    ps : int or sequence of int
        The block sizes the design supports, as for :class:`~.perm_index.PermIndex` (``sel = i``
        selects ``ps[i]``).
    index_bits : int
        ``N``, the width of the input index ``j``, at least 1.
    act_bits : int
        Width of an activation code (signed two's complement), 2 to 32.
    w_addr_bits, k_addr_bits : int
        Widths of the weight and k memory addresses (``Lane.w_addr_bits``, ``Lane.k_addr_bits``),
        at least 1. Addresses wrap modulo ``2**bits``; the memory placement keeps them in range.
    acc_addr_bits : int
        Width of an accumulator address (``Lane.acc_addr_bits``), at least enough for
        ``(max_slots - 1) * max(ps)`` (and at least 1).
    max_slots : int
        The largest ``B`` of any layer, at least 1.

    Members
    -------
    sel : ``In(sel_bits)``
        The layer's block size ``ps[sel]`` (no port with a single block size). A ``sel`` past
        ``len(ps) - 1`` is not allowed.
    slots : ``In(slot_bits)``
        The layer's ``B``, in ``[1, max_slots]``.
    w_base, k_base : ``In(w_addr_bits)``, ``In(k_addr_bits)``
        The layer's first weight and k addresses (``golden.rom`` placements).
    w_step, k_step : ``In(w_addr_bits)``, ``In(k_addr_bits)``
        The layer's slot strides in the weight and k memories, ``N'*p`` and ``N'``.
        The descriptor inputs must be held constant while a layer's pairs are issued.
    i : ``In(stream.Signature(pair_layout))``
        The detector's pair stream: ``{index: unsigned(index_bits), value: signed(act_bits),
        last: 1 bit}`` packed from bit 0 in that order (``NonZeroDetector.output_layout``).
        ``last`` is ignored.
    op : ``Out(op_layout)``
        The broadcast operation, the layout of ``Lane.op_layout`` for the same widths: ``valid``,
        ``w_addr``, ``k_addr``, ``c`` (``index_width``), ``sel`` (``sel_bits``, no field with a
        single block size), ``x`` (``signed(act_bits)``), ``acc_addr``, packed from bit 0 in that
        order. No back-pressure. The fields mean nothing while ``valid`` is low.
    busy : ``Out(1)``
        A pair is in the issuer (accepted, its ops not all shown): a register.

    Timing
    ------
    ``op`` is a register. ``latency = 3``: a pair accepted in cycle ``a`` (``i.valid & i.ready``)
    has its op ``t`` on ``op`` in cycle ``a + 3 + t``. A slot counter, ``latency - 1`` cycles ahead
    of ``op``, takes a pair whenever it is idle or on the last slot (``t = B - 1``) of its pair::

        i.ready = ~counting | (t == B - 1)

    so ``i.ready`` is a register (loaded with the counter), and pairs that come without idle
    give exactly ``B`` ops each, back to back, with no bubble (the consumer of the detector's
    pairs in ``golden.cycles``). The accepted pair is registered (stage 1), where the reciprocal
    multiplications ``j * M`` run; stage 2 registers ``J`` and forms ``c = j - J*p`` and the first
    addresses ``w_base + j`` and ``k_base + J``; ``op`` registers them. The later ops of the pair
    add ``w_step``, ``k_step`` and ``p`` to the op's fields. ``rst`` (synchronous) clears
    ``op.valid`` and drops the pairs in progress.
    """

    def __init__(self, ps, index_bits, act_bits, w_addr_bits, k_addr_bits, acc_addr_bits,
                 max_slots):
        index = PermIndex(ps, registered=False)  # checks the block sizes
        self._ps = index.ps
        self._index_width, self._sel_bits = index.width, index.sel_bits
        self._index_bits = integer(index_bits, "issuer index_bits", 1)
        self._act_bits = integer(act_bits, "issuer act_bits", 2, MAX_BITS)
        self._w_addr_bits = integer(w_addr_bits, "issuer w_addr_bits", 1)
        self._k_addr_bits = integer(k_addr_bits, "issuer k_addr_bits", 1)
        self._max_slots = integer(max_slots, "issuer max_slots", 1)
        lo = max(1, ((self._max_slots - 1) * max(self._ps)).bit_length())
        self._acc_addr_bits = integer(acc_addr_bits, "issuer acc_addr_bits", lo)
        recips = []
        for p in self._ps:
            m, s = reciprocal(p, self._index_bits)
            check_reciprocal(p, self._index_bits, m, s)
            recips.append((m, s))
        self._recips = tuple(recips)
        ports = {}
        if self._sel_bits:
            ports["sel"] = In(self._sel_bits)
        ports.update({
            "slots": In(self.slot_bits),
            "w_base": In(self._w_addr_bits),
            "k_base": In(self._k_addr_bits),
            "w_step": In(self._w_addr_bits),
            "k_step": In(self._k_addr_bits),
            "i": In(stream.Signature(self.pair_layout)),
            "op": Out(self.op_layout),
            "busy": Out(1),
        })
        super().__init__(ports)

    # -- parameters --------------------------------------------------------------------------

    @property
    def ps(self) -> tuple[int, ...]:
        return self._ps

    @property
    def index_bits(self) -> int:
        return self._index_bits

    @property
    def act_bits(self) -> int:
        return self._act_bits

    @property
    def w_addr_bits(self) -> int:
        return self._w_addr_bits

    @property
    def k_addr_bits(self) -> int:
        return self._k_addr_bits

    @property
    def acc_addr_bits(self) -> int:
        return self._acc_addr_bits

    @property
    def max_slots(self) -> int:
        return self._max_slots

    # -- derived -----------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from a pair's acceptance to its first op on ``op``."""
        return LATENCY

    @property
    def reciprocals(self) -> tuple[tuple[int, int], ...]:
        """``(M, s)`` per block size, in ``sel`` order (:func:`reciprocal`)."""
        return self._recips

    @property
    def index_width(self) -> int:
        """Width of ``c`` (:attr:`PermIndex.width`)."""
        return self._index_width

    @property
    def sel_bits(self) -> int:
        """Width of ``sel`` (0: a single block size, no ``sel`` port or field)."""
        return self._sel_bits

    @property
    def slot_bits(self) -> int:
        """Width of ``slots``: enough for ``max_slots``."""
        return self._max_slots.bit_length()

    @property
    def pair_layout(self) -> data.StructLayout:
        """Payload of ``i``: the detector's pairs (:func:`.nz_detect.pair_layout`)."""
        return pair_layout(self._index_bits, self._act_bits)

    @property
    def op_layout(self) -> data.StructLayout:
        """The broadcast operation (:func:`.lane.op_layout`)."""
        return op_layout(self._w_addr_bits, self._k_addr_bits, self._index_width, self._sel_bits,
                         self._act_bits, self._acc_addr_bits)

    # -- hardware ----------------------------------------------------------------------------

    def _select(self, values):
        """``values[sel]`` as a chain of muxes (``values[0]`` for a ``sel`` out of range)."""
        out = values[0]
        for i in range(1, len(values)):
            hit = self.sel == i
            out = Mux(hit, values[i], out)
        return out

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        n, w = self._index_bits, self._index_width
        wab, kab, aab = self._w_addr_bits, self._k_addr_bits, self._acc_addr_bits

        # The slot counter: which pair the issuer is on, ``latency - 1`` cycles ahead of ``op``.
        counting = Signal()
        left = Signal(self.slot_bits)  # slots of the pair still to count after this cycle's
        last = Signal()  # left == 0, a register of its own
        # ``~counting | last`` as a register of its own, loaded with them, so that ``i.ready``
        # is a flip-flop: the ready chain back through the detector to the window reader's
        # buffer starts there, with no gate of the issuer's before it.
        ready = Signal(init=1)
        take = Signal()
        m.d.comb += [
            self.i.ready.eq(ready),
            take.eq(self.i.valid & self.i.ready),
        ]
        with m.If(take):
            m.d.sync += [counting.eq(1), left.eq((self.slots - 1)[:self.slot_bits]),
                         last.eq(self.slots == 1), ready.eq(self.slots == 1)]
        with m.Elif(counting & ~last):
            m.d.sync += [left.eq((left - 1)[:self.slot_bits]), last.eq(left == 1),
                         ready.eq(left == 1)]
        with m.Else():
            m.d.sync += [counting.eq(0), ready.eq(1)]

        # Stage 1: the accepted pair; the reciprocal products j * M, one per block size.
        v1 = Signal()
        j1 = Signal(n, reset_less=True)
        x1 = Signal(self.i.p.value.shape(), reset_less=True)
        m.d.sync += [v1.eq(take), j1.eq(self.i.p.index), x1.eq(self.i.p.value)]
        prods = []
        for p, (mul, _s) in zip(self._ps, self._recips):
            if p == 1:
                prods.append(None)
                continue
            prod = Signal(n + mul.bit_length(), name=f"recip_prod_{p}")
            m.d.comb += prod.eq(j1 * Const(mul, mul.bit_length()))
            prods.append(prod)

        # Stage 2: J and j registered; c = j - J*p and the first addresses.
        v2 = Signal()
        j2 = Signal(n, reset_less=True)
        x2 = Signal.like(x1, reset_less=True)
        quots = [Signal(n, name=f"quot_{p}", reset_less=True) for p in self._ps]
        m.d.sync += [v2.eq(v1), j2.eq(j1), x2.eq(x1)]
        for q, prod, (_mul, s) in zip(quots, prods, self._recips):
            m.d.sync += q.eq(j1 if prod is None else prod[s:s + n])
        columns = []
        for p, q in zip(self._ps, quots):
            col = Signal(w, name=f"col_{p}")
            m.d.comb += col.eq((j2 - q * Const(p, p.bit_length()))[:w])
            columns.append(col)
        big_j = Signal(n)
        col = Signal(w)
        step = Signal(aab)  # p of the layer
        m.d.comb += [
            big_j.eq(self._select(quots)),
            col.eq(self._select(columns)),
            step.eq(self._select([Const(p, aab) for p in self._ps])),
        ]

        # ``op``: the first op of a pair from stage 2, the later ones by adding the steps.
        op_left = Signal(self.slot_bits)
        op_last = Signal()
        m.d.comb += op_last.eq(~op_left.any())
        with m.If(v2):
            m.d.sync += [
                self.op.valid.eq(1),
                self.op.w_addr.eq((self.w_base + j2)[:wab]),
                self.op.k_addr.eq((self.k_base + big_j)[:kab]),
                self.op.c.eq(col),
                self.op.x.eq(x2),
                self.op.acc_addr.eq(0),
                op_left.eq((self.slots - 1)[:self.slot_bits]),
            ]
            if self._sel_bits:
                m.d.sync += self.op.sel.eq(self.sel)
        with m.Elif(self.op.valid & ~op_last):
            m.d.sync += [
                self.op.w_addr.eq((self.op.w_addr + self.w_step)[:wab]),
                self.op.k_addr.eq((self.op.k_addr + self.k_step)[:kab]),
                self.op.acc_addr.eq((self.op.acc_addr + step)[:aab]),
                op_left.eq((op_left - 1)[:self.slot_bits]),
            ]
        with m.Else():
            m.d.sync += self.op.valid.eq(0)
        # ``busy`` is ``counting | v1 | v2 | op.valid`` as a register of its own, loaded with
        # their next values, so that the controller's drain condition meets one flip-flop
        m.d.sync += self.busy.eq(take | (counting & ~last) | v1 | v2 | (self.op.valid & ~op_last))
        return m
