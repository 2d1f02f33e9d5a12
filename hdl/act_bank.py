# amaranth: UnusedElaboratable=no
"""One activation bank: a memory of wide words written one activation at a time (docs/design.md 4.2).

:class:`~.act_banks.ActBanks` holds one per lane; the engine emits it once as a Verilog module of
its own (``{name}_act_bank``) and instantiates it for every lane, so that synthesis handles one
bank however many lanes there are. Its words live in a :class:`~.ram.Ram`, elaborated in place or,
with ``ram_module``, emitted once as a Verilog module of its own (synthesis then counts it as a
memory, docs/design.md 8).
"""

from typing import Any

from amaranth.hdl import Cat, Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.golden.formats import MAX_BITS
from permdeal.golden.geometry import ACT_FLAG_BITS
from permdeal.hdl.rom import addr_bits

from .lint import eq_const
from .ram import RamUser

__all__ = ["ActBank"]


class ActBank(RamUser, wiring.Component):
    """``rows`` words of ``width`` signed activations of ``act_bits``, all zero at first.

    Parameters
    ----------
    width, act_bits, rows : int
        As for :class:`~.act_banks.ActBanks`.
    ram_module : str, optional
        Emit the memory (a :class:`~.ram.Ram` of ``max(2, rows)`` words of ``width * act_bits``
        bits, one write enable an activation) as the Verilog module of this name and instantiate
        it (:attr:`blackboxes`); by default it is elaborated in place. The behaviour is the same.

    Members
    -------
    w : ``In(write_layout)``
        ``{valid, row, pos, value}`` from bit 0: with ``valid``, activation ``pos`` of word
        ``row`` becomes ``value`` at the next rising edge (a ``pos`` past ``width - 1`` writes
        nothing).
    rd : ``In({valid, row})``
        With ``valid``, word ``row`` is read.
    data : ``Out(unsigned(width * act_bits))``
        The word of the last read (activation ``k`` at bits ``[k * act_bits, (k + 1) *
        act_bits)``), one cycle after the request, held until the next; the read port is not
        transparent (a write in the request's cycle is not seen).
    nonzero : ``Out(unsigned(width))``
        Beside ``data``: bit ``k`` set iff activation ``k`` is not 0. The flag is stored with the
        activation when it is written (a granule of the memory is the activation and its flag),
        so that no zero test follows a read.
    """

    def __init__(self, width, act_bits, rows, *, ram_module=None):
        self._width = integer(width, "activation bank width", 1)
        self._act_bits = integer(act_bits, "activation bank act_bits", 2, MAX_BITS)
        self._rows = integer(rows, "activation bank rows", 1)
        self._use_ram(ram_module)
        super().__init__({
            "w": In(self.write_layout),
            "rd": In(data.StructLayout({"valid": unsigned(1), "row": unsigned(self.row_bits)})),
            "data": Out(unsigned(self._width * self._act_bits)),
            "nonzero": Out(unsigned(self._width)),
        })

    @property
    def ram_shape(self) -> tuple[int, int, int]:
        """``(width, depth, granularity)`` of the memory (:class:`~.ram.Ram`; at least 2 words:
        a 1-word memory gets a 0-bit address, which Verilator refuses): a granule is an
        activation and its non-zero flag."""
        g = self._act_bits + ACT_FLAG_BITS
        return self._width * g, max(2, self._rows), g

    @property
    def row_bits(self) -> int:
        return addr_bits(self._rows)

    @property
    def pos_bits(self) -> int:
        return addr_bits(self._width)

    @property
    def write_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "row": unsigned(self.row_bits),
                                  "pos": unsigned(self.pos_bits),
                                  "value": signed(self._act_bits)})

    def elaborate(self, platform: Any) -> Module:
        d = self._width
        m = Module()
        ram = self._ram()
        m.submodules.mem = ram  # not transparent: a same-cycle write is not seen (old word)
        # One-hot enable of activation ``pos``; not `pos == 0`, which Yosys emits as `!pos`
        # (WIDTHTRUNC).
        hit = [eq_const(self.w.pos, k) for k in range(d)]
        a = self._act_bits
        g = a + ACT_FLAG_BITS
        granules = [ram.r_data[k * g:(k + 1) * g] for k in range(d)]
        m.d.comb += [
            ram.w_addr.eq(self.w.row),
            ram.w_data.eq(Cat(self.w.value, self.w.value.any()).replicate(d)),
            ram.w_en.eq(self.w.valid.replicate(d) & Cat(*hit)),
            ram.r_addr.eq(self.rd.row),
            ram.r_en.eq(self.rd.valid),
            self.data.eq(Cat(*(g[:a] for g in granules))),
            self.nonzero.eq(Cat(*(g[a] for g in granules))),
        ]
        return m
