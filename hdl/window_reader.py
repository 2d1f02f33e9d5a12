"""The window reader: activation banks in, the detector's window stream out (docs/design.md 4.2).

For one layer at a time it walks the windows of ``golden.cycles`` in order, block ``b = 0 ..
ceil(n / p_prev) - 1`` and window ``s = 0 .. S - 1`` (``S = ceil(p_prev / D)``) within it, reads
each from the activation banks (``hdl.act_banks.ActBanks``) and offers it to the detector
(``hdl.nz_detect.NonZeroDetector.input_layout``) when it holds a live word: an empty window is
dropped as its word arrives, so that the detector spends no cycle on it (docs/design.md 9).

Bank layout: producer block ``b`` of ``p_prev`` words (the network input uses ``p_prev = D``) lies
in bank ``b mod NL`` in the wide rows from ``(b div NL) * S``; window ``s`` of block ``b`` is wide
row ``(b div NL) * S + s`` of that bank, its positions ``0 .. D-1`` holding block words ``s*D ..
s*D + D - 1``. The reader keeps counters (bank, row base, ``s``, ``base``) and advances them
incrementally, and decides a window ahead whether the next window is its block's last and whether
that block is the layer's last (no comparison of ``n`` on the read path); ``S`` and the size of a
block's last window come from small per-``p_prev`` tables through a chain of multiplexers. No
divider.

With ``walks`` (docs/design.md 15) it also reads conv layers, one output pixel a ``start``: the
windows of the pixel's patch in the feature map, from a :class:`.patch_walker.PatchWalker` whose
registers take the FC counters' place on the read (``conv``), with the same buffer, drops and
``done``, and ``last`` on the layer's last pixel.
"""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.cycles import bank_read_latency, window_schedule
from permdeal.golden.formats import MAX_BITS
from permdeal.hdl.rom import addr_bits

from .act_banks import read_layout, word_layout
from .lint import eq_const
from .nz_detect import window_layout
from .patch_walker import PatchWalker, check_walks
from .pipeline import delay
from .read_ahead import depth, read_ahead

__all__ = ["WindowReader"]



class WindowReader(wiring.Component):
    """Reads a layer's input windows from the activation banks, one per cycle, as a stream.

    Parameters
    ----------
    banks : int
        ``NL``, the number of activation banks, at least 1.
    width : int
        ``D``, the scan width (activations per wide row and per window), at least 1.
    act_bits : int
        Width of an activation code (signed two's complement), 2 to 32.
    rows : int
        Wide rows per bank (``ActBanks.rows``), at least 1. A layer must fit:
        ``ceil(ceil(n / p_prev) / NL) * S <= rows`` (not checked; row addresses wrap).
    index_bits : int
        ``N``, the width of the input index ``j`` (``NonZeroDetector.index_bits``), at least 1.
    p_prevs : int or sequence of int
        The producer block sizes the reader supports, distinct, each at least 1 (``sel = i``
        selects ``p_prevs[i]``). Include ``D`` for the network input, laid out in blocks of ``D``.
    spans : int or sequence of int
        The read ports a layer's blocks may be spread over (default 1), distinct powers of two
        (``span_sel = i`` selects ``m = spans[i]``): with ``m`` ports the reader's block ``b``
        lies behind port ``b mod m`` (:attr:`port`), in that port's bank ``(b div m) mod NL``
        from row ``(b div (m*NL)) * S`` (a lane group of a layer with fewer groups than the
        engine, docs/design.md 4.2).
    gated : bool
        Whether a read waits for its row to be written (``rows_ok``, ``rows_all``; default
        False; not with ``walks``): the engine's hidden drain, whose next layer reads a block
        only once the drain wrote it (docs/design.md 9).
    walks : sequence of ``golden.conv_walk.ConvWalk``
        Conv walks the reader makes besides the FC walk (default none; docs/design.md 15): a
        :class:`.patch_walker.PatchWalker` of the reader's ``banks``, ``width``, ``rows`` and
        ``index_bits`` (whose checks apply), ``walk_sel = i`` selecting ``walks[i]``.

    Members
    -------
    start : ``In(1)``
        Pulse: start a layer with the descriptor below. Only while the reader is idle (before the
        first layer or from the cycle ``done`` is high on).
    sel : ``In(sel_bits)``
        The layer's ``p_prev = p_prevs[sel]`` (no port with a single block size). A ``sel`` past
        ``len(p_prevs) - 1`` is not allowed.
    span_sel : ``In(span_sel_bits)``
        The layer's ``m = spans[span_sel]`` (no port with a single span); held as ``sel``.
    port : ``Out(port_bits)``
        With ``bank_rd``: the read port of the request, ``b mod m`` (no port when every span
        is 1).
    n : ``In(index_bits)``
        The layer's input count, in ``[1, 2**index_bits - 1]``. ``sel`` and ``n`` must be held
        from the cycle before ``start`` until ``done``: in every idle cycle not in reset the reader
        takes them into the registers of the layer's first window, so that ``start`` meets
        registers only.
    bank_rd : ``Out(ActBanks.read_layout)``
        Read request to an ``ActBanks`` of the same ``banks``, ``width``, ``act_bits``, ``rows``.
    bank_window : ``In(ActBanks.window_layout)``
        That ``ActBanks``' read word and its zero tests (``valid`` is ignored: the reader tracks
        its own request).
    o : ``Out(stream.Signature(NonZeroDetector.input_layout))``
        The windows, ``{base: unsigned(index_bits), mask: unsigned(D), data: ArrayLayout(
        signed(act_bits), D)}``: window ``s`` of block ``b`` has ``base = b*p_prev + s*D``
        (modulo ``2**index_bits``), ``data`` the wide row of the bank layout, and mask bit ``k``
        set iff word ``k`` is live: real (``s*D + k < p_prev`` and ``base + k < n``) and
        ``data[k] != 0``. Of the ``ceil(n / p_prev) * S`` windows of a layer only those with a
        live word, in order: a window whose mask is 0 is read and dropped, never offered
        (docs/design.md 9).
    done : ``Out(1)``
        High for one cycle, the cycle after the last of the layer's windows left the reader:
        accepted on ``o`` or dropped (with no live word in the layer, after the last drop).
    rows_ok, rows_all : ``In(row_bits + 1)``, ``In(1)``
        With ``gated`` only: the next window may be read this cycle when its row is below
        ``rows_ok`` or ``rows_all`` is high (every row written); else the read waits (``start``
        is still taken).
    conv : ``In(1)``
        With walks only. 1: a ``start`` makes one pass of a conv walk, the current output
        pixel's windows (``ConvWalk.windows``: ``base`` the patch index, ``mask`` the real words
        of the window that are non-zero; a padding position's window is read with mask 0 and
        dropped as an empty window is); 0: the FC walk above. Held as ``sel``.
    walk_sel : ``In(walk_sel_bits)``
        With walks: the walk, ``walks[walk_sel]`` (no port with a single walk). Taken as the
        walker's ``sel`` while it waits at a walk's first window: held as ``sel`` from the cycle
        before the ``start`` of the walk's first pixel until that pass's ``done``; it may change
        while the layer's later pixels pass.
    last : ``Out(1)``
        With walks: high with ``done`` when the pass that ended was its layer's last: a conv
        pass of the walk's last output pixel, or an FC pass (always).

    Timing
    ------
    ``latency = golden.cycles.bank_read_latency(banks) + 1`` (``RL``): with ``start`` high in
    cycle ``k`` the first window is valid on ``o`` in cycle ``k + RL`` (the read of window 0 is
    issued in cycle ``k`` itself, its word comes back ``RL - 1`` cycles later and enters the
    output buffer). The output is the buffer of :func:`.read_ahead.read_ahead`: the read enables
    come from registers and ``start`` alone (not from ``o.ready``), and ``o.valid``/``o.payload``
    from registers. The banks' zero tests (``bank_window.nonzero``) meet the real positions as
    a word arrives, on its way into the buffer (the detector's window load then starts at a
    register of the live mask). A window read in cycle ``I`` arrives in ``I + RL - 1``; with no
    live word it is dropped then, and frees its place in the buffer (:attr:`buffer` windows,
    reads in flight included) for the next cycle's read; with one, it is offered from ``I + RL``.
    Window ``w`` is read in cycle ``k + w`` while the buffer has room (with ``o.ready`` high
    every cycle, always): the windows with pairs come in cycles ``k + RL + w``; under
    back-pressure none is lost, repeated or reordered. ``rst`` (synchronous) abandons the layer
    and empties the buffer.

    A conv pass has the same timing over the pixel's windows (docs/design.md 9's schedule holds
    per pixel). After the pass's last window is read the walker holds the next pixel's first
    window, so the next ``start`` (with ``conv`` high) makes the next pixel's pass; after the
    walk's last pixel it waits at the first window of walk ``walk_sel``, so the next ``start``
    with ``conv`` high begins a layer of that walk (``walk_sel`` held from the cycle before).
    An FC pass may come between two conv layers, not inside one (it leaves the walker where it
    is); ``rst`` returns the walker to a walk's first window too.
    """

    def __init__(self, banks, width, act_bits, rows, index_bits, p_prevs, spans=1, walks=(),
                 gated=False):
        self._banks = integer(banks, "window reader banks", 1)
        self._width = integer(width, "window reader width", 1)
        self._act_bits = integer(act_bits, "window reader act_bits", 2, MAX_BITS)
        self._rows = integer(rows, "window reader rows", 1)
        self._index_bits = integer(index_bits, "window reader index_bits", 1)
        if isinstance(p_prevs, (list, tuple)):
            ps = tuple(p_prevs)
        else:
            ps = (p_prevs,)
        if not ps:
            raise PermdealError("window reader needs at least one block size p_prev")
        ps = tuple(integer(p, "window reader block size p_prev", 1) for p in ps)
        repeated = sorted({p for p in ps if ps.count(p) > 1})
        if repeated:
            raise PermdealError(f"window reader block sizes must be distinct, not {ps} "
                                f"(repeated: {', '.join(map(str, repeated))})")
        self._ps = ps
        spans = tuple(spans) if isinstance(spans, (list, tuple)) else (spans,)
        for m in spans:
            integer(m, "window reader span", 1)
            if m & (m - 1):
                raise PermdealError(f"window reader spans must be powers of two, not {m}")
        if not spans or len(set(spans)) != len(spans):
            raise PermdealError(f"window reader spans must be distinct, at least one, not {spans}")
        self._spans = spans
        if not isinstance(walks, (list, tuple)):
            raise PermdealError(f"window reader walks must be a sequence of ConvWalk, not "
                                f"{walks!r}")
        self._walks = (check_walks(self._banks, self._width, self._rows, self._index_bits,
                                   walks) if walks else ())
        if not isinstance(gated, bool):
            raise PermdealError(f"window reader gated must be True or False, not {gated!r}")
        if gated and self._walks:
            raise PermdealError("a gated window reader takes no conv walks")
        self._gated = gated
        d = self._width
        # Per p_prev: S = ceil(p / D) windows per block, and the last window's size L in [1, D].
        self._tables = tuple((-(-p // d), p - (-(-p // d) - 1) * d) for p in ps)
        ports = {"start": In(1)}
        if self.sel_bits:
            ports["sel"] = In(self.sel_bits)
        if self.span_sel_bits:
            ports["span_sel"] = In(self.span_sel_bits)
        ports.update({
            "n": In(self._index_bits),
            "bank_rd": Out(self.read_layout),
            "bank_window": In(self.window_layout),
            "o": Out(stream.Signature(self.window_stream_layout)),
            "done": Out(1),
        })
        if self.port_bits:
            ports["port"] = Out(self.port_bits)
        if gated:
            ports["rows_ok"] = In(self.row_bits + 1)
            ports["rows_all"] = In(1)
        if self._walks:
            ports["conv"] = In(1)
            if self.walk_sel_bits:
                ports["walk_sel"] = In(self.walk_sel_bits)
            ports["last"] = Out(1)
        super().__init__(ports)

    # -- parameters --------------------------------------------------------------------------

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
    def index_bits(self) -> int:
        return self._index_bits

    @property
    def p_prevs(self) -> tuple[int, ...]:
        return self._ps

    # -- derived -----------------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first window on ``o``: the banks' read, then the output
        buffer."""
        return bank_read_latency(self._banks) + 1

    @property
    def buffer(self) -> int:
        """Windows held or in flight at most (``read_ahead.depth`` of the banks' read latency,
        ``golden.cycles.EngineConfig.read_buffer``)."""
        return depth(bank_read_latency(self._banks))

    @property
    def tables(self) -> tuple[tuple[int, int], ...]:
        """``(S, L)`` per block size in ``sel`` order: windows per block, last window's size."""
        return self._tables

    @property
    def walks(self) -> tuple:
        """The conv walks (``()``: none, no ``conv``, ``walk_sel``, ``last``)."""
        return self._walks

    @property
    def walk_sel_bits(self) -> int:
        """Width of ``walk_sel`` (0: no walk or a single one, no ``walk_sel`` port)."""
        return (len(self._walks) - 1).bit_length()

    @property
    def sel_bits(self) -> int:
        """Width of ``sel`` (0: a single block size, no ``sel`` port)."""
        return (len(self._ps) - 1).bit_length()

    @property
    def spans(self) -> tuple[int, ...]:
        return self._spans

    @property
    def span_sel_bits(self) -> int:
        """Width of ``span_sel`` (0: a single span, no ``span_sel`` port)."""
        return (len(self._spans) - 1).bit_length()

    @property
    def port_bits(self) -> int:
        """Width of ``port`` (0 when every span is 1: no ``port``)."""
        return (max(self._spans) - 1).bit_length()

    @property
    def row_bits(self) -> int:
        return addr_bits(self._rows)

    @property
    def bank_bits(self) -> int:
        return addr_bits(self._banks)

    def windows(self, n: int, sel: int = 0) -> list[tuple[int, int, int, int]]:
        """The windows this reader offers for a layer of ``n`` inputs (``golden.cycles
        .window_schedule``, ``base`` wrapped to ``index_bits``)."""
        return [(bank, row, base % (1 << self._index_bits), mask) for bank, row, base, mask
                in window_schedule(n, self._ps[sel], self._width, self._banks)]

    @property
    def read_layout(self) -> data.StructLayout:
        """``bank_rd``: the banks' read request (:func:`.act_banks.read_layout`)."""
        return read_layout(self._banks, self._rows)

    @property
    def window_layout(self) -> data.StructLayout:
        """``bank_window``: the banks' read word (:func:`.act_banks.word_layout`)."""
        return word_layout(self._width, self._act_bits)

    @property
    def window_stream_layout(self) -> data.StructLayout:
        """Payload of ``o``: the detector's windows (:func:`.nz_detect.window_layout`)."""
        return window_layout(self._width, self._act_bits, self._index_bits)

    # -- hardware ----------------------------------------------------------------------------

    def _select(self, values):
        """``values[sel]`` as a chain of muxes (``values[0]`` for a ``sel`` out of range)."""
        out = values[0]
        for i in range(1, len(values)):
            out = Mux(self.sel == i, values[i], out)
        return out

    def _next_bank(self, m, bank, row_base, row):
        """The next block's bank, and row base after the last bank."""
        with m.If(eq_const(bank, self._banks - 1)):
            m.d.sync += [bank.eq(0), row_base.eq((row + 1)[:len(row)]),
                         row.eq((row + 1)[:len(row)])]
        with m.Else():
            m.d.sync += [bank.eq((bank + 1)[:len(bank)]), row.eq(row_base)]

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d, nl, nb = self._width, self._banks, self._index_bits
        s_max = max(s for s, _ in self._tables)
        s_bits = max(1, (s_max - 1).bit_length())
        row_bits, bank_bits = self.row_bits, self.bank_bits
        base_bits = ((1 << nb) + max(self._ps)).bit_length()
        left_bits = base_bits + 1
        full = (1 << d) - 1

        # Issue side: the next window to read, as registers, with what the window needs decided
        # beside them (whether it is its block's last, whether its block is the layer's last,
        # its row), so that the read, the mask and the end of the layer start at registers
        # (docs/design.md 4.2). While idle they hold the layer's first window, taken from ``n``
        # and ``sel`` every cycle: hence ``n`` and ``sel`` a cycle before ``start``.
        active = Signal()
        bank = Signal(bank_bits)
        row_base = Signal(row_bits)  # the block's first row
        row = Signal(row_bits)  # row_base + s
        s = Signal(s_bits)
        base = Signal(base_bits)
        left = Signal(signed(left_bits))  # n - base: inputs from the window's first on
        bleft = Signal(signed(left_bits))  # n - the block's first input
        s_last = Signal()  # s == S - 1
        last_block = Signal()  # bleft <= p_prev: no real input past the block
        going = Signal()
        if self._gated:
            # (``row`` is the next window's, a register: a compare of registers)
            may = Signal()
            m.d.comb += [may.eq(self.rows_all | (row < self.rows_ok)),
                         going.eq((self.start | active) & may)]
        else:
            m.d.comb += going.eq(self.start | active)

        # The layer's constants of its block size, selected by ``sel``: as registers, loaded in
        # every cycle (``sel`` is held from the cycle before ``start``, so they hold the layer's
        # from ``start`` on), for the active window's updates; the first window, taken while
        # idle, selects them directly.
        p_sel = self._select([Const(p, left_bits) for p in self._ps])
        one_window = self._select([Const(int(sc == 1)) for sc, _ in self._tables])
        p_r = Signal(left_bits, name="p_r", reset_less=True)
        p2_r = Signal(left_bits + 1, name="p2_r", reset_less=True)
        one_r = Signal(name="one_window_r", reset_less=True)
        last_size = Signal(range(d + 1), reset_less=True)
        last_mask = Signal(d, reset_less=True)
        m.d.sync += [
            p_r.eq(p_sel), p2_r.eq(2 * p_sel), one_r.eq(one_window),
            last_size.eq(self._select([Const(ls, range(d + 1)) for _, ls in self._tables])),
            last_mask.eq(self._select([Const((1 << ls) - 1, d) for _, ls in self._tables])),
        ]
        mask = Signal(d)
        in_n = [Signal(name=f"in_n_{k}") for k in range(d)]
        for k in range(d):
            m.d.comb += in_n[k].eq(left > k)
        m.d.comb += mask.eq(Mux(s_last, last_mask, full) & Cat(*in_n))
        size = Signal(range(d + 1))
        m.d.comb += size.eq(Mux(s_last, last_size, d))
        layer_last = Signal()
        m.d.comb += layer_last.eq(s_last & last_block)

        # Output side: the read-ahead buffer; the window in flight carries its base and mask,
        # and the mask keeps the real words that are non-zero (the banks' zero tests) as the
        # word arrives.
        f_base = Signal(nb)
        f_mask = Signal(d)
        new = Signal(self.window_stream_layout)
        m.d.comb += [
            new.base.eq(f_base),
            new.mask.eq(f_mask & self.bank_window.nonzero),
            new.data.eq(self.bank_window.data),
        ]
        read_latency = bank_read_latency(nl)
        # (the detector stores a window's base and words when it takes the window: they wait in
        # a circular buffer, so that its handoff moves pointers, not every word's bits; the mask,
        # where its encoder starts, comes from a register)
        # A window with no live word is dropped as it arrives (docs/design.md 9, step 1): the
        # detector only sees windows with pairs. ``live`` is an AND-OR of registers (the mask
        # that travelled with the read and the banks' zero tests) and reaches only the buffer's
        # held flags, occupancy, ring pointer and ``done`` (registers' inputs), not ``o``.
        live = Signal()
        m.d.comb += live.eq(new.mask.any())
        issue, _, drains = read_ahead(m, self.window_stream_layout, going, new, self.o,
                                      read_latency, circular=("base", "data"), keep=live)
        walker = (PatchWalker(self._banks, self._width, self._rows, self._index_bits, self._walks)
                  if self._walks else None)
        if walker is None:
            m.d.comb += [
                self.bank_rd.valid.eq(issue),
                self.bank_rd.bank.eq(bank),
                self.bank_rd.row.eq(row),
            ]
            m.d.sync += self.done.eq(drains & ~active)
        else:
            # A conv pass reads the walker's windows (registers, as the FC walk's); ``conv_r``
            # is ``conv`` taken while idle, so that ``start`` meets registers only.
            m.submodules.walker = walker
            conv_r = Signal(name="conv_r")
            last_r = Signal(name="last_r")  # the pass's windows are its layer's last pixel's
            with m.If(~active):
                m.d.sync += conv_r.eq(self.conv)
            m.d.comb += [
                walker.step.eq(issue & conv_r),
                self.bank_rd.valid.eq(issue),
                self.bank_rd.bank.eq(Mux(conv_r, walker.bank, bank)),
                self.bank_rd.row.eq(Mux(conv_r, walker.row, row)),
            ]
            if walker.sel_bits:
                m.d.comb += walker.sel.eq(self.walk_sel)
            with m.If(issue):
                m.d.sync += last_r.eq(~conv_r | walker.layer_last)
            m.d.sync += [self.done.eq(drains & ~active), self.last.eq(drains & ~active & last_r)]
        # the window's base and mask travel beside its read
        i_base, i_mask = Signal(nb), Signal(d)
        with m.If(issue):
            if walker is None:
                m.d.sync += [i_base.eq(base[:nb]), i_mask.eq(mask)]
            else:
                m.d.sync += [i_base.eq(Mux(conv_r, walker.base, base[:nb])),
                             i_mask.eq(Mux(conv_r, walker.mask, mask))]
        m.d.comb += [f_base.eq(delay(m, i_base, read_latency - 1, "f_base")),
                     f_mask.eq(delay(m, i_mask, read_latency - 1, "f_mask"))]

        # Advance the issue registers; after the layer's last window, and while idle, the
        # layer's first window.
        # the read port of a layer spread over m ports: the block's b mod m, advanced before the
        # bank (port_last: it is m - 1)
        port = Signal(max(1, self.port_bits), name="port")
        if self.port_bits:
            m.d.comb += self.port.eq(port)
            spans = [Const(sp - 1, len(port)) for sp in self._spans]
            span_last = spans[0]
            for i in range(1, len(spans)):
                span_last = Mux(self.span_sel == i, spans[i], span_last)
            port_last = Signal()
            m.d.comb += port_last.eq(port == span_last)
        first = [s.eq(0), bank.eq(0), row_base.eq(0), row.eq(0), base.eq(0), left.eq(self.n),
                 bleft.eq(self.n), s_last.eq(one_window), last_block.eq(self.n <= p_sel)]
        if self.port_bits:
            first.append(port.eq(0))

        def advance():
            """The FC walk's next window after the issued one (not the layer's last)."""
            m.d.sync += [base.eq((base + size)[:base_bits]),
                         left.eq((left - size)[:left_bits])]
            with m.If(s_last):
                m.d.sync += [s.eq(0), s_last.eq(one_r),
                             bleft.eq((bleft - p_r)[:left_bits]),
                             last_block.eq(bleft <= p2_r)]
                if self.port_bits:
                    with m.If(~port_last):
                        m.d.sync += [port.eq(port + 1), row.eq(row_base)]
                    with m.Else():
                        m.d.sync += port.eq(0)
                        self._next_bank(m, bank, row_base, row)
                else:
                    self._next_bank(m, bank, row_base, row)
            with m.Else():
                # the next window is its block's last when this one is the last but one
                m.d.sync += [s.eq((s + 1)[:s_bits]), row.eq((row + 1)[:row_bits]),
                             s_last.eq(self._select([eq_const(s, sc - 2) if sc > 1
                                                     else Const(0)
                                                     for sc, _ in self._tables]))]

        if walker is None:
            with m.If(issue):
                m.d.sync += active.eq(~layer_last)
                with m.If(layer_last):
                    m.d.sync += first
                with m.Else():
                    advance()
            with m.Elif(~active):
                m.d.sync += [active.eq(self.start), *first]
        else:
            # a pass ends with the FC layer's last window or the conv pixel's last; the FC
            # walk's registers hold during a conv pass and take the first window while idle
            with m.If(issue):
                m.d.sync += active.eq(~Mux(conv_r, walker.pixel_last, layer_last))
            with m.Elif(~active):
                m.d.sync += active.eq(self.start)
            with m.If(issue & ~conv_r):
                with m.If(layer_last):
                    m.d.sync += first
                with m.Else():
                    advance()
            with m.Elif(~active):
                m.d.sync += first
        return m
