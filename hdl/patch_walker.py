"""The patch walker: a conv layer's windows for the window reader (docs/design.md 15).

It holds, as registers, the current window of a conv walk (``golden.conv_walk.ConvWalk``) and
advances on ``step`` to the next, exactly in the order of ``ConvWalk.windows`` over
``ConvWalk.pixels()``: output pixels (row by row, or pooled pixel by pooled pixel), each pixel's
kernel positions ``(u, v)`` row by row, each position's ``P`` blocks and each block's ``S``
windows, or one empty window for a position in the padding. Every address is kept by increments
(no multiply, no divider): the input pixel ``(y, x)`` and its first row ``(y*W + x) * ceil(P/NL)
* S`` (signed: the padding makes them negative), the bank ``J mod NL`` and the row that grows by
``S`` when the bank wraps, the window ``s``, and the patch index ``base`` (``+=`` the window's
size, ``+= C'`` after a padding position). Every decision of a step is made from registers:
the counters' "at the last value" flags are loaded a step ahead (a compare of the counter with a
constant), and whether the position lies inside the input is a pair of flags (``y_in``,
``x_in``) loaded in the step that moves to it, by compares of the current ``y`` and ``x`` with
constants shifted by the move (one per kind of move, and-ed with the move's case from registers;
per walk with several walks, gated by a one-hot walk register: no comparator of two registers).
Those compares also pick the new position's first mask and row (0 in the padding), beside the
row's adder. The constants of each walk are generated into the Verilog; those the adders take
are selected by ``sel`` into registers while the walker waits at a walk's first window.
"""

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.conv_walk import ConvWalk
from permdeal.hdl.rom import addr_bits

from .lint import eq_const

__all__ = ["PatchWalker", "check_walks"]


def _shape(values) -> Any:
    """The narrowest shape holding every value (signed when one is negative)."""
    lo, hi = min(values), max(values)
    if lo >= 0:
        return unsigned(max(1, hi.bit_length()))
    width = max(max(-v - 1, v).bit_length() for v in values) + 1
    return signed(width)


def check_walks(banks: int, width: int, rows: int, index_bits: int, walks) -> tuple:
    """``walks`` (a :class:`ConvWalk` or a sequence of them) as a tuple, checked for a walker of
    ``banks``, ``width``, ``rows`` and ``index_bits`` (checked integers): the messages of
    :class:`PatchWalker`."""
    walks = tuple(walks) if isinstance(walks, (list, tuple)) else (walks,)
    if not walks:
        raise PermdealError("patch walker needs at least one walk")
    for i, w in enumerate(walks):
        if not isinstance(w, ConvWalk):
            raise PermdealError(f"patch walker walk {i} must be a ConvWalk, not {w!r}")
        if w.pool is not None:
            pool = tuple(w.pool) if isinstance(w.pool, (list, tuple)) else ()
            if (len(pool) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                      for v in pool)):
                raise PermdealError(f"patch walker walk {i}: a pooling window must be two "
                                    f"integers >= 1, not {w.pool!r}")
        if not w.pixels():
            raise PermdealError(f"patch walker walk {i} computes no output pixel (output "
                                f"{w.shape.out_hw[0]}x{w.shape.out_hw[1]}, pooling window "
                                f"{w.pool[0]}x{w.pool[1]})")
        kh, kw = w.shape.kernel
        patch = kh * kw * w.words
        if patch > 1 << index_bits:
            raise PermdealError(f"patch walker walk {i}: a patch of {patch} words does not "
                                f"fit index_bits {index_bits}")
        _, h, wd = w.shape.in_shape
        need = h * wd * w.pixel_rows(banks, width)
        if need > rows:
            raise PermdealError(f"patch walker walk {i}: a feature map of {need} rows a bank "
                                f"does not fit {rows} rows")
    return walks


def _within(sig: Signal, lo: int, hi: int) -> Value:
    """``lo <= sig <= hi`` for constants ``lo`` and ``hi``; a bound outside ``sig``'s range
    makes no compare (one that always holds would be constant, which Verilator's lint flags)."""
    shape = sig.shape()
    top = (1 << (shape.width - shape.signed)) - 1
    bottom = -(1 << (shape.width - 1)) if shape.signed else 0
    if lo > top or hi < bottom or lo > hi:
        return Const(0)
    terms = []
    if lo > bottom:
        terms.append(sig >= Const(lo, _shape([lo])))
    if hi < top:
        terms.append(sig <= Const(hi, _shape([hi])))
    if not terms:
        return Const(1)
    out = terms[0]
    for t in terms[1:]:
        out = out & t
    return out


class PatchWalker(wiring.Component):
    """The windows of a conv layer's walk, as registers, one further on every ``step``.

    Parameters
    ----------
    banks : int
        ``NL``, the activation banks, at least 1.
    width : int
        ``D``, the scan width (words a wide row and a window), at least 1.
    rows : int
        Wide rows a bank, at least 1; every walk's feature map must fit: ``H*W*ceil(P/NL)*S <=
        rows``.
    index_bits : int
        Width of ``base`` (the patch index, ``NonZeroDetector.index_bits``), at least 1; every
        walk's patch must fit: ``KH*KW*C' <= 2**index_bits``.
    walks : ConvWalk or sequence of ConvWalk
        The walks (``sel = i`` selects ``walks[i]``), at least one, each computing at least one
        output pixel; a pooling window ``(ph, pw)`` of integers >= 1.

    Members
    -------
    sel : ``In(sel_bits)``
        The walk (no port with a single walk). While the walker waits at a walk's first window
        (after reset and after the last window of a walk's last pixel was stepped over) it takes
        ``sel`` in every cycle into the registers of that walk's first window and of its
        constants: ``sel`` must be held from the cycle before the walk's first ``step`` through
        that step.
    step : ``In(1)``
        Advance to the next window; after the layer's last window, back to the first window of
        walk ``sel``.
    bank, row : ``Out(bank_bits)``, ``Out(row_bits)``
        The window's bank and wide row (0 and 0 for a padding position's window).
    base : ``Out(index_bits)``
        The patch index of the window's first word.
    mask : ``Out(D)``
        The window's real words (those inside its block); 0 for a padding position's window.
    pixel_last : ``Out(1)``
        The window is its output pixel's last.
    layer_last : ``Out(1)``
        The window's output pixel is the walk's last.

    Timing
    ------
    Every output is a register: ``step`` in cycle ``k`` shows the next window in ``k + 1``. One
    step a cycle is allowed (a one-window pixel included). ``rst`` (synchronous) returns to the
    first window of walk ``sel`` (taken in the cycle after).
    """

    def __init__(self, banks, width, rows, index_bits, walks):
        self._banks = integer(banks, "patch walker banks", 1)
        self._width = integer(width, "patch walker width", 1)
        self._rows = integer(rows, "patch walker rows", 1)
        self._index_bits = integer(index_bits, "patch walker index_bits", 1)
        self._walks = check_walks(self._banks, self._width, self._rows, self._index_bits,
                                  walks)
        ports = {}
        if self.sel_bits:
            ports["sel"] = In(self.sel_bits)
        ports.update({
            "step": In(1),
            "bank": Out(self.bank_bits),
            "row": Out(self.row_bits),
            "base": Out(self._index_bits),
            "mask": Out(self._width),
            "pixel_last": Out(1),
            "layer_last": Out(1),
        })
        super().__init__(ports)

    # -- parameters --------------------------------------------------------------------------

    @property
    def banks(self) -> int:
        return self._banks

    @property
    def width(self) -> int:
        return self._width

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def index_bits(self) -> int:
        return self._index_bits

    @property
    def walks(self) -> tuple[ConvWalk, ...]:
        return self._walks

    # -- derived -----------------------------------------------------------------------------

    @property
    def sel_bits(self) -> int:
        """Width of ``sel`` (0: a single walk, no ``sel`` port)."""
        return (len(self._walks) - 1).bit_length()

    @property
    def row_bits(self) -> int:
        return addr_bits(self._rows)

    @property
    def bank_bits(self) -> int:
        return addr_bits(self._banks)

    def windows(self, sel: int = 0) -> list[tuple[int, int, int, int, int, int]]:
        """Walk ``sel``'s windows as the walker shows them, ``(bank, row, base, mask,
        pixel_last, layer_last)``: ``ConvWalk.windows`` over ``ConvWalk.pixels()``."""
        walk = self._walks[sel]
        pixels = walk.pixels()
        out = []
        for k, (i, j) in enumerate(pixels):
            ws = walk.windows(i, j, self._banks, self._width)
            for n, (bank, row, base, mask) in enumerate(ws):
                out.append((bank, row, base, mask, int(n == len(ws) - 1),
                            int(k == len(pixels) - 1)))
        return out

    def constants(self, sel: int = 0) -> dict[str, int]:
        """Walk ``sel``'s constants, as generated into the Verilog (names of the hardware)."""
        return _walk_constants(self._walks[sel], self._banks, self._width)

    # -- hardware ----------------------------------------------------------------------------

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        d, nb = self._width, self._index_bits
        full = (1 << d) - 1
        consts = [_walk_constants(w, self._banks, self._width) for w in self._walks]
        row_bits, bank_bits = self.row_bits, self.bank_bits

        at_start = Signal(init=1)  # waiting at a walk's first window, taking ``sel``

        def select(name):
            """Walk ``sel``'s constant ``name`` through a chain of multiplexers."""
            values = [c[name] for c in consts]
            shape = _shape(values)
            out = Const(values[0], shape)
            for i in range(1, len(values)):
                out = Mux(eq_const(self.sel, i), Const(values[i], shape), out)
            return out

        made = {}

        def const(name):
            """Walk ``sel``'s constant ``name`` for the step: a constant with a single walk, else
            a register loaded from ``sel`` while at a walk's first window (made before the step's
            conditions, so that its load is not inside them)."""
            if name not in made:
                values = [c[name] for c in consts]
                if len(consts) == 1:
                    made[name] = Const(values[0], _shape(values))
                else:
                    made[name] = Signal(_shape(values), name=f"k_{name}", reset_less=True)
                    with m.If(at_start):
                        m.d.sync += made[name].eq(select(name))
            return made[name]

        # The walk as a one-hot register (loaded with the constants), so that a compare with a
        # walk's constant is a compare with a constant, per walk, gated by its bit: shallow
        # gates, not a comparator of two registers.
        if len(consts) > 1:
            walk_oh = Signal(len(consts), name="walk_oh", reset_less=True)
            with m.If(at_start):
                m.d.sync += walk_oh.eq(Cat(*[eq_const(self.sel, k) for k in range(len(consts))]))

        def per_walk(test, *names):
            """``test(*values)`` of walk ``sel``'s constants ``names`` (an int stands for itself
            in every walk): one test per distinct set of values, gated by the walks' bits."""
            rows = [tuple(n if isinstance(n, int) else c[n] for n in names) for c in consts]
            if len(set(rows)) == 1:
                return test(*rows[0])
            out = None
            for vals in sorted(set(rows)):
                bits = [walk_oh[k] for k, r in enumerate(rows) if r == vals]
                gate = bits[0]
                for b in bits[1:]:
                    gate = gate | b
                term = gate & test(*vals)
                out = term if out is None else out | term
            return out

        state = []  # (register, its next value, its first-window constant's name)

        def reg(name, shape, first):
            r = Signal(shape, name=name)
            n = Signal(shape, name=f"{name}_next")
            m.d.comb += n.eq(r)
            state.append((r, n, first))
            return r, n

        class Counter:
            """A counter over ``sizes`` (per walk) values with its "at the last value" flag; no
            register where every walk has one value."""

            def __init__(self, name, sizes):
                self.used = max(sizes) > 1
                if self.used:
                    self.v, self.v_n = reg(name, range(max(sizes)), None)
                    self.last, self.last_n = reg(f"{name}_last", 1, f"{name}_one")
                    self.name, self.one = name, const(f"{name}_one")
                else:
                    self.last = Const(1)

            def inc(self):
                if self.used:
                    at_pen = per_walk(lambda pen: eq_const(self.v, pen), f"{self.name}_pen")
                    m.d.comb += [self.v_n.eq((self.v + 1)[:len(self.v)]),
                                 self.last_n.eq(at_pen)]

            def clear(self):
                if self.used:
                    m.d.comb += [self.v_n.eq(0), self.last_n.eq(self.one)]

            def next_last(self):
                return self.last_n if self.used else Const(1)

        y_shape = _shape([v for c in consts for v in (c["y_min"], c["y_max"])])
        x_shape = _shape([v for c in consts for v in (c["x_min"], c["x_max"])])
        pr_shape = _shape([v for c in consts for v in (c["prow_min"], c["prow_max"])] + [-1])
        pr_shape = signed(max(pr_shape.width, row_bits + 1))
        bank, bank_n = reg("bank", bank_bits, None)
        row, row_n = reg("row", row_bits, None)
        row_base, row_base_n = reg("row_base", row_bits, None)  # the block's first row
        base, base_n = reg("base", nb, None)
        mask, mask_n = reg("mask", d, "mask0_first")
        y, y_n = reg("y", y_shape, "y0")
        x, x_n = reg("x", x_shape, "x0")
        prow, prow_n = reg("prow", pr_shape, "prow0")  # the input pixel's first row
        y_in, y_in_n = reg("y_in", 1, "y_in0")
        x_in, x_in_n = reg("x_in", 1, "x_in0")
        pos_last, pos_last_n = reg("pos_last", 1, "pos_last0")  # the position's last window
        s = Counter("s", [c["S"] for c in consts])
        blk = Counter("blk", [c["P"] for c in consts])
        u = Counter("u", [c["KH"] for c in consts])
        v = Counter("v", [c["KW"] for c in consts])
        pj = Counter("pj", [c["pw"] for c in consts])
        pi = Counter("pi", [c["ph"] for c in consts])
        pb = Counter("pb", [c["NBW"] for c in consts])
        pa = Counter("pa", [c["NBH"] for c in consts])
        pixel_last, pixel_last_n = reg("pixel_last_r", 1, "pixel_last0")
        layer_last, layer_last_n = reg("layer_last_r", 1, "layer_last0")
        # the move out of the current position: with several walks the input pixel's
        # increments are chosen a step ahead (from the counters' next flags), so that each
        # coordinate has one adder of two registers; with one, an adder of a constant per kind
        # of move
        moves = ("dy", "dx", "dr")
        inc = {}
        if len(consts) > 1:
            for name in moves:
                values = [v for c in consts for v in _move_values(c, name)]
                inc[name] = reg(f"move_{name}", _shape(values), f"move_{name}0")
        m.d.comb += [self.bank.eq(bank), self.row.eq(row), self.base.eq(base),
                     self.mask.eq(mask), self.pixel_last.eq(pixel_last),
                     self.layer_last.eq(layer_last)]

        c_lq, c_words, c_mask0 = const("Lq"), const("words"), const("mask0")
        c_last_mask, c_r = const("last_mask"), const("R")
        inside = Signal()
        m.d.comb += inside.eq(y_in & x_in)
        inside_n = Signal()
        m.d.comb += inside_n.eq(y_in_n & x_in_n)
        one_s = const("s_one")
        const("blk_one")
        # per kind of move out of a position (in priority order): its case from the counters'
        # flags and its increments
        kinds = [(~v.last, v.next_last, {"dy": 0, "dx": 1, "dr": c_r}),
                 (~u.last, u.next_last, {"dy": 1, "dx": const("du_x"), "dr": const("du_r")})]
        for t, ctr in enumerate((pj, pi, pb, pa)):
            if ctr.used:
                kinds.append((~ctr.last, ctr.next_last,
                              {name: const(f"t{t}_{name}") for name in moves}))
        for name in inc:
            r, r_n = inc[name]
            value = kinds[-1][2][name]
            for _, next_last, incs in reversed(kinds[:-1]):
                value = Mux(~next_last(), incs[name], value)
            m.d.comb += r_n.eq(value)

        def moved(sig, name):
            """``sig`` (``y``, ``x``, ``prow``) after the move out of the current position."""
            if name in inc:
                return (sig + inc[name][0])[:len(sig)]
            value = (sig + kinds[-1][2][name])[:len(sig)]
            for case, _, incs in reversed(kinds[:-1]):
                value = Mux(case, (sig + incs[name])[:len(sig)], value)
            return value

        prow_moved = Signal(prow.shape(), name="prow_moved")
        m.d.comb += prow_moved.eq(moved(prow, "dr"))

        def enter_position():
            """The next window is a position's first: block 0, window 0, the row of the
            position's pixel (0 in the padding)."""
            s.clear()
            blk.clear()
            m.d.comb += [bank_n.eq(0), mask_n.eq(Mux(inside_n, c_mask0, 0)),
                         pos_last_n.eq(~inside_n | (one_s & const("blk_one")))]

        # Whether the next position lies inside the input: compares of the current ``y`` and
        # ``x`` with constants (shifted by the move), one per kind of move, and-ed with that
        # move's case (from registers) and or-ed, not a chain of the step's conditions.
        y_terms, x_terms = [], []

        def move(case, bounds):
            """In ``case`` (registers' gates) the input pixel moves (by the ``move_*``
            registers); ``bounds`` names the constants ``y >= lo, y <= hi, x >= lo, x <= hi`` of
            the new position's being inside (``None``: ``y`` does not move)."""
            ylo, yhi, xlo, xhi = bounds
            if ylo is not None:
                y_terms.append((case, per_walk(lambda lo, hi: _within(y, lo, hi), ylo, yhi)))
            x_terms.append((case, per_walk(lambda lo, hi: _within(x, lo, hi), xlo, xhi)))

        next_position = Signal()
        m.d.comb += next_position.eq(pos_last & ~pixel_last)
        next_pixel = Signal()
        m.d.comb += next_pixel.eq(pixel_last & ~layer_last)

        with m.If(self.step):
            with m.If(~pos_last):
                # the next window of the same position: the block's next, or the next block's
                with m.If(~s.last):
                    s.inc()
                    m.d.comb += [base_n.eq((base + d)[:nb]),
                                 mask_n.eq(Mux(s.next_last(), c_last_mask, full)),
                                 pos_last_n.eq(s.next_last() & blk.last)]
                with m.Else():
                    s.clear()
                    blk.inc()
                    m.d.comb += [base_n.eq((base + c_lq)[:nb]), mask_n.eq(c_mask0),
                                 pos_last_n.eq(one_s & blk.next_last())]
                    with m.If(eq_const(bank, self._banks - 1)):
                        m.d.comb += bank_n.eq(0)
                    with m.Else():
                        m.d.comb += bank_n.eq((bank + 1)[:bank_bits])
            with m.Elif(~pixel_last):
                # the pixel's next kernel position
                m.d.comb += base_n.eq((base + Mux(inside, c_lq, c_words))[:nb])
                with m.If(~v.last):
                    v.inc()
                    move(next_position & ~v.last, (None, None, -1, "xv_hi"))
                with m.Else():
                    v.clear()
                    u.inc()
                    move(next_position & v.last, (-1, "yu_hi", "xu_lo", "xu_hi"))
                enter_position()
            with m.Elif(~layer_last):
                # the next output pixel's first kernel position
                m.d.comb += base_n.eq(0)
                u.clear()
                v.clear()
                counters = [pj, pi, pb, pa]
                for t, ctr in enumerate(counters):
                    if not ctr.used:
                        continue
                    cond = ~ctr.last
                    for inner in counters[:t]:
                        cond = cond & inner.last
                    with m.If(cond):
                        for inner in counters[:t]:
                            inner.clear()
                        ctr.inc()
                        move(next_pixel & cond,
                             tuple(f"t{t}_{b}" for b in ("ylo", "yhi", "xlo", "xhi")))
                enter_position()
        # the coordinates move with a position step; the row: the next window's in the block,
        # the next block's (the bank wraps: S rows further), or the new position's first (0 in
        # the padding)
        moving = Signal()
        m.d.comb += moving.eq(self.step & pos_last)
        with m.If(moving):
            m.d.comb += [y_n.eq(moved(y, "dy")), x_n.eq(moved(x, "dx")), prow_n.eq(prow_moved)]
        first_row = Signal(row_bits, name="first_row")
        m.d.comb += first_row.eq(Mux(inside_n, prow_moved[:row_bits], 0))
        wraps = Signal()  # the block's last window in the last bank: the next block S rows on
        m.d.comb += wraps.eq(s.last & eq_const(bank, self._banks - 1))
        m.d.comb += [
            row_n.eq(Mux(self.step, Mux(pos_last, first_row,
                                        Mux(~s.last | wraps, (row + 1)[:row_bits], row_base)),
                         row)),
            row_base_n.eq(Mux(self.step & (pos_last | wraps),
                              Mux(pos_last, first_row, (row + 1)[:row_bits]), row_base)),
        ]
        for flag, flag_n, terms in ((y_in, y_in_n, y_terms), (x_in, x_in_n, x_terms)):
            moves, value = terms[0][0], terms[0][0] & terms[0][1]
            for case, test in terms[1:]:
                moves, value = moves | case, value | (case & test)
            m.d.comb += flag_n.eq(Mux(self.step & moves, value, flag))
        # a pixel's last window: its last position's last; the walk's last pixel: every pixel
        # counter at its last value
        m.d.comb += [
            pixel_last_n.eq(pos_last_n & u.next_last() & v.next_last()),
            layer_last_n.eq(pj.next_last() & pi.next_last() & pb.next_last() & pa.next_last()),
        ]

        # At a walk's first window (after reset, and after the layer's last window) every
        # register takes walk ``sel``'s first window, every cycle until the first step.
        load = Signal()
        m.d.comb += load.eq(Mux(self.step, pixel_last & layer_last, at_start))
        m.d.sync += at_start.eq(load)
        with m.If(load):
            m.d.sync += [r.eq(0 if first is None else select(first)) for r, _, first in state]
        with m.Else():
            m.d.sync += [r.eq(n) for r, n, _ in state]
        return m


def _move_values(k: dict[str, int], name: str) -> list[int]:
    """Every value walk constants ``k`` give the move increment ``name`` (``dy``, ``dx``,
    ``dr``)."""
    fixed = {"dy": [0, 1], "dx": [1, k["du_x"]], "dr": [k["R"], k["du_r"]]}[name]
    return fixed + [k[f"t{t}_{name}"] for t in range(4)] + [k[f"move_{name}0"]]


def _walk_constants(walk: ConvWalk, banks: int, width: int) -> dict[str, int]:
    """The constants of one walk: its counters' sizes, the first window, the steps' increments
    and the bounds of the compares that say whether the next position is inside the input."""
    c, h, w = walk.shape.in_shape
    (kh, kw), (sh, sw), (top, left, _, _) = (walk.shape.kernel, walk.shape.stride,
                                             walk.shape.padding)
    oh, ow = walk.shape.out_hw
    ph, pw = walk.pool if walk.pool is not None else (1, 1)
    q, d = walk.block, width
    s_count = -(-q // d)
    lq = q - (s_count - 1) * d
    r = walk.pixel_rows(banks, width)
    full = (1 << d) - 1
    last_mask = (1 << lq) - 1
    mask0 = last_mask if s_count == 1 else full
    nbh, nbw = oh // ph, ow // pw
    k = {"S": s_count, "P": walk.blocks, "KH": kh, "KW": kw, "pw": pw, "ph": ph, "NBW": nbw,
         "NBH": nbh, "Lq": lq, "words": walk.words, "last_mask": last_mask, "mask0": mask0,
         "R": r}
    for name in ("S", "P", "KH", "KW", "pw", "ph", "NBW", "NBH"):
        short = {"S": "s", "P": "blk", "KH": "u", "KW": "v"}.get(name, {
            "pw": "pj", "ph": "pi", "NBW": "pb", "NBH": "pa"}.get(name))
        k[f"{short}_pen"] = max(k[name] - 2, 0)
        k[f"{short}_one"] = int(k[name] == 1)
    # the next position in the pixel: v + 1 (x + 1), or u + 1 and v = 0
    k["xv_hi"] = w - 2
    k["du_x"] = -(kw - 1)
    k["du_r"] = (w - kw + 1) * r
    k["yu_hi"] = h - 2
    k["xu_lo"], k["xu_hi"] = kw - 1, w + kw - 2
    # the next pixel from the last position of this one: (di, dj) by the pixel counters' type
    for t, (di, dj) in enumerate(((0, 1), (1, -(pw - 1)), (-(ph - 1), 1), (1, -(nbw * pw - 1)))):
        dy, dx = di * sh - (kh - 1), dj * sw - (kw - 1)
        k.update({f"t{t}_dy": dy, f"t{t}_dx": dx, f"t{t}_dr": (dy * w + dx) * r,
                  f"t{t}_ylo": -dy, f"t{t}_yhi": h - 1 - dy,
                  f"t{t}_xlo": -dx, f"t{t}_xhi": w - 1 - dx})
    # the move out of the first position (the kinds in the walker's priority order)
    kinds = [(kw, (0, 1, r)), (kh, (1, k["du_x"], k["du_r"]))]
    kinds += [(size, (k[f"t{t}_dy"], k[f"t{t}_dx"], k[f"t{t}_dr"]))
              for t, size in enumerate((pw, ph, nbw, nbh))]
    first_move = next((mv for size, mv in kinds if size > 1), (0, 0, 0))
    k["move_dy0"], k["move_dx0"], k["move_dr0"] = first_move
    # the first window
    y0, x0 = -top, -left
    inside0 = y0 >= 0 and x0 >= 0
    k.update({"y0": y0, "x0": x0, "prow0": (y0 * w + x0) * r, "y_in0": int(y0 >= 0),
              "x_in0": int(x0 >= 0), "mask0_first": mask0 if inside0 else 0})
    pos_last0 = (not inside0) or (s_count == 1 and walk.blocks == 1)
    k["pos_last0"] = int(pos_last0)
    k["pixel_last0"] = int(pos_last0 and kh == 1 and kw == 1)
    k["layer_last0"] = int(len(walk.pixels()) == 1)
    # the ranges the registers hold
    k["y_min"], k["y_max"] = -top, (oh - 1) * sh + kh - 1 - top
    k["x_min"], k["x_max"] = -left, (ow - 1) * sw + kw - 1 - left
    k["prow_min"] = (k["y_min"] * w + k["x_min"]) * r
    k["prow_max"] = (k["y_max"] * w + k["x_max"]) * r
    return k
