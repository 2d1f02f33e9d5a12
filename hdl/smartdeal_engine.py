# amaranth: UnusedElaboratable=no
"""The SmartDeal engine: a whole SmartDeal network on ``L`` MAC lanes with rebuild engines.

::

    i --> nz list (bank 0) --+                                   +--> out_mem --> o
                             +--> issuer --> lane0 .. lane{L-1} --> drain --> writeback
    nz list (bank l+1 mod 2) <-----------------------------------------------+

The engine loads the network's ``n`` inputs, keeping only the non-zero ones, each with its
position (column ``jj`` in its chunk of ``S``, chunk ``c``, block ``k`` of its row), in a list
(``nz``, two banks, ping and pong), and where every chunk of ``S`` inputs starts in it
(``cstart``). Then for every layer and every tile of ``L`` output rows the issuer walks the tile's
runs of live chunks (``run_rom``: the chunks that structural pruning zeroes in every row of the
tile are skipped, ``golden.smartdeal_engine_cycles.tile_runs``) and broadcasts their entries,
one a cycle, to every lane; lane ``l`` rebuilds the weight of
its row for the entry's column (``hdl.smartdeal_engine_lane``, ``hdl.smartdeal_rebuild``),
multiplies and accumulates. At the tile's end the lanes' sums are captured and drained, one a
cycle, through the section-3 write-back (``hdl.writeback``, one unit for all layers); a hidden
layer's non-zero outputs are appended to the other bank's list (so the next layer skips its zero
inputs for free), the last layer's outputs go to ``out_mem`` and stream out. The rule that
predicts every cycle is ``golden.smartdeal_engine_cycles`` (docs/design.md 11.1); the outputs are
``golden.smartdeal_model.SmartDealModel.forward``'s, bit for bit.

With a batch of ``V`` vectors (``batch``) the list holds the non-zero entries of every vector, the
entries of one column consecutive (each with its vector and whether it is its column's first), the
lanes keep ``V`` sums each and rebuild a weight once per column, and a tile drains ``L*V`` sums;
the streams carry a batch interleaved (element ``j`` of every vector, then ``j + 1``).

Every memory is a module of its own (``hdl.smartdeal_memories``, docs/design.md 8): the lists
``nz`` (a :class:`~.ram.Ram`) and the lanes' ROMs are instances of the Verilog modules
``<name>_nz``, ``<name>_lane<l>_ce`` and ``<name>_lane<l>_b`` (:attr:`SmartDealEngine.blackboxes`,
:attr:`SmartDealEngine.memories`); the few words read in the cycle of their address, ``cstart``
(only in an engine whose tiles skip chunks), ``out_mem``, ``run_rom`` and ``bias_mem``, are
register-file submodules (:attr:`SmartDealEngine.register_files`).

Ports and ready/valid rules are the PermDNN engine's (docs/design.md 10): ``i__ready`` is high only
while loading, from reset until the ``n*V``-th input has moved and again from the cycle after the
previous batch's ``last`` output moved; one batch at a time, so a reset after the last output
loses nothing.
"""

import re
from typing import Any

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from permdeal.errors import PermdealError
from permdeal.golden import smartdeal_conv_walk as cw
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden.formats import MAX_BITS
from permdeal.golden.smartdeal_model import SmartDealLayer

from .blackbox import Blackbox
from .lint import eq_const, select
from .output_reader import output_layout
from .ram import Ram
from .smartdeal_engine_lane import EngineLane, pack_b, pack_ce
from .smartdeal_memories import BakedRom, RegFile
from .smartdeal_pixel import PixelMap
from .smartdeal_pool import PoolStage
from .writeback import Writeback

__all__ = ["MAX_LANE_WORDS", "SmartDealEngine", "State", "lane_words"]

#: The most Ce words one lane's ROM may hold (its codes are baked into the Verilog).
MAX_LANE_WORDS = 1 << 18


class State(enum.Enum, shape=3):
    """The controller's states; no state is 0 (Yosys writes ``!state``)."""

    LOAD = 1
    ISSUE = 2
    WAIT = 3
    UNLOAD = 4


def _bits(n):
    """Bits of a counter of ``0 .. n-1`` (at least 1)."""
    return max(1, (max(n, 1) - 1).bit_length())


def lane_words(layers, lanes):
    """Every lane's ROM words and the per-layer bases: ``(ce[lane], b[lane], ce_base, b_base)``.

    Lane ``l`` holds, per layer, the rows ``t*L + l`` of the tiles ``t = 0 .. T-1`` (zeros past
    ``m``): Ce word ``ce_base + t*r + c`` is chunk ``c`` of the row (``S`` codes), basis word
    ``b_base + t*bpr + k`` the basis of the row's block ``k``."""
    ce = [[] for _ in range(lanes)]
    bw = [[] for _ in range(lanes)]
    ce_base, b_base = [], []
    for layer in layers:
        c = layer.codes
        m, n = c.shape
        S, E, h = c.S, c.E, c.rows_per_block
        r = -(-n // S)
        bpr = -(-r // h)
        T = -(-m // lanes)
        ce_base.append(len(ce[0]))
        b_base.append(len(bw[0]))
        codes = np.asarray(c.codes, dtype=np.int64)
        b_int = np.asarray(c.b_int, dtype=np.int64)
        zero_b = [[0] * S for _ in range(S)]
        for lane in range(lanes):
            for t in range(T):
                i = t * lanes + lane
                for ch in range(r):
                    ce[lane].append(pack_ce(codes[i * bpr + ch // h, ch % h], E) if i < m else 0)
                for k in range(bpr):
                    bw[lane].append(pack_b(b_int[i * bpr + k] if i < m else zero_b, c.b_bits))
    return ce, bw, ce_base, b_base


def _check_layers(layers):
    layers = list(layers)
    if not layers:
        raise PermdealError("a SmartDeal engine needs at least one layer")
    for l in layers:
        conv = cw.is_conv(l)
        if not (isinstance(l, SmartDealLayer) or (conv and l.codes is not None)):
            raise PermdealError(f"SmartDeal engine layers must be SmartDealLayer or SmartDeal conv "
                                f"layers, not {type(l).__name__}")
        f = l.fmts
        if max(f.act.bits, f.out.bits, f.weight.bits) > MAX_BITS:
            raise PermdealError(f"layer {l.name}: formats wider than {MAX_BITS} bits")
    cw.check_layers(layers)
    c0 = layers[0].codes
    for l in layers[1:]:
        c = l.codes
        if (c.S, c.E, c.b_bits) != (c0.S, c0.E, c0.b_bits):
            raise PermdealError(f"layer {l.name}: S, E, b_B = {c.S}, {c.E}, {c.b_bits}; the engine "
                                f"needs every layer's equal to the first's ({c0.S}, {c0.E}, "
                                f"{c0.b_bits})")
    for a, b in zip(layers, layers[1:]):
        if a.shape[0] != b.shape[1] or a.fmts.out != b.fmts.act:
            raise PermdealError(f"layers do not chain: {a.name} gives {a.shape[0]} outputs of "
                                f"{a.fmts.out}, {b.name} takes {b.shape[1]} of {b.fmts.act}")
    return layers


class SmartDealEngine(wiring.Component):
    """A SmartDeal engine for one network (module docstring), its codes baked into its ROMs.

    Parameters
    ----------
    layers : sequence of golden.smartdeal_model.SmartDealLayer or golden.conv_model.QuantConvLayer
        The network's layers in order (every layer the same ``S``, ``E`` and ``b_B``): FC layers,
        or conv layers (SmartDeal codes) then FC layers, run by the conv dataflow of
        docs/design.md 16 (a conv network one input at a time, ``batch`` 1).
    lanes : int
        MAC lanes ``L`` (1 to ``golden.smartdeal_engine_cycles.MAX_LANES``), each with its own
        rebuild engine.
    batch : int
        Input vectors ``V`` in flight (1 to ``golden.smartdeal_engine_cycles.MAX_BATCH``).

    Members
    -------
    i : ``In(stream.Signature(signed(in_bits)))``
        The first layer's ``n*V`` input codes per batch, interleaved (index order at ``V = 1``);
        taken while loading.
    o : ``Out(stream.Signature(output_layout(out_bits)))``
        ``{data, last}``: the last layer's ``m*V`` outputs, interleaved, ``last`` on the final one.

    Timing
    ------
    ``golden.smartdeal_engine_cycles.model_cycles`` is the exact count from the first input
    accepted through the last output accepted with no idle and no back-pressure; stalls only add
    their own cycles. :attr:`issue_to_acc` and :attr:`layer_overhead` are that model's terms.
    ``rst`` (synchronous) abandons the inference and returns to loading; nothing of it survives
    (the lists' counts, the accumulators and every counter are registers).
    """

    def __init__(self, layers, lanes, *, batch=1, name="smartdeal_engine"):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise PermdealError(f"engine module name must be a Verilog identifier, not {name!r}")
        self._layers = _check_layers(layers)
        self._lanes = ec.check_lanes(lanes)
        self._batch = ec.check_batch(batch)
        self._name = name
        self._convs = [cw.is_conv(l) for l in self._layers]
        if any(self._convs) and self._batch > 1:
            raise PermdealError(f"batch {self._batch}: a conv network runs one input at a time "
                                "(the lanes keep a sum per output pixel)")
        #: every lane's sums: one per vector in flight, or per output pixel of a conv layer
        self._sums = max(self._batch, cw.sums(self._layers))
        self._mats = [l.matrix_layer() if c else l for l, c in zip(self._layers, self._convs)]
        lay = self._mats
        c0 = lay[0].codes
        self._S, self._E, self._b_bits = c0.S, c0.E, c0.b_bits
        self._act_bits = max(l.fmts.act.bits for l in lay)
        self._acc_bits = max(l.fmts.acc_bits for l in lay)
        self._in_bits, self._out_bits = lay[0].fmts.act.bits, lay[-1].fmts.out.bits
        self._aligns = [(l.align_shift, l.fmts.weight.bits) for l in lay]
        words = sum(-(-l.shape[0] // self._lanes) * -(-l.shape[1] // self._S) for l in lay)
        if words > MAX_LANE_WORDS:
            raise PermdealError(
                f"every lane's Ce ROM would hold {words} words (more than {MAX_LANE_WORDS}) for "
                f"these layers on {self._lanes} lanes; use more lanes")
        ce, bw, self._ce_base, self._b_base = lane_words(lay, self._lanes)
        self._writeback = Writeback([l.fmts for l in lay], relu=[l.relu for l in lay])
        conv = any(self._convs)   # (a conv network's sums, one a pixel, are memories)
        self._lane_units = [EngineLane(self._S, self._E, self._b_bits, self._aligns,
                                       self._act_bits, self._acc_bits, ce[i], bw[i],
                                       (f"{name}_lane{i}_ce", f"{name}_lane{i}_b"),
                                       self._sums,
                                       (f"{name}_lane{i}_sums0", f"{name}_lane{i}_sums1")
                                       if conv else None)
                            for i in range(self._lanes)]
        self._plan()
        super().__init__({
            "i": In(stream.Signature(signed(self._in_bits))),
            "o": Out(stream.Signature(output_layout(self._out_bits))),
        })

    @property
    def name(self) -> str:
        return self._name

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def batch(self) -> int:
        return self._batch

    @property
    def in_bits(self) -> int:
        return self._in_bits

    @property
    def out_bits(self) -> int:
        return self._out_bits

    @property
    def n_inputs(self) -> int:
        return self._layers[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self._layers[-1].shape[0]

    @property
    def issue_to_acc(self) -> int:
        """Cycles from a slot's issue to the lanes' accumulate stage (the non-zero list's read,
        then the lane)."""
        return 1 + self._lane_units[0].latency

    @property
    def layer_overhead(self) -> int:
        """``T_layer - T*P - q``: the last slot's pipeline and the write-back."""
        return self.issue_to_acc + self._writeback.latency

    def _plan(self):
        """The layers' geometry and the engine's memories (constructed, not elaborated)."""
        lay, L, S, V = self._mats, self._lanes, self._S, self._batch
        geo = []
        for l, full in zip(lay, self._layers):
            mo, n = l.shape
            r = -(-n // S)
            h = l.codes.rows_per_block
            g = {"m": mo, "n": full.shape[1], "r": r, "h": h, "bpr": -(-r // h),
                 "T": -(-mo // L), "q": mo - (-(-mo // L) - 1) * L, "conv": cw.is_conv(full),
                 "outs": full.shape[0] * V}
            if g["conv"]:   # docs/design.md 16
                c, hi, wi = full.conv.in_shape
                kh, kw = full.conv.kernel
                g.update({"C": c, "H": hi, "W": wi, "KH": kh, "KW": kw,
                          "drain": len(cw.drain_order(full)),
                          "slots": kh * kw * (g["n"] + c)})
            else:
                g.update({"drain": V, "slots": g["n"] * V + r})
            g["qd"] = g["q"] * g["drain"]
            geo.append(g)
        self._geo = geo
        self._has_conv = any(g["conv"] for g in geo)
        max_r = max(g["r"] for g in geo)
        idx_bits = _bits(max(g["n"] for g in geo) * V)
        # the non-zero lists: two banks of (x, jj, c, k, v, first), and a feature map's positions
        fields = {"x": signed(self._act_bits), "jj": range(max(2, S)), "c": range(max(2, max_r)),
                  "k": range(max(2, max(g["bpr"] for g in geo))), "v": range(max(2, V)),
                  "first": 1}
        if self._has_conv:
            fields.update({"py": range(max(2, max(g.get("H", 1) for g in geo))),
                           "px": range(max(2, max(g.get("W", 1) for g in geo)))})
        self._entry = data.StructLayout(fields)
        self._nz = Blackbox(Ram(self._entry.size, 2 << idx_bits, self._entry.size),
                            f"{self._name}_nz")
        # the chunk starts: cstart[c] = entries of the list before chunk c (two banks, word
        # 2c + bank); only an engine whose tiles skip chunks needs them (else every run starts at
        # the list's first entry and ends at its last)
        # (of a conv layer: cstart[c] = entries before channel c, docs/design.md 16)
        plans = [[] if g["conv"] else ec.tile_runs(l, L) for l, g in zip(lay, geo)]
        self._skips = any(runs != [(0, g["r"])] for plan, g in zip(plans, geo) for runs in plan)
        # (a conv network's engine without skips: the channels' starts only; its FC layers walk
        # the whole list, from entry 0)
        starts = max([max_r if self._skips else 1] + [g.get("C", 0) for g in geo])
        self._cstart = (RegFile(idx_bits + 1, 2 * starts, reads=2)
                        if self._skips or self._has_conv else None)
        bias_bits = max(l.fmts.bias.bits for l in lay)
        self._bias_rom = BakedRom(bias_bits, [int(v) & ((1 << bias_bits) - 1)
                                              for l in lay for v in l.bias], comb=True)
        self._out_mem = RegFile(self._out_bits, max(2, geo[-1]["outs"]))
        # the runs: every tile's live chunks (golden.smartdeal_engine_cycles.tile_runs)
        self._run_layout = data.StructLayout({"a": range(max(2, max_r)),
                                              "b": range(max(2, max_r + 1)), "end": 1, "last": 1})
        runs, self._run_base = [], []
        for plan, g in zip(plans, geo):
            self._run_base.append(len(runs))
            for tile_runs in plan:
                for n_run, (a, b) in enumerate(tile_runs):
                    runs.append(Const.cast(self._run_layout.const(
                        {"a": a, "b": b, "end": int(b == g["r"]),
                         "last": int(n_run == len(tile_runs) - 1)})).value)
        self._run_rom = BakedRom(self._run_layout.size, runs or [0], comb=True)
        # a conv network's own blocks: the drain order, the pixel map, the pooling
        self._drain_rom = self._pixel_map = self._pool = None
        self._drain_base = []
        if self._has_conv:
            order = []
            for l, g in zip(self._layers, geo):
                self._drain_base.append(len(order))
                order += cw.drain_order(l) if g["conv"] else []
            self._drain_rom = BakedRom(max(1, (self._sums - 1).bit_length()), order, comb=True)
            self._pixel_map = PixelMap([l.conv if g["conv"] else None
                                        for l, g in zip(self._layers, geo)])
            self._pool = PoolStage(max(l.fmts.out.bits for l in lay), [
                (l.pool.kind, l.pool.size[0] * l.pool.size[1])
                if g["conv"] and l.pool is not None else None
                for l, g in zip(self._layers, geo)])

    @property
    def blackboxes(self) -> tuple[Blackbox, ...]:
        """The memories emitted as Verilog modules of their own: the lists ``nz``, then every
        lane's Ce and basis ROM."""
        return (self._nz, *(b for lane in self._lane_units for b in lane.blackboxes))

    @property
    def memories(self) -> dict[str, dict]:
        """The :attr:`blackboxes` as synthesis prices them: ``{module: {kind, width, depth,
        rom}}``, kind ``"nz list"``, ``"Ce ROM"``, ``"basis ROM"`` or (a conv network's engine)
        ``"sums"`` (``rom``: read-only, its reads enabled by ``r_en``, as the RAM's)."""
        out = {}
        sums = ["sums", "sums"] if self._has_conv else []
        for box, kind in zip(self.blackboxes,
                             ["nz list", *(["Ce ROM", "basis ROM", *sums] * self._lanes)]):
            out[box.module] = {"kind": kind, "width": box.inner.width,
                               "depth": box.inner.depth, "rom": isinstance(box.inner, BakedRom)}
        return out

    @property
    def register_files(self) -> dict[str, dict]:
        """The memories read in the cycle of their address, synthesized as logic (register
        files): ``{submodule: {width, depth, rom}}``."""
        return {name: {"width": mem.width, "depth": mem.depth,
                       "rom": isinstance(mem, BakedRom)}
                for name, mem in (("cstart", self._cstart), ("out_mem", self._out_mem),
                                  ("run_rom", self._run_rom), ("bias_mem", self._bias_rom),
                                  ("drain_rom", self._drain_rom))
                if mem is not None}

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        lay, L, S, V, geo = self._layers, self._lanes, self._S, self._batch, self._geo
        nl = len(lay)
        max_n = max(g["n"] for g in geo)
        max_r = max(g["r"] for g in geo)
        max_bpr = max(g["bpr"] for g in geo)
        idx_bits = _bits(max_n * V)
        sel_range = range(max(2, nl))

        for i, lane in enumerate(self._lane_units):
            m.submodules[f"lane{i}"] = lane
        wb = self._writeback
        m.submodules.writeback = wb
        conv = self._has_conv
        if conv:
            m.submodules.pixel_map = pmap = self._pixel_map
            m.submodules.pool = pool = self._pool
            m.submodules.drain_rom = drain_rom = self._drain_rom

        # -- the non-zero lists: two banks of (x, jj, c, k, v, first) ---------------------------
        m.submodules.nz = nz = self._nz
        nz_data = data.View(self._entry, nz.r_data)
        w_data = Signal(self._entry)
        m.d.comb += nz.w_data.eq(w_data)
        bias_base = np.concatenate([[0], np.cumsum([g["m"] for g in geo])]).astype(int).tolist()
        m.submodules.bias_mem = bias_rom = self._bias_rom
        m.submodules.out_mem = out_mem = self._out_mem

        state = Signal(State, init=State.LOAD)
        layer = Signal(sel_range)

        def per_layer(key, offset=0):
            """Mux of a per-layer constant by ``layer`` (``offset``: of layer ``layer + offset``,
            clipped at the last)."""
            vals = [geo[min(i + offset, nl - 1)][key] if isinstance(key, str) else
                    key[min(i + offset, nl - 1)] for i in range(nl)]
            return select(layer, vals)

        # -- writing a list (loading, or the write-back of a hidden layer) ----------------------
        w_en = Signal()
        w_x = Signal(signed(self._act_bits))
        w_bank = Signal()
        w_cnt = Signal(idx_bits + 1)                   # entries written to the bank
        w_cnt_next = Signal(idx_bits + 1)
        w_jj, w_c, w_hb, w_k = (Signal(range(max(2, S))), Signal(range(max(2, max_r))),
                                Signal(range(max(2, max(g["h"] for g in geo)))),
                                Signal(range(max(2, max_bpr))))
        w_pos = Signal()                               # a position was written (zero or not)
        w_h = Signal(range(max(g["h"] for g in geo) + 1))  # h of the layer the list feeds
        w_v = Signal(range(max(2, V)))                 # the position's vector
        w_seen = Signal()                              # the column has an entry already
        w_col_end = Signal()                           # the position is its column's last
        m.d.comb += [
            nz.w_addr.eq(Cat(w_cnt[:idx_bits], w_bank)),
            w_data.x.eq(w_x), w_data.jj.eq(w_jj), w_data.c.eq(w_c), w_data.k.eq(w_k),
            w_data.v.eq(w_v), w_data.first.eq(~w_seen),
            nz.w_en.eq(w_en & w_x.any()),
            w_cnt_next.eq(w_cnt + (w_en & w_x.any())),
            w_pos.eq(w_en),
            w_col_end.eq(eq_const(w_v, V - 1) if V > 1 else 1),
        ]
        reset_w = Signal()
        if conv:   # a conv layer's input: positions (y, x) of channel w_ch (docs/design.md 16)
            max_c = max(g.get("C", 1) for g in geo)
            w_py = Signal.like(w_data.py, name="w_py")
            w_px = Signal.like(w_data.px, name="w_px")
            w_ch = Signal(range(max(2, max_c)))
            w_conv = Signal()                          # the list feeds a conv layer
            w_hh = Signal(range(max(g.get("H", 1) for g in geo) + 1))   # its input's size
            w_ww = Signal(range(max(g.get("W", 1) for g in geo) + 1))
            m.d.comb += [w_data.py.eq(w_py), w_data.px.eq(w_px)]
            with m.If(reset_w):
                m.d.sync += [w_py.eq(0), w_px.eq(0), w_ch.eq(0)]
            with m.Elif(w_pos):
                with m.If(w_px == w_ww - 1):
                    m.d.sync += w_px.eq(0)
                    with m.If(w_py == w_hh - 1):
                        m.d.sync += [w_py.eq(0), w_ch.eq(w_ch + 1)]
                    with m.Else():
                        m.d.sync += w_py.eq(w_py + 1)
                with m.Else():
                    m.d.sync += w_px.eq(w_px + 1)
        with m.If(reset_w):
            m.d.sync += [w_cnt.eq(0), w_jj.eq(0), w_c.eq(0), w_hb.eq(0), w_k.eq(0), w_v.eq(0),
                         w_seen.eq(0)]
        with m.Elif(w_pos & ~w_col_end):
            m.d.sync += [w_cnt.eq(w_cnt_next), w_v.eq(w_v + 1), w_seen.eq(w_seen | w_x.any())]
        with m.Elif(w_pos):
            m.d.sync += [w_cnt.eq(w_cnt_next), w_v.eq(0), w_seen.eq(0)]
            with m.If(eq_const(w_jj, S - 1)):
                m.d.sync += [w_jj.eq(0), w_c.eq(w_c + 1)]
                with m.If(w_hb == w_h - 1):
                    m.d.sync += [w_hb.eq(0), w_k.eq(w_k + 1)]
                with m.Else():
                    m.d.sync += w_hb.eq(w_hb + 1)
            with m.Else():
                m.d.sync += w_jj.eq(w_jj + 1)

        # -- the runs: every tile's live chunks (golden.smartdeal_engine_cycles.tile_runs) -------
        m.submodules.run_rom = run_rom = self._run_rom
        run_base = self._run_base
        run = data.View(self._run_layout, run_rom.r_data)
        ri = Signal(range(run_rom.depth))
        m.d.comb += run_rom.r_addr.eq(ri)

        # -- the chunk starts: cstart[c] = entries of the list before chunk c ----------------------
        run_start, run_end = Signal(idx_bits + 1), Signal(idx_bits + 1)   # of the run ri
        if conv:   # the column (c, u, v) a conv layer's tile walks, its chunk and block
            kmax = max(max(g.get("KH", 1), g.get("KW", 1)) for g in geo)
            i_ch = Signal(range(max(2, max_c)))
            i_u, i_v = Signal(range(max(2, kmax))), Signal(range(max(2, kmax)))
            i_chunk = Signal(range(max(2, max_r)))
            i_hb = Signal(range(max(2, max(g["h"] for g in geo))))
            i_kb = Signal(range(max(2, max_bpr)))
            cv = Signal()                              # the layer is a convolution
            ch_last, col_last = Signal(), Signal()
            m.d.comb += [
                cv.eq(per_layer([int(g["conv"]) for g in geo])),
                ch_last.eq(i_ch == per_layer([g.get("C", 1) - 1 for g in geo])),
                col_last.eq(ch_last & (i_u == per_layer([g.get("KH", 1) - 1 for g in geo]))
                            & (i_v == per_layer([g.get("KW", 1) - 1 for g in geo]))),
            ]
        if self._cstart is not None:
            c_bits = _bits(self._cstart.depth // 2)
            m.submodules.cstart = cstart = self._cstart
            w_start = w_pos & eq_const(w_jj, 0) & eq_const(w_v, 0)
            w_at, r_a, r_b = w_c, run.a, run.b
            r_start = cstart.r0_data
            if conv:   # a conv layer's list: where each channel starts
                c_start = w_pos & eq_const(w_py, 0) & eq_const(w_px, 0)
                w_start = Mux(w_conv, c_start, w_start) if self._skips else w_conv & c_start
                w_at, r_a, r_b = (Mux(w_conv, w_ch, w_c), Mux(cv, i_ch, run.a),
                                  Mux(cv, i_ch + 1, run.b))
                if not self._skips:
                    r_start = Mux(cv, cstart.r0_data, 0)
            m.d.comb += [cstart.w_addr.eq(Cat(w_bank, w_at[:c_bits])), cstart.w_data.eq(w_cnt),
                         cstart.w_en.eq(w_start),
                         cstart.r0_addr.eq(Cat(layer[0], r_a[:c_bits])),
                         cstart.r1_addr.eq(Cat(layer[0], r_b[:c_bits])),
                         run_start.eq(r_start), run_end.eq(cstart.r1_data)]

        # -- the issuer -------------------------------------------------------------------------
        nnz = Signal(idx_bits + 1)                     # entries of the list being read
        cyc = Signal(_bits(max(g["slots"] + L * g["drain"] for g in geo)) + 1)   # in the tile
        k = Signal(idx_bits + 1)                       # the next entry of the run
        fresh = Signal(init=1)                         # the run's first cycle: k is its start
        tdone = Signal()                               # the tile's runs are done (padding to L)
        cur, end = Signal(idx_bits + 1), Signal(idx_bits + 1)
        valid, run_done, runs_over = Signal(), Signal(), Signal()
        tile = Signal(range(max(2, max(g["T"] for g in geo))))
        ce_words, b_words = self._lane_units[0].ce_depth, self._lane_units[0].b_depth
        ce_tb = Signal(range(max(2, ce_words)))        # Ce address of the tile's rows
        b_tb = Signal(range(max(2, b_words)))
        wcnt = Signal(range(max(g["qd"] for g in geo) + ec.LAYER_OVERHEAD + cw.DRAIN_REGISTER))
        issuing = Signal()
        op_valid, tile_end = Signal(), Signal()
        if conv:   # a conv layer's runs are its columns; a tile issues L*drain cycles at least
            r_end, r_last = Mux(cv, ch_last, run.end), Mux(cv, col_last, run.last)
            pad_to = per_layer([L * g["drain"] for g in geo])
        else:
            r_end, r_last, pad_to = run.end, run.last, L * V
        m.d.comb += [
            issuing.eq(state == State.ISSUE),
            cur.eq(Mux(fresh, run_start, k)),
            end.eq(Mux(r_end, nnz, run_end)),
            valid.eq(cur < end),
            run_done.eq(issuing & ~tdone & (~valid | (cur + 1 == end))),
            runs_over.eq(tdone | (run_done & r_last)),
            op_valid.eq(issuing & ~tdone & valid),
            tile_end.eq(issuing & runs_over & (cyc + 1 >= pad_to)),
            nz.r_addr.eq(Cat(cur[:idx_bits], layer[0])),
            nz.r_en.eq(op_valid),                      # (read only for an entry issued)
        ]
        with m.If(run_done):
            m.d.sync += [ri.eq(ri + 1), fresh.eq(1)]
        with m.Elif(op_valid):
            m.d.sync += [k.eq(cur + 1), fresh.eq(0)]
        with m.If(tile_end):
            m.d.sync += tdone.eq(0)
        with m.Elif(run_done & r_last):
            m.d.sync += tdone.eq(1)
        if conv:   # the next column: v, then u (the next chunk), then c
            with m.If(run_done & cv):
                with m.If(i_v == per_layer([g.get("KW", 1) - 1 for g in geo])):
                    m.d.sync += [i_v.eq(0), i_chunk.eq(i_chunk + 1)]
                    with m.If(i_hb == per_layer("h") - 1):
                        m.d.sync += [i_hb.eq(0), i_kb.eq(i_kb + 1)]
                    with m.Else():
                        m.d.sync += i_hb.eq(i_hb + 1)
                    with m.If(i_u == per_layer([g.get("KH", 1) - 1 for g in geo])):
                        m.d.sync += [i_u.eq(0), i_ch.eq(i_ch + 1)]
                    with m.Else():
                        m.d.sync += i_u.eq(i_u + 1)
                with m.Else():
                    m.d.sync += i_v.eq(i_v + 1)
            with m.If(tile_end | (state != State.ISSUE)):
                m.d.sync += [i_ch.eq(0), i_u.eq(0), i_v.eq(0), i_chunk.eq(0), i_hb.eq(0),
                             i_kb.eq(0)]
        # Cycle c + 1: the entry is out of the list; the lanes' addresses.
        v1, close1, last1 = Signal(), Signal(), Signal()
        ce_tb1, b_tb1 = Signal.like(ce_tb), Signal.like(b_tb)
        sel1 = Signal(sel_range)
        m.d.sync += [v1.eq(op_valid), close1.eq(tile_end),
                     last1.eq(tile_end & (tile == per_layer("T") - 1)),
                     ce_tb1.eq(ce_tb), b_tb1.eq(b_tb), sel1.eq(layer)]
        e_c, e_k, e_jj, e_x, e_v, e_first = (nz_data.c, nz_data.k, nz_data.jj, nz_data.x,
                                              nz_data.v, nz_data.first)
        if conv:   # a conv layer's entry: the column's chunk, block and v, its output pixel
            cv1, first1 = Signal(), Signal()
            chunk1, kb1 = Signal.like(i_chunk), Signal.like(i_kb)
            u1, kv1 = Signal.like(i_u), Signal.like(i_v)
            m.d.sync += [cv1.eq(cv), first1.eq(fresh), chunk1.eq(i_chunk), kb1.eq(i_kb),
                         u1.eq(i_u), kv1.eq(i_v)]
            m.d.comb += [pmap.y.eq(nz_data.py), pmap.x.eq(nz_data.px), pmap.u.eq(u1),
                         pmap.v.eq(kv1), pmap.sel.eq(sel1)]
            e_c, e_k, e_jj = Mux(cv1, chunk1, e_c), Mux(cv1, kb1, e_k), Mux(cv1, kv1, e_jj)
            e_x = Mux(cv1 & ~pmap.ok, 0, e_x)          # (between strides, or off the output)
            e_v, e_first = Mux(cv1, pmap.pixel, e_v), Mux(cv1, first1, e_first)
        for lane in self._lane_units:
            m.d.comb += [
                lane.ce_addr.eq(ce_tb1 + e_c),
                lane.b_addr.eq(b_tb1 + e_k),
                lane.jj.eq(e_jj),
                lane.x.eq(e_x), lane.v.eq(e_v), lane.first.eq(e_first),
                lane.valid.eq(v1), lane.close.eq(close1), lane.sel.eq(sel1),
            ]
        # The close travels beside the lanes to their accumulate stage (cycle c + 5).
        close_at, last_at = close1, last1
        for i in range(self._lane_units[0].latency):
            c_r, l_r = Signal(name=f"close_{i + 2}"), Signal(name=f"last_{i + 2}")
            m.d.sync += [c_r.eq(close_at), l_r.eq(last_at)]
            close_at, last_at = c_r, l_r

        # -- the drain: the captured sums, one a cycle, into the write-back ---------------------
        d_act = Signal()
        d_idx = Signal(range(max(2, L)))               # the lane drained
        d_v = Signal(range(max(2, max(g["drain"] for g in geo))))   # its vector (or pixel)
        d_cnt = Signal(range(max(2, L + 1)))           # lanes to drain
        o_idx = Signal(range(max(2, max(g["m"] for g in geo))))   # the layer's output drained
        d_lane_end = Signal()
        if conv:   # a conv layer drains its pixels in the drain order (pooling windows)
            m.d.comb += d_lane_end.eq(d_v == per_layer([g["drain"] - 1 for g in geo]))
        else:
            m.d.comb += d_lane_end.eq(eq_const(d_v, V - 1) if V > 1 else 1)
        if conv:   # the lanes' sums are memories: each drain read is asked a cycle early
            nx_act, nx_idx, nx_v = Signal(), Signal.like(d_idx), Signal.like(d_v)
            m.d.comb += [
                nx_act.eq(close_at | (d_act & ~(d_lane_end & (d_idx + 1 == d_cnt)))),
                nx_idx.eq(Mux(close_at, 0, Mux(d_act & d_lane_end, d_idx + 1, d_idx))),
                nx_v.eq(Mux(close_at | (d_act & d_lane_end), 0, Mux(d_act, d_v + 1, d_v))),
                drain_rom.r_addr.eq(per_layer(self._drain_base) + nx_v),
            ]
            nx_sum = Mux(cv, drain_rom.r_data, nx_v)
            for i, lane in enumerate(self._lane_units):
                m.d.comb += [lane.d_addr.eq(nx_sum), lane.d_en.eq(nx_act & eq_const(nx_idx, i))]
            res = select(d_idx, [lane.d_data for lane in self._lane_units])
        else:
            res = select(d_idx, [select(d_v, [lane.result[v] for v in range(V)])
                                 for lane in self._lane_units])
        wb_valid, wb_acc, wb_bias = d_act, res, bias_rom.r_data.as_signed()
        if conv:   # a register after the sums' memories and the lanes' multiplexer
            wb_valid, wb_acc, wb_bias = (Signal(name="wb_valid"), Signal.like(wb.i.p.acc),
                                         Signal.like(wb.i.p.bias))
            m.d.sync += [wb_valid.eq(d_act), wb_acc.eq(res),
                         wb_bias.eq(bias_rom.r_data.as_signed())]
        m.d.comb += [
            bias_rom.r_addr.eq(per_layer(bias_base) + o_idx),
            wb.i.valid.eq(wb_valid),
            wb.i.p.acc.eq(wb_acc),
            wb.i.p.bias.eq(wb_bias),
            wb.o.ready.eq(1),
        ]
        if nl > 1:
            m.d.comb += wb.i.p.sel.eq(layer)
        with m.If(d_act & ~d_lane_end):
            m.d.sync += d_v.eq(d_v + 1)
        with m.Elif(d_act):
            m.d.sync += [d_v.eq(0), d_idx.eq(d_idx + 1), o_idx.eq(o_idx + 1)]
            with m.If(d_idx + 1 == d_cnt):
                m.d.sync += d_act.eq(0)
        with m.If(close_at):   # (a tile's last drain cycle may be the next tile's capture)
            m.d.sync += [d_act.eq(1), d_idx.eq(0), d_v.eq(0),
                         d_cnt.eq(Mux(last_at, per_layer("q"), L))]
        # The write-back's output (pooled): the next layer's list, or the output memory.
        o_valid, o_data = wb.o.valid, wb.o.payload
        if conv:
            m.d.comb += [pool.valid.eq(wb.o.valid), pool.data.eq(wb.o.payload),
                         pool.sel.eq(layer)]
            o_valid, o_data = pool.o_valid, pool.o_data
        last_layer = Signal()
        wo = Signal(range(max(2, geo[-1]["outs"])))    # the output memory's next word
        m.d.comb += [last_layer.eq(eq_const(layer, nl - 1)),
                     out_mem.w_addr.eq(wo), out_mem.w_data.eq(o_data),
                     out_mem.w_en.eq(o_valid & last_layer)]
        with m.If(o_valid):
            m.d.sync += wo.eq(wo + 1)

        # -- the controller ---------------------------------------------------------------------
        l_cnt = Signal(range(max(2, geo[0]["n"] * V)))
        u = Signal(range(max(2, geo[-1]["outs"])))
        last_out = Signal()
        m.d.comb += [last_out.eq(eq_const(u, geo[-1]["outs"] - 1)),
                     out_mem.r0_addr.eq(u),
                     self.o.p.data.eq(out_mem.r0_data), self.o.p.last.eq(last_out)]

        def start_layer():
            """Sync statements that start a layer on the list just written."""
            return [state.eq(State.ISSUE), cyc.eq(0), tile.eq(0), nnz.eq(w_cnt_next),
                    o_idx.eq(0), wo.eq(0), fresh.eq(1), tdone.eq(0)]

        if conv:   # the layer the list feeds: its kind and its input's size
            with m.If(state == State.LOAD):
                m.d.comb += [w_conv.eq(int(geo[0]["conv"])), w_hh.eq(geo[0].get("H", 1)),
                             w_ww.eq(geo[0].get("W", 1))]
            with m.Else():
                m.d.comb += [w_conv.eq(per_layer([int(g["conv"]) for g in geo], offset=1)),
                             w_hh.eq(per_layer([g.get("H", 1) for g in geo], offset=1)),
                             w_ww.eq(per_layer([g.get("W", 1) for g in geo], offset=1))]
        with m.If(state == State.LOAD):
            m.d.comb += [self.i.ready.eq(1), w_h.eq(geo[0]["h"]), w_bank.eq(0),
                         w_en.eq(self.i.valid), w_x.eq(self.i.payload)]
            with m.If(self.i.valid):
                m.d.sync += l_cnt.eq(l_cnt + 1)
                with m.If(eq_const(l_cnt, geo[0]["n"] * V - 1)):
                    m.d.comb += reset_w.eq(1)
                    m.d.sync += [*start_layer(), l_cnt.eq(0), layer.eq(0), ri.eq(run_base[0]),
                                 ce_tb.eq(self._ce_base[0]), b_tb.eq(self._b_base[0])]
        with m.Else():
            m.d.comb += [w_h.eq(per_layer("h", offset=1)), w_bank.eq(~layer[0]),
                         w_en.eq(o_valid & ~last_layer), w_x.eq(o_data)]
        with m.If(state == State.ISSUE):
            with m.If(tile_end):
                m.d.sync += [cyc.eq(0), tile.eq(tile + 1), ce_tb.eq(ce_tb + per_layer("r")),
                             b_tb.eq(b_tb + per_layer("bpr"))]
                with m.If(tile == per_layer("T") - 1):
                    m.d.sync += [state.eq(State.WAIT),
                                 wcnt.eq(per_layer("qd") + ec.LAYER_OVERHEAD
                                         + cw.DRAIN_REGISTER - 1 if conv else
                                         per_layer("q") * V + ec.LAYER_OVERHEAD - 1)]
            with m.Else():
                m.d.sync += cyc.eq(cyc + 1)
        with m.Elif(state == State.WAIT):
            m.d.sync += wcnt.eq(wcnt - 1)
            with m.If(eq_const(wcnt, 0)):
                with m.If(last_layer):
                    m.d.sync += [state.eq(State.UNLOAD), u.eq(0)]
                with m.Else():
                    m.d.comb += reset_w.eq(1)
                    m.d.sync += [*start_layer(), layer.eq(layer + 1),
                                 ri.eq(per_layer(run_base, offset=1)),
                                 ce_tb.eq(per_layer(self._ce_base, offset=1)),
                                 b_tb.eq(per_layer(self._b_base, offset=1))]
        with m.Elif(state == State.UNLOAD):
            m.d.comb += self.o.valid.eq(1)
            with m.If(self.o.ready):
                m.d.sync += u.eq(u + 1)
                with m.If(last_out):
                    m.d.sync += [state.eq(State.LOAD), u.eq(0)]
        with m.Elif(state != State.LOAD):   # no other encoding is reachable; recover by loading
            m.d.sync += state.eq(State.LOAD)
        return m
