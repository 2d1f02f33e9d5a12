# amaranth: UnusedElaboratable=no
"""One set of per-lane activation banks of the engine (docs/design.md 4.2, ``golden.cycles``).

The engine holds two sets, ping and pong: the layer being computed reads its inputs from one while
its lanes write their outputs into the other.
"""

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.cycles import BANK_MUX_LEVELS, bank_read_latency, bank_tree_stages
from permdeal.hdl.rom import addr_bits

from .act_bank import ActBank
from .blackbox import Blackbox
from .pipeline import delay, mux_level

__all__ = ["ActBanks", "read_layout", "word_layout"]


def read_layout(banks: int, rows: int) -> data.StructLayout:
    """A read request of :class:`ActBanks`: ``valid`` from bit 0, then ``bank``, ``row``."""
    return data.StructLayout({
        "valid": unsigned(1),
        "bank": unsigned(addr_bits(banks)),
        "row": unsigned(addr_bits(rows)),
    })


def word_layout(width: int, act_bits: int) -> data.StructLayout:
    """A read word of :class:`ActBanks`: ``valid`` from bit 0, then ``data`` (activation 0
    lowest), then ``nonzero`` (bit ``k``: activation ``k`` is not 0)."""
    return data.StructLayout({
        "valid": unsigned(1),
        "data": data.ArrayLayout(signed(act_bits), width),
        "nonzero": unsigned(width),
    })


class ActBanks(wiring.Component):
    """``banks`` memories of ``rows`` wide words of ``width`` signed activations, one per lane.

    Bank ``g`` belongs to lane ``g`` (``NL = banks``): the lane writes the outputs of its
    block-rows into it, one activation per write, and the next layer reads them back one wide word
    (``D = width`` activations, a window of ``golden.cycles``) per cycle. Every bank is an
    :class:`~.act_bank.ActBank`: ``rows`` words of ``width`` granules, each an activation and
    its non-zero flag, with one write port of one granule and one read port; all start at zero.

    Parameters
    ----------
    banks : int
        ``NL``, the number of banks (lanes), at least 1.
    width : int
        ``D``, activations per wide word (the scan width), at least 1.
    act_bits : int
        Width of an activation code (signed two's complement), 2 to 32.
    rows : int
        Wide words per bank, at least 1.
    groups : int
        ``K``, the read ports (default 1): port ``k`` reads the banks ``g`` with ``g mod K = k``
        (the lane groups of ``golden.cycles.EngineConfig``; ``K`` must divide ``banks``). With
        more than one, ``rd`` and ``window`` are arrays of ``K`` of the layouts below, and port
        ``k``'s ``bank`` is the index ``g div K`` among its own ``banks / K`` banks.
    bank_module : str, optional
        Emit the bank (:class:`~.act_bank.ActBank`) once as the Verilog module of this name and
        instantiate it ``banks`` times (:attr:`blackboxes`; the engine's way, so that synthesis
        handles one bank); by default every bank is elaborated in place.
    ram_module : str, optional
        With ``bank_module``: the bank's memory is emitted once as the Verilog module of this name
        (:class:`~.act_bank.ActBank`'s ``ram_module``).

    Members
    -------
    w : ``In(ArrayLayout(write_layout, banks))``
        One write per bank per cycle, all banks in parallel (the lanes' write-back). Element ``g``
        is a struct ``{valid: 1 bit, row: unsigned(row_bits), pos: unsigned(pos_bits), value:
        signed(act_bits)}`` packed from bit 0 in that order; element ``g`` starts at bit
        ``g * len(write_layout)`` of the Verilog port ``w``. With ``valid`` set, activation
        ``pos`` of word ``row`` of bank ``g`` becomes ``value`` at the next rising edge; the other
        activations of the word keep theirs. A ``pos`` past ``width - 1`` writes nothing; a ``row``
        past ``rows - 1`` is not allowed.
    rd : ``In(read_layout)``
        Read request ``{valid: 1 bit, bank: unsigned(bank_bits), row: unsigned(row_bits)}``
        (packed from bit 0 in that order). ``bank`` and ``row`` are ignored while ``valid`` is low;
        a ``row`` past ``rows - 1`` is not allowed, a ``bank`` past ``banks - 1`` reads bank 0.
    window : ``Out(window_layout)``
        ``{valid: 1 bit, data: ArrayLayout(signed(act_bits), width), nonzero: unsigned(width)}``
        (packed from bit 0 in that order): word ``rd.row`` of bank ``rd.bank``, and bit ``k`` of
        ``nonzero`` set iff ``data[k] != 0``. While ``valid`` is low ``data`` and ``nonzero`` are
        0, so that the windows of two sets of banks of which at most one is read at a time
        combine by an OR, with no select.

    Timing
    ------
    ``latency = golden.cycles.bank_read_latency(banks / groups)``: a request in cycle ``k`` has
    ``window.valid`` high and its word on ``window.data`` in cycle ``k + latency``, both from
    registers. The request's row is registered first, once per port (the one address that fans
    out to every bank starts at a flip-flop); every bank reads that row in every cycle (the
    synchronous read ports, enabled always: ``rd.valid`` only travels beside the read, in
    registers), then a tree of 2:1 multiplexers picks bank ``rd.bank``, with a register after
    every ``BANK_MUX_LEVELS`` levels (``latency = 3`` up to 16 banks, 4 up to 256, 5 up to 4096), so
    that the select's depth and fan-out do not grow with the lanes within a cycle. The tree
    carries each word's non-zero flags (``nonzero``, for the window reader's live mask,
    docs/design.md 4.2), stored beside the activations as they are written, so that no zero
    test follows the read; its last register is cleared when no read comes to it. Requests may
    come every cycle. A read request sees every write of its own cycle and before (the banks read
    a cycle after the request), and none of a later cycle (the read ports are not transparent).
    ``rst`` (synchronous) clears ``window.valid`` (and so the window); the banks keep their
    contents.
    """

    def __init__(self, banks, width, act_bits, rows, *, groups=1, bank_module=None,
                 ram_module=None):
        self._banks = integer(banks, "activation banks", 1)
        self._groups = integer(groups, "activation bank read ports (groups)", 1)
        if self._banks % self._groups:
            raise PermdealError(f"activation bank read ports (groups) must divide the "
                                f"{self._banks} banks, not {self._groups}")
        if ram_module is not None and bank_module is None:
            raise PermdealError("activation banks' ram_module needs bank_module (banks elaborated "
                                "in place keep their memories in place)")
        # checks the bank's parameters
        self._proto = ActBank(width, act_bits, rows, ram_module=ram_module)
        self._width, self._act_bits, self._rows = width, act_bits, rows
        self._bank_boxes = []
        if bank_module is not None:
            self._bank_boxes = [Blackbox(self._proto, bank_module) for _ in range(self._banks)]
        rd, window = self.read_layout, self.window_layout
        if self._groups > 1:
            rd, window = data.ArrayLayout(rd, self._groups), data.ArrayLayout(window, self._groups)
        super().__init__({
            "w": In(data.ArrayLayout(self.write_layout, self._banks)),
            "rd": In(rd),
            "window": Out(window),
        })

    @property
    def banks(self) -> int:
        return self._banks

    @property
    def width(self) -> int:
        return self._width

    @property
    def act_bits(self) -> int:
        return self._act_bits

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def groups(self) -> int:
        """``K``, the read ports."""
        return self._groups

    @property
    def port_banks(self) -> int:
        """Banks that one read port reads, ``banks / groups``."""
        return self._banks // self._groups

    @property
    def latency(self) -> int:
        """Cycles from a read request to its word on ``window``."""
        return bank_read_latency(self.port_banks)

    @property
    def row_bits(self) -> int:
        """Width of a row address (at least 1)."""
        return self._proto.row_bits

    @property
    def pos_bits(self) -> int:
        """Width of a position in a word (at least 1)."""
        return self._proto.pos_bits

    @property
    def bank_bits(self) -> int:
        """Width of a read port's bank select (at least 1)."""
        return addr_bits(self.port_banks)

    @property
    def write_layout(self) -> data.StructLayout:
        """One bank's write: ``valid`` from bit 0, then ``row``, ``pos``, ``value``
        (:attr:`.act_bank.ActBank.write_layout`)."""
        return self._proto.write_layout

    @property
    def read_layout(self) -> data.StructLayout:
        """One port's read request (:func:`read_layout`)."""
        return read_layout(self.port_banks, self._rows)

    @property
    def window_layout(self) -> data.StructLayout:
        """The read word (:func:`word_layout`)."""
        return word_layout(self._width, self._act_bits)

    def _tree_level(self, bit, level):
        """One level of the bank-select tree (:func:`.pipeline.mux_level`)."""
        return mux_level(bit, level)

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The banks' :class:`~.blackbox.Blackbox` instances when ``bank_module`` is given (the
        bank module is then emitted once), else none."""
        return tuple(self._bank_boxes)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        k_count = self._groups
        words = []
        # the request's row, registered once per port: the address that fans out to every
        # bank of the port starts at a flip-flop (no select of the requester's lies before it)
        rows = []
        for k in range(k_count):
            rd = self.rd if k_count == 1 else self.rd[k]
            row = Signal(self.row_bits, name="row" if k_count == 1 else f"row_p{k}",
                         reset_less=True)
            m.d.sync += row.eq(rd.row)
            rows.append(row)
        for g in range(self._banks):
            bank = (self._bank_boxes[g] if self._bank_boxes else
                    ActBank(self._width, self._act_bits, self._rows))
            m.submodules[f"bank{g}"] = bank
            # every bank reads every cycle: the request's validity travels beside the read in
            # registers of its own, so it reaches no memory's enable
            m.d.comb += [bank.w.eq(self.w[g]), bank.rd.valid.eq(1),
                         bank.rd.row.eq(rows[g % k_count])]
            words.append(Cat(bank.data, bank.nonzero))
        for k in range(k_count):
            suffix = "" if k_count == 1 else f"_p{k}"
            ports = (self.rd, self.window) if k_count == 1 else (self.rd[k], self.window[k])
            self._read_tree(m, words[k::k_count], *ports, suffix)
        return m

    def _read_tree(self, m, words, rd, window, suffix):
        """One read port: the bank-select tree over ``words`` (:func:`.pipeline.mux_tree`'s, cut
        by registers every BANK_MUX_LEVELS levels); the select travels beside it."""
        # the select waits out the request's register and the read
        bits = delay(m, rd.bank, 2, f"bank_sel{suffix}")
        level = words + [words[0]] * ((1 << self.bank_bits) - len(words))
        sel = list(bits)
        stages = bank_tree_stages(self.port_banks)
        # the read's valid at the last tree register's input: that register loads 0 without it
        pre = delay(m, rd.valid, self.latency - 1, f"valid{suffix}", reset_less=False)
        for stage in range(1, stages + 1):
            for bit in sel[:BANK_MUX_LEVELS]:
                level = self._tree_level(bit, level)
            sel = sel[BANK_MUX_LEVELS:]
            regs = [Signal.like(w, name=f"tree{stage}_{k}{suffix}", reset_less=True)
                    for k, w in enumerate(level)]
            if stage < stages:
                m.d.sync += [r.eq(w) for r, w in zip(regs, level)]
            else:
                (w,) = level
                m.d.sync += regs[0].eq(Mux(pre, w, 0))
            level = regs
            if sel:
                nxt = Signal(len(sel), name=f"bank_sel{stage + 1}{suffix}", reset_less=True)
                m.d.sync += nxt.eq(Cat(*sel))
                sel = list(nxt)
        (word,) = level
        valid = Signal(name=f"valid_d{self.latency}{suffix}")
        m.d.sync += valid.eq(pre)
        split = self._width * self._act_bits
        m.d.comb += [
            window.valid.eq(valid),
            window.data.eq(word[:split]),
            window.nonzero.eq(word[split:]),
        ]
