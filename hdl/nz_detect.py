"""The non-zero detector: windows of activations in, non-zero (j, x_j) pairs out (docs/design.md 4.2).

The zero test itself is made before: the activation banks (``hdl.act_banks``) test each word they
read, and the window reader (``hdl.window_reader``) keeps the real non-zero words in the window's
``mask`` as the word arrives, so that the detector's window load starts at a register of that
mask."""

from functools import reduce
from typing import Any

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.golden.formats import MAX_BITS

__all__ = ["NonZeroDetector", "pair_layout", "window_layout"]

def window_layout(width: int, act_bits: int, index_bits: int) -> data.StructLayout:
    """A window: ``base`` from bit 0, then ``mask`` (the live words), then ``data`` (word 0
    lowest)."""
    return data.StructLayout({
        "base": unsigned(index_bits),
        "mask": unsigned(width),
        "data": data.ArrayLayout(signed(act_bits), width),
    })


def pair_layout(index_bits: int, act_bits: int) -> data.StructLayout:
    """A non-zero pair: ``index`` from bit 0, then ``value``, then ``last``."""
    return data.StructLayout({
        "index": unsigned(index_bits),
        "value": signed(act_bits),
        "last": unsigned(1),
    })


class NonZeroDetector(wiring.Component):
    """Zero-skipping scan of one window of ``width`` activations per transfer, one pair per cycle.

    A window is ``D = width`` consecutive activation words of the input vector, word ``k`` being
    ``x[base + k]``; ``mask`` bit ``k`` says whether word ``k`` is live: real (not past the end
    of a producer block or past ``n``, see ``golden.cycles``) and non-zero. The producer (the
    window reader) computes it; the detector does not look at the words' values. For each window
    the detector emits the live words in ascending position ``k`` as pairs ``(index = base + k,
    value = x[base + k])``; a window with mask 0 emits nothing. Words whose mask bit is clear are
    ignored whatever their value. ``index`` is ``base + k`` modulo ``2**index_bits``; the
    controller never places a real word past the index range.

    Parameters
    ----------
    width : int
        ``D``, the scan width: activation words examined per window (``EngineConfig.scan_width``),
        at least 1.
    act_bits : int
        Width of an activation code (signed two's complement), 2 to 32.
    index_bits : int
        Width of the input index ``j``, at least 1.

    Members
    -------
    i : ``In(stream.Signature(input_layout))``
        Window stream; its payload is a struct ``{base: unsigned(index_bits), mask: unsigned(D),
        data: ArrayLayout(signed(act_bits), D)}``, packed from bit 0 in that order, so word ``k``
        sits at bits ``[index_bits + D + k*act_bits, ... + act_bits)`` of the Verilog port
        ``i__payload`` and mask bit ``k`` at bit ``index_bits + k``.
    o : ``Out(stream.Signature(output_layout))``
        Pair stream; its payload is a struct ``{index: unsigned(index_bits), value:
        signed(act_bits), last: 1 bit}`` packed from bit 0 in that order (Verilog port
        ``o__payload``). ``last`` is set on the final pair of its window.

    Timing
    ------
    One window register holds the words and the mask of the live words not yet handed off
    (``remaining``), with the lowest of them one-hot beside it (a priority encoder, isolate the
    lowest set bit, fills it with the register), which picks the pair on offer;
    ``o.valid = (remaining != 0)`` and ``latency = 1``: a window accepted in cycle ``k`` (``i.valid & i.ready``) has its first pair valid in cycle
    ``k + 1``. The register loads a new window in any cycle in which it holds no remaining
    live word (after reset, or an empty window) and in the cycle in which the last pair of its
    window is handed off (``o.valid & o.ready & o.p.last``); whether the register holds a pair
    (``o.valid``) and whether it is the window's last (``o.p.last``) are registers of their
    own, loaded with it::

        i.ready = (remaining == 0) | (o.ready & o.p.last)

    so ``i.ready`` is one gate from ``o.ready`` and registers (and depends on nothing of ``i``);
    no skid buffer. A window's load starts at its ``mask``: the encoder, the at-most-one test and
    the any are shallow trees of gates on it (no carry chain, nothing of the words' values).
    ``o.valid`` and ``o.payload`` come from the register through the encoder alone (no path from
    ``i``). Hence, with ``o.ready`` high every cycle, a window with ``z >= 1`` live words
    occupies exactly ``z`` cycles and one with none exactly 1 cycle, with no bubble between
    windows: if the windows come without idle, window ``w`` is accepted in cycle ``a_0 +
    sum_{v<w} max(1, z_v)``. A consumer that broadcasts each pair for ``B`` cycles (``o.ready``
    only in the pair's ``B``-th cycle) makes that ``sum_{v<w} max(1, B * z_v)``. (In the engine the
    window reader drops the windows with mask 0, docs/design.md 9, so every window it gets has
    ``z_v >= 1``: the issue cycles of ``golden.cycles.layer_cycles``.) ``rst`` (synchronous)
    empties the register.
    """

    def __init__(self, width, act_bits, index_bits):
        self._width = integer(width, "non-zero detector width", 1)
        self._act_bits = integer(act_bits, "non-zero detector act_bits", 2, MAX_BITS)
        self._index_bits = integer(index_bits, "non-zero detector index_bits", 1)
        super().__init__({
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(self.output_layout)),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def act_bits(self) -> int:
        return self._act_bits

    @property
    def index_bits(self) -> int:
        return self._index_bits

    @property
    def latency(self) -> int:
        """Cycles from a window's acceptance to its first pair being valid."""
        return 1

    @property
    def pos_bits(self) -> int:
        """Width of a position ``k`` in ``[0, width)`` (0 when ``width == 1``)."""
        return (self._width - 1).bit_length()

    @property
    def input_layout(self) -> data.StructLayout:
        """Payload of ``i`` (:func:`window_layout`)."""
        return window_layout(self._width, self._act_bits, self._index_bits)

    @property
    def output_layout(self) -> data.StructLayout:
        """Payload of ``o`` (:func:`pair_layout`)."""
        return pair_layout(self._index_bits, self._act_bits)

    def _live(self, window):
        """Mask of a window's live words: its ``mask`` (the producer's zero test)."""
        return window.mask

    def elaborate(self, platform: Any) -> Module:
        d, a = self._width, self._act_bits
        m = Module()

        # The held window; its words and base mean nothing while ``remaining == 0``.
        words = Signal(data.ArrayLayout(signed(a), d), reset_less=True)
        base = Signal(self._index_bits, reset_less=True)
        remaining = Signal(d)  # live words of the held window not yet handed off
        # Registers beside it: ``remaining`` is not 0; it has one set bit (its pair is the
        # window's last); and its lowest set bit, one-hot (the pair on offer). So the handshakes
        # and the pair come from registers through a few gates, and the priority encoder
        # (isolate the lowest set bit, ``v & ~(v - 1)``) works on the next value, off the output.
        valid = Signal()
        single = Signal()
        first = Signal(d)
        rest = Signal(d)
        m.d.comb += rest.eq(remaining & ~first)
        # One-hot to binary position: bit b of k is the OR of the one-hot bits whose position has
        # bit b set (D * log2(D) gates); the value is an AND-OR select by the one-hot
        # (D * act_bits gates). Nothing here is O(D^2).
        pos = Cat(*(Cat(*(first[k] for k in range(d) if k >> b & 1)).any()
                    for b in range(self.pos_bits)))  # empty (0) when D == 1
        value = reduce(lambda x, y: x | y,
                       (words[k].as_unsigned() & first[k].replicate(a) for k in range(d)))
        # Several pairs per cycle would go here: chain N encoders (the next one on ``rest``), give
        # ``o`` N (valid, index, value) lanes, and load/advance on ``rest_N`` instead of ``rest``.

        handoff = Signal()
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.p.index.eq(base + pos),
            self.o.p.value.eq(value),
            self.o.p.last.eq(single),
            handoff.eq(self.o.valid & self.o.ready),
            self.i.ready.eq(~self.o.valid | (self.o.ready & single)),
        ]

        live = Signal(d)
        m.d.comb += live.eq(self._live(self.i.p))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                words.eq(self.i.p.data),
                base.eq(self.i.p.base),
                remaining.eq(live),
                first.eq(_lowest(live)),
                valid.eq(live.any()),
                single.eq(_at_most_one(live)),
            ]
        with m.Elif(handoff):
            m.d.sync += [remaining.eq(rest), first.eq(_lowest(rest)), valid.eq(~single),
                         single.eq(_at_most_one(rest))]
        return m


def _any_tree(bits):
    """``(any, at_most_one)`` of ``bits`` as a balanced tree of small gates: a group has at most
    one set bit when each half has and not both halves have one (no carry chain)."""
    if len(bits) == 1:
        return bits[0], Const(1)
    half = len(bits) // 2
    any_lo, one_lo = _any_tree(bits[:half])
    any_hi, one_hi = _any_tree(bits[half:])
    return any_lo | any_hi, one_lo & one_hi & ~(any_lo & any_hi)


def _lowest(v):
    """The lowest set bit of ``v``, one-hot (0 when ``v`` is 0): bit ``k`` is ``v[k]`` with no
    lower bit set, each an OR tree of its own (no carry chain through the width)."""
    return Cat(v[0], *(v[k] & ~v[:k].any() for k in range(1, len(v))))


def _at_most_one(v):
    """Whether ``v`` has at most one set bit."""
    return _any_tree([v[k] for k in range(len(v))])[1]
