"""cocotb testbench: the window reader's conv walks (``hdl.window_reader.WindowReader`` with
``walks``, its ``hdl.patch_walker.PatchWalker``) wired to an ``ActBanks`` (the harness of
``tests/test_sim_window_reader.py``) against ``golden.conv_walk.ConvWalk.windows``.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"banks": NL, "width": D,
"act_bits": int, "rows": int, "index_bits": N, "p_prevs": [p, ...], "sel_bits": int,
"walk_sel_bits": int, "latency": int, "buffer": int, "walks": [{"input": [C, H, W], "kernel":
[KH, KW], "stride": [sh, sw], "padding": [t, l, b, r], "words": C', "block": q, "pool": null |
[ph, pw]}, ...], "rounds": int, "plan": optional [[walk laid out, [[kind ("conv" or "fc"), walk
or null, back-pressure], ...]], ...]}``; the top level has the harness's ports ``w``, ``start``,
``sel`` (when ``sel_bits``), ``n``, ``conv``, ``walk_sel`` (when ``walk_sel_bits``),
``o__valid/ready/payload``, ``done``, ``last``.

Every round fills the banks with a random feature map of one walk laid out by docs/design.md
15's rule (written here, from the text: pixel ``y*W + x``'s block ``J`` in bank ``J mod NL``,
rows from ``(pixel*ceil(P/NL) + J div NL) * S``, window ``s`` at ``+ s``, positions ``0 .. D-1``
the block's words ``s*D ..``; a third of the codes 0, channels past ``C`` 0) over random words
everywhere else, then runs layers back to back on those banks: that walk's conv layer, another
walk's and an FC pass (``golden.cycles.window_schedule``) in a random order. A conv layer is one
``start`` per output pixel, ``conv`` high; the next pixel's ``start`` comes in the cycle ``done``
is high or after random idle cycles; a new layer's descriptor (``conv``, ``walk_sel``, ``sel``,
``n``) is set in the ``done`` cycle of the pass before or later, and its ``start`` a cycle after
at the earliest. Every offered window is compared in order with the golden one (``base``, ``mask``
= the golden mask ANDed with the words' non-zero tests, ``data`` on the real words); the empty
ones are never offered. Each pass has exactly one ``done``, with ``last`` on the conv layer's last
pixel and on an FC pass only; the pixel's z list (the laid-out walk's equal to
``ConvWalk.window_nnz``) gives with ``o.ready`` high every cycle the cycle each window is offered
(docs/design.md 9, step 1: ``golden.cycles.drain_start``'s reader part) and ``done``'s; under
random back-pressure the reads follow the same rule from the observed acceptances.
"""

import random
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from permdeal.golden.conv import ConvShape
from permdeal.golden.conv_walk import ConvWalk
from permdeal.golden.cycles import window_schedule
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, cycle, reset, to_signed


def walk_of(spec: dict) -> ConvWalk:
    shape = ConvShape(tuple(spec["input"]), 1, tuple(spec["kernel"]), tuple(spec["stride"]),
                      tuple(spec["padding"]))
    pool = None if spec["pool"] is None else tuple(spec["pool"])
    return ConvWalk(shape, int(spec["words"]), int(spec["block"]), pool)


def reads(live: list[bool], taken: list[int], buffer: int, latency: int):
    """docs/design.md 9, step 1: each window's read cycle ``I_w`` (from the pass's ``start``) and
    the cycle it leaves the reader, from the windows' liveness and the acceptances ``taken`` of
    the live ones (``None``: ``o.ready`` always high, a live window taken as it is offered)."""
    read, left, out, it = -1, [], [], iter(taken or [])
    for w, keep in enumerate(live):
        read = read + 1 if w < buffer else max(read + 1, sorted(left)[w - buffer] + 1)
        if keep:
            leave = read + latency if taken is None else next(it)
        else:
            leave = read + latency - 1
        left.append(leave)
        out.append(read)
    return out, left


class TB:
    def __init__(self, dut):
        cfg = self.cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.nl, self.d = int(cfg["banks"]), int(cfg["width"])
        self.act_bits, self.rows = int(cfg["act_bits"]), int(cfg["rows"])
        self.n_bits, self.ps = int(cfg["index_bits"]), [int(p) for p in cfg["p_prevs"]]
        self.sel_bits, self.walk_sel_bits = int(cfg["sel_bits"]), int(cfg["walk_sel_bits"])
        self.latency, self.buffer = int(cfg["latency"]), int(cfg["buffer"])
        self.walks = [walk_of(w) for w in cfg["walks"]]
        self.rounds = int(cfg.get("rounds", len(self.walks)))
        self.row_bits = max(1, (self.rows - 1).bit_length())
        self.pos_bits = max(1, (self.d - 1).bit_length())
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.mem = [[[0] * self.d for _ in range(self.rows)] for _ in range(self.nl)]
        self.pending = []  # (label, index, (bank, row, base, mask)) still to come
        self.beats = []  # cycles of accepted windows
        self.dones = []  # (cycle, last) of the cycles with done high
        self.errors = []
        self.counts = dict(checked=0, expected=0, passes=0, layers=0, conv_layers=0, timed=0,
                           padding=0, empty=0, dropped_conv=0, back_to_back=0, partial=0)
        self.sink = StreamSink(dut.clk, dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                               self.on_beat, self.error)
        dut.start.value = 0
        dut.n.value = 1
        dut.conv.value = 0
        if self.sel_bits:
            dut.sel.value = 0
        if self.walk_sel_bits:
            dut.walk_sel.value = 0
        dut.w.value = 0
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    async def tick(self) -> None:
        """To the next falling edge, recording ``done`` and ``last`` (registers: settled)."""
        await FallingEdge(self.dut.clk)
        done, last = str(self.dut.done.value), str(self.dut.last.value)
        if done not in ("0", "1") or last not in ("0", "1"):
            self.error(f"done {done}, last {last} in cycle {cycle()}")
        elif done == "1":
            self.dones.append((cycle(), int(last)))
        elif last == "1":
            self.error(f"last high without done in cycle {cycle()}")

    def on_beat(self, raw: int) -> None:
        c = cycle()
        self.beats.append(c)
        nb, d, a = self.n_bits, self.d, self.act_bits
        base, mask = raw & ((1 << nb) - 1), raw >> nb & ((1 << d) - 1)
        words = [to_signed(raw >> (nb + d + k * a), a) for k in range(d)]
        if not self.pending:
            self.error(f"unexpected window (base {base}, mask {mask:#x}) in cycle {c}")
            return
        label, idx, (bank, row, wbase, wmask) = self.pending.pop(0)
        self.counts["checked"] += 1
        live = self.live(bank, row, wmask)
        want = (wbase % (1 << nb), live)
        if (base, mask) != want:
            self.error(f"{label} window {idx}: expected (base, mask) = {want}, observed "
                       f"{(base, mask)} (cycle {c})")
            return
        for k in range(d):
            if wmask >> k & 1 and words[k] != self.mem[bank][row][k]:
                self.error(f"{label} window {idx} (bank {bank}, row {row}): word {k} expected "
                           f"{self.mem[bank][row][k]}, observed {words[k]} (cycle {c})")

    def live(self, bank: int, row: int, mask: int) -> int:
        return sum(1 << k for k in range(self.d) if mask >> k & 1 and self.mem[bank][row][k])

    # -- the banks ---------------------------------------------------------------------------

    def layout(self, walk: ConvWalk) -> np.ndarray:
        """A random feature map of ``walk`` written into ``self.mem`` by docs/design.md 15's
        rule, over random words; returns the map ``(C, H, W)``."""
        lo, hi = -(1 << (self.act_bits - 1)), (1 << (self.act_bits - 1)) - 1
        for g in range(self.nl):
            for row in range(self.rows):
                self.mem[g][row] = [self.rng.choice((self.rng.randint(lo, hi), 0, lo, hi))
                                    for _ in range(self.d)]
        c, h, w = walk.shape.in_shape
        fmap = np.asarray([[[self.rng.choice((0, self.rng.randint(lo, hi)))
                             if self.rng.random() < 0.5 else self.rng.randint(lo, hi)
                             for _ in range(w)] for _ in range(h)] for _ in range(c)])
        q, words, d = walk.block, walk.words, self.d
        blocks, s_count = words // q, -(-q // d)
        nb = -(-blocks // self.nl)
        seen = set()
        for y in range(h):
            for x in range(w):
                pix = [int(fmap[ch, y, x]) if ch < c else 0 for ch in range(words)]
                for blk in range(blocks):
                    for s in range(s_count):
                        row = ((y * w + x) * nb + blk // self.nl) * s_count + s
                        assert (blk % self.nl, row) not in seen and row < self.rows
                        seen.add((blk % self.nl, row))
                        for k in range(min(d, q - s * d)):
                            self.mem[blk % self.nl][row][k] = pix[blk * q + s * d + k]
        return fmap

    async def fill(self) -> None:
        """``self.mem`` into every bank, one activation per bank per cycle through ``w``."""
        wl = 1 + self.row_bits + self.pos_bits + self.act_bits
        for row in range(self.rows):
            for k in range(self.d):
                await self.tick()
                word = 0
                for g in range(self.nl):
                    v = self.mem[g][row][k]
                    el = (1 | row << 1 | k << (1 + self.row_bits)
                          | (v & ((1 << self.act_bits) - 1)) << (1 + self.row_bits
                                                                  + self.pos_bits))
                    word |= el << (g * wl)
                self.dut.w.value = word
        await self.tick()
        self.dut.w.value = 0

    # -- passes ------------------------------------------------------------------------------

    def conv_passes(self, k: int, fmap) -> list[dict]:
        walk = self.walks[k]
        pixels = walk.pixels()
        out = []
        for n, (i, j) in enumerate(pixels):
            windows = walk.windows(i, j, self.nl, self.d)
            z = [bin(self.live(b, r, m)).count("1") for b, r, _, m in windows]
            if fmap is not None and z != walk.window_nnz(fmap, i, j, self.d).tolist():
                self.error(f"walk {k} pixel {(i, j)}: the banks' z list {z} is not "
                           f"window_nnz's")
            self.counts["padding"] += sum(1 for *_, m in windows if m == 0)
            self.counts["dropped_conv"] += z.count(0)
            self.counts["partial"] += sum(0 < m < (1 << self.d) - 1 for *_, m in windows)
            out.append(dict(label=f"walk {k} pixel {(i, j)}", windows=windows, z=z,
                            last=n == len(pixels) - 1, first=n == 0, conv=1, sel=k))
        return out

    def fc_pass(self) -> list[dict]:
        sel = self.rng.randrange(len(self.ps))
        p = self.ps[sel]
        top = min((1 << self.n_bits) - 1, (self.rows // -(-p // self.d)) * self.nl * p)
        n = self.rng.randint(1, top)
        windows = window_schedule(n, p, self.d, self.nl)
        z = [bin(self.live(b, r, m)).count("1") for b, r, _, m in windows]
        return [dict(label=f"FC (p_prev {p}, n {n})", windows=windows, z=z, last=True,
                     first=True, conv=0, sel=sel, n=n)]

    async def run_pass(self, ps: dict, backpressure: float, idle: int) -> None:
        """One pass: the descriptor (a new layer's) now, then ``idle`` cycles, then ``start``
        (for a new layer at least a cycle after the descriptor)."""
        dut = self.dut
        if ps["first"]:
            dut.conv.value = ps["conv"]
            if ps["conv"] and self.walk_sel_bits:
                dut.walk_sel.value = ps["sel"]
            if not ps["conv"]:
                if self.sel_bits:
                    dut.sel.value = ps["sel"]
                dut.n.value = ps["n"]
            idle = max(idle, 1)
        for _ in range(idle):
            await self.tick()
        if idle == 0:
            self.counts["back_to_back"] += 1
        self.sink.backpressure = backpressure
        windows, z = ps["windows"], ps["z"]
        live = [bool(v) for v in z]
        self.pending = [(ps["label"], i, w) for i, w in enumerate(windows) if live[i]]
        self.counts["expected"] += len(self.pending)
        self.counts["empty"] += live.count(False)
        b0, d0 = len(self.beats), len(self.dones)
        dut.start.value = 1
        c0 = cycle()
        await self.tick()
        dut.start.value = 0
        limit = 20 + len(windows) * (1 + int(20 * backpressure))
        for _ in range(limit):
            if len(self.dones) > d0:
                break
            await self.tick()
        self.counts["passes"] += 1
        beats, dones = self.beats[b0:], self.dones[d0:]
        if self.pending:
            self.error(f"{ps['label']}: {len(self.pending)} windows never came")
            self.pending = []
            return
        if backpressure == 0:
            self.counts["timed"] += 1
            read, left = reads(live, None, self.buffer, self.latency)
            want = [c0 + r + self.latency for r, keep in zip(read, live) if keep]
            if beats != want:
                self.error(f"{ps['label']} without back-pressure: windows in cycles "
                           f"{[b - c0 for b in beats]}, expected {[w - c0 for w in want]} "
                           f"(from start)")
        else:
            read, left = reads(live, [b - c0 for b in beats], self.buffer, self.latency)
            early = [(b, c0 + r + self.latency) for b, r in
                     zip(beats, [r for r, keep in zip(read, live) if keep])
                     if b < c0 + r + self.latency]
            if early:
                self.error(f"{ps['label']}: windows taken before they were read (cycle, "
                           f"earliest): {early}")
        expect = [(c0 + max(left) + 1, int(ps["last"]))]
        if dones != expect:
            self.error(f"{ps['label']}: (done, last) in cycles {dones}, expected {expect} "
                       f"(start in {c0})")

    def plan(self) -> list[tuple[int, list[tuple[str, int | None, float]]]]:
        """The rounds: the walk whose map is laid out, and the layers run on it ``(kind, walk,
        back-pressure)``; the config's ``plan``, or every walk in turn then at random, each
        round that walk's layer, an FC pass and another walk's layer in a random order."""
        if self.cfg.get("plan"):
            return [(int(k), [(kind, None if j is None else int(j), float(bp))
                              for kind, j, bp in layers]) for k, layers in self.cfg["plan"]]
        pressures = [0.0, 0.3, 0.0, 0.6]
        out, n = [], 0
        for rnd in range(self.rounds):
            k = rnd % len(self.walks) if rnd < len(self.walks) else \
                self.rng.randrange(len(self.walks))
            layers = [("conv", k), ("fc", None)]
            if len(self.walks) > 1:
                layers.append(("conv", self.rng.choice([j for j in range(len(self.walks))
                                                        if j != k])))
            self.rng.shuffle(layers)
            out.append((k, [(kind, j, pressures[(n + i) % len(pressures)])
                            for i, (kind, j) in enumerate(layers)]))
            n += len(layers)
        return out

    async def run(self) -> None:
        for k, layers in self.plan():
            fmap = self.layout(self.walks[k])
            await self.fill()
            for kind, j, bp in layers:
                passes = self.conv_passes(j, fmap if j == k else None) if kind == "conv" \
                    else self.fc_pass()
                for ps in passes:
                    idle = 0 if self.rng.random() < 0.6 else self.rng.randint(1, 3)
                    await self.run_pass(ps, bp, idle)
                self.counts["layers"] += 1
                self.counts["conv_layers"] += kind == "conv"

    def finish(self, name: str) -> None:
        tb_report(name, mismatches=len(self.errors), dones=len(self.dones), **self.counts)
        assert not self.errors, f"{len(self.errors)} mismatch(es); first: {self.errors[0]}"
        c = self.counts
        assert c["checked"] == c["expected"] > 0, f"checked {c['checked']} of {c['expected']}"


@cocotb.test()
async def test_walks(dut: Any) -> None:
    """Conv layers of every walk and FC passes back to back on random feature maps, with and
    without back-pressure, every window checked in order and timed without back-pressure."""
    tb = TB(dut)
    await reset(dut)
    tb.sink.start()
    await tb.run()
    await tb.tick()
    tb.finish("test_walks")
