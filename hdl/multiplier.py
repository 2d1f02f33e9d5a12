"""The signed multiplier of a lane: the exact product, in two register stages (docs/design.md 4.2).

A block of its own so that synthesis reports its area apart (``permdeal synth``'s per-PE
breakdown). Three styles (``permdeal gen --multiplier``, :data:`MULTIPLIERS`): ``native``, the
Verilog ``*`` cut in two half products; ``booth``, the same product built from gates (radix-4
Booth rows and a Dadda tree), smaller and faster as standard cells; and ``dsp``, registered
operands and the whole ``*`` into a registered product, the shape of an FPGA's DSP block with its
input and output registers in use (docs/design.md 4.2).
"""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.cycles import MULTIPLIERS
from permdeal.golden.formats import MAX_BITS

__all__ = ["MULTIPLIERS", "SPLIT_ABOVE", "Multiplier", "carry_save_rows"]

#: Widest ``b`` multiplied in one stage; a wider one is split in two halves (see Multiplier).
SPLIT_ABOVE = 8


def _wire(m: Module, value: Value, name: str) -> Signal:
    """``value`` on a named one-bit wire of ``m``: every node of the tree is emitted once (an
    Amaranth expression used twice would be written out twice, and the tree's nodes are used
    two or three times each, level after level)."""
    s = Signal(name=name)
    m.d.comb += s.eq(value)
    return s


def _partial_products(m: Module, a: Value, b: Value, width: int) -> list[list[Value]]:
    """The radix-4 Booth partial products of signed ``a * b`` modulo ``2**width``, as columns:
    ``columns[k]`` holds the bits of weight ``2**k``.

    ``b`` (sign-extended to an even width) is recoded in digits ``d_j = -2*b[2j+1] + b[2j] +
    b[2j-1]`` in ``{-2, ..., 2}``, one a row: ``d_j * a`` shifted by ``2j``, formed as ``|d_j| *
    a`` (``a`` or ``2a``, ``len(a) + 1`` bits), inverted when ``d_j < 0`` with the 1 that
    completes the two's complement as a bit of its own. A row's sign bit, of negative weight
    ``-2**k``, is inverted instead (``-2**k * x = 2**k * ~x - 2**k``), and the ``-2**k`` of all
    rows make one constant whose set bits join their columns: no row is sign-extended."""
    cols = [[] for _ in range(width)]
    const = 0
    top = len(a) - 1
    bb = [b[i] for i in range(len(b))] + [b[-1]] * (len(b) % 2)
    for j in range(len(bb) // 2):
        hi, mid, lo = bb[2 * j + 1], bb[2 * j], bb[2 * j - 1] if j else Const(0, 1)
        one = _wire(m, mid ^ lo, f"booth{j}_one")
        two = _wire(m, (hi & ~mid & ~lo) | (~hi & mid & lo), f"booth{j}_two")
        neg = _wire(m, hi, f"booth{j}_neg")
        for i in range(len(a) + 1):
            mag = one & a[min(i, top)]
            if i:
                mag = mag | (two & a[min(i - 1, top)])
            bit, k = mag ^ neg, 2 * j + i
            if i == len(a):
                bit, const = ~bit, const - (1 << k)
            if k < width:
                cols[k].append(_wire(m, bit, f"pp{j}_{i}"))
        if 2 * j < width:
            cols[2 * j].append(hi)
    const %= 1 << width
    for k in range(width):
        if const >> k & 1:
            cols[k].append(Const(1, 1))
    return cols


def _dadda(m: Module, cols: list[list[Value]]) -> list[list[Value]]:
    """Columns reduced to at most two bits each by full and half adders in Dadda's order (the
    fewest adders for the fewest levels: every level brings the columns down to the next of the
    heights 2, 3, 4, 6, 9, 13, ...); carries out of the top column are dropped (modulo)."""
    heights = [2]
    while heights[-1] < max(map(len, cols)):
        heights.append(heights[-1] * 3 // 2)
    for level, target in enumerate(reversed(heights[:-1])):
        new = [[] for _ in cols]
        carries = [[] for _ in range(len(cols) + 1)]
        for k, col in enumerate(cols):
            bits = list(col)
            while len(bits) + len(carries[k]) > target:
                name = f"dadda{level}_c{k}_{len(carries[k + 1])}"
                if len(bits) + len(carries[k]) - target >= 2 and len(bits) >= 3:
                    x, y, z = bits.pop(0), bits.pop(0), bits.pop(0)
                    bits.append(_wire(m, x ^ y ^ z, f"{name}_s"))
                    carries[k + 1].append(_wire(m, (x & y) | (x & z) | (y & z), f"{name}_c"))
                else:
                    x, y = bits.pop(0), bits.pop(0)
                    bits.append(_wire(m, x ^ y, f"{name}_s"))
                    carries[k + 1].append(_wire(m, x & y, f"{name}_c"))
            new[k] = bits + carries[k]
        cols = new
    assert all(len(col) <= 2 for col in cols)
    return cols


def carry_save_rows(m: Module, a: Value, b: Value, width: int) -> tuple[Value, Value]:
    """Two unsigned rows whose sum is signed ``a * b`` modulo ``2**width``: the radix-4 Booth
    partial products reduced by a Dadda tree (no carry propagates), its nodes wires of
    ``m``."""
    cols = _dadda(m, _partial_products(m, a, b, width))
    rows = [Cat(*[col[r] if len(col) > r else Const(0, 1) for col in cols]) for r in (0, 1)]
    return rows[0], rows[1]


class Multiplier(wiring.Component):
    """``p = a * b`` for signed ``a`` and ``b``, exact and registered.

    Parameters
    ----------
    a_bits, b_bits : int
        Widths of the signed operands, 2 to 32.
    style : str
        One of :data:`MULTIPLIERS`: ``"native"`` (default), the Verilog ``*`` in two halves;
        ``"booth"``, the product built from gates, for standard cells; ``"dsp"``, for an FPGA's
        DSP blocks (see Timing): the same ports, latency and products, a different inside.

    Members
    -------
    a : ``In(signed(a_bits))``
    b : ``In(signed(b_bits))``
    p : ``Out(signed(a_bits + b_bits))``
        The product of the operands of two cycles before (``latency = 2``); no reset, no enable.

    Timing
    ------
    With ``b_bits`` above :data:`SPLIT_ABOVE` the multiply is cut in two stages of about half its
    depth each: the first registers ``a * b_lo`` and ``a * b_hi`` (``b``'s low :attr:`split`
    bits, unsigned, and the rest, signed), the second adds ``a * b_lo + (a * b_hi << split)``
    into the output register. A narrower ``b`` is multiplied whole into a product register,
    then registered again (as a DSP block's pipeline has them).

    With ``style="dsp"`` the first stage registers the operands and the second the whole
    product: no logic before the multiply and none after it, so that an FPGA flow puts both
    registers inside one DSP block (``permdeal synth --target ecp5`` moves them into the
    MULT18X18D, docs/design.md 8) and the block's multiplier is the whole of its stage.

    With ``style="booth"`` the whole multiply is in the first stage but for most of its carries:
    the radix-4 Booth partial products (``b`` recoded, half as many rows; no sign extension) go
    through a Dadda tree of full and half adders. Its :attr:`low_bits` lowest columns are short
    (column ``k`` holds about ``k/2 + 1`` bits, the middle ones twice as many), so they leave the
    tree early and are added in the first stage too: their sum and its carry are registered, with
    the tree's two rows above them; the second stage adds the rows and the carry into the output
    register. Less logic than two half products each with its own adder, and faster; the low
    sum saves a register a bit and shortens the second stage's adder.
    """

    def __init__(self, a_bits, b_bits, *, style="native"):
        self._a_bits = integer(a_bits, "multiplier a_bits", 2, MAX_BITS)
        self._b_bits = integer(b_bits, "multiplier b_bits", 2, MAX_BITS)
        if style not in MULTIPLIERS:
            raise PermdealError(f"multiplier style must be one of {', '.join(MULTIPLIERS)}, not "
                                f"{style!r}")
        self._style = style
        super().__init__({"a": In(signed(self._a_bits)), "b": In(signed(self._b_bits)),
                          "p": Out(signed(self.product_bits))})

    @property
    def a_bits(self) -> int:
        return self._a_bits

    @property
    def b_bits(self) -> int:
        return self._b_bits

    @property
    def style(self) -> str:
        """``"native"`` (``*`` in two halves), ``"booth"`` (gates, the carries saved for the
        second stage) or ``"dsp"`` (registered operands, then the whole ``*``)."""
        return self._style

    @property
    def product_bits(self) -> int:
        """Width of the exact product, ``a_bits + b_bits``."""
        return self._a_bits + self._b_bits

    @property
    def split(self) -> int:
        """Bits of ``b``'s low half when the multiply is cut in two, else 0 (always 0 in the
        ``booth`` and ``dsp`` styles)."""
        native = self._style == "native"
        return self._b_bits // 2 if self._b_bits > SPLIT_ABOVE and native else 0

    @property
    def low_bits(self) -> int:
        """Product bits the ``booth`` style adds in its first stage: as many as ``b`` has Booth
        digits (rows), the columns that hold at most about half as many bits as the tallest;
        0 in the ``native`` and ``dsp`` styles."""
        return min((self._b_bits + 1) // 2, self.product_bits) if self._style == "booth" else 0

    @property
    def latency(self) -> int:
        """Cycles from the operands to their product on ``p``."""
        return 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = Signal(signed(self.product_bits), reset_less=True)
        h = self.split
        if self._style == "dsp":
            a = Signal.like(self.a, name="a_reg", reset_less=True)
            b = Signal.like(self.b, name="b_reg", reset_less=True)
            m.d.sync += [a.eq(self.a), b.eq(self.b), p.eq(a * b)]
        elif self._style == "booth":
            rows = carry_save_rows(m, self.a, self.b, self.product_bits)
            lo = self.low_bits
            low = Signal(lo + 1, reset_less=True)  # the low columns' sum, its carry on top
            s = Signal(unsigned(self.product_bits - lo), reset_less=True)
            c = Signal(unsigned(self.product_bits - lo), reset_less=True)
            m.d.sync += [low.eq(rows[0][:lo] + rows[1][:lo]), s.eq(rows[0][lo:]),
                         c.eq(rows[1][lo:]),
                         p.eq(Cat(low[:lo], s + c + low[lo]))]  # wraps to the product
        elif h:
            lo = Signal(signed(self._a_bits + h + 1), reset_less=True)
            hi = Signal(signed(self._a_bits + self._b_bits - h), reset_less=True)
            m.d.sync += [lo.eq(self.a * self.b[:h]), hi.eq(self.a * self.b[h:].as_signed()),
                         p.eq(lo + (hi << h))]
        else:
            prod = Signal(signed(self.product_bits), reset_less=True)
            m.d.sync += [prod.eq(self.a * self.b), p.eq(prod)]
        m.d.comb += self.p.eq(p)
        return m
