"""cocotb testbench: ``hdl.window_reader.WindowReader`` wired to an ``ActBanks`` (the harness of
``tests/test_sim_window_reader.py``) against the window spec of ``golden.cycles``.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"banks": NL, "width": D,
"act_bits": int, "rows": int, "index_bits": N, "p_prevs": [p, ...], "sel_bits": int, "latency":
int, "buffer": int (the reader's windows held or in flight at most), "layers": int (default
12)}``; the top level has ports ``w`` (the banks' writes), ``start``,
``sel`` (when ``sel_bits``), ``n``, ``o__valid/ready/payload``, ``done``.

For every layer the bench draws ``p_prev`` (each in turn, then at random) and ``n`` in ``[1,
2**N - 1]`` that fits the banks (often not a multiple of ``p_prev``), fills every bank with random
words through ``w``, then sets ``sel`` and ``n`` and starts the layer in the next cycle (the
reader's contract: the descriptor a cycle before ``start``). The expected windows come from the golden model,
``golden.cycles.window_schedule`` (the layout the cycle model defines), with Python ints.
Only the windows with a live word (the schedule's real positions whose word is non-zero; a quarter
of the words are 0) are offered; the empty ones are dropped (docs/design.md 9, step 1). Every
window taken by a :class:`StreamSink` (random back-pressure, or none) is compared in order:
``base`` exactly, ``mask`` exactly against the live words and ``data`` on every real position.
The reads follow section 9's step 1 from the observed acceptances: window ``w`` is read in cycle
``I_w = I_{w-1} + 1``, or later the cycle after the ``(w - buffer + 1)``-th of the earlier windows
left (accepted, or dropped in ``I + latency - 1``); a window with pairs may not be taken before
``start + I_w + latency``; without back-pressure it is taken exactly then. ``done`` must be high
exactly in the cycle after the last window left, and never otherwise.
"""

import random
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from permdeal.golden.cycles import window_schedule
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, cycle, reset, to_signed


class TB:
    def __init__(self, dut):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.nl, self.d = int(cfg["banks"]), int(cfg["width"])
        self.act_bits, self.rows = int(cfg["act_bits"]), int(cfg["rows"])
        self.n_bits, self.ps = int(cfg["index_bits"]), [int(p) for p in cfg["p_prevs"]]
        self.sel_bits, self.latency = int(cfg["sel_bits"]), int(cfg["latency"])
        self.buffer = int(cfg["buffer"])
        self.layers = int(cfg.get("layers", 12))
        self.row_bits = max(1, (self.rows - 1).bit_length())
        self.pos_bits = max(1, (self.d - 1).bit_length())
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.mem = [[[0] * self.d for _ in range(self.rows)] for _ in range(self.nl)]
        self.pending = []  # (layer, index, (bank, row, base, mask)) still to come
        self.beats = []  # cycles of accepted windows
        self.dones = []  # cycles with done high
        self.errors = []
        self.checked = self.expected = self.runs = self.partial = self.empty = 0
        self.layer_no = 0
        self.sink = StreamSink(dut.clk, dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                               self.on_beat, self.error)
        dut.start.value = 0
        dut.n.value = 1
        if self.sel_bits:
            dut.sel.value = 0
        dut.w.value = 0
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    def on_beat(self, raw: int) -> None:
        c = cycle()
        self.beats.append(c)
        nb, d, a = self.n_bits, self.d, self.act_bits
        base, mask = raw & ((1 << nb) - 1), raw >> nb & ((1 << d) - 1)
        words = [to_signed(raw >> (nb + d + k * a), a) for k in range(d)]
        if not self.pending:
            self.error(f"unexpected window (base {base}, mask {mask:#x}) in cycle {c}")
            return
        layer, idx, (bank, row, wbase, wmask) = self.pending.pop(0)
        self.checked += 1
        live = sum(1 << k for k in range(d) if wmask >> k & 1 and self.mem[bank][row][k] != 0)
        want = (wbase % (1 << nb), live)
        if (base, mask) != want:
            self.error(f"layer {layer} window {idx}: expected (base, mask) = {want}, observed "
                       f"{(base, mask)} (cycle {c})")
            return
        for k in range(d):
            if wmask >> k & 1 and words[k] != self.mem[bank][row][k]:
                self.error(f"layer {layer} window {idx} (bank {bank}, row {row}): word {k} "
                           f"expected {self.mem[bank][row][k]}, observed {words[k]} (cycle {c})")

    async def watch_done(self) -> None:
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if self.dut.done.value:
                self.dones.append(cycle())

    async def fill(self) -> None:
        """Random words into every bank, one activation per bank per cycle through ``w``."""
        wl = 1 + self.row_bits + self.pos_bits + self.act_bits
        lo, hi = -(1 << (self.act_bits - 1)), (1 << (self.act_bits - 1)) - 1
        for row in range(self.rows):
            for k in range(self.d):
                await FallingEdge(self.dut.clk)
                word = 0
                for g in range(self.nl):
                    v = self.rng.choice((self.rng.randint(lo, hi), 0, lo, hi))
                    self.mem[g][row][k] = v
                    el = (1 | row << 1 | k << (1 + self.row_bits)
                          | (v & ((1 << self.act_bits) - 1)) << (1 + self.row_bits
                                                                  + self.pos_bits))
                    word |= el << (g * wl)
                self.dut.w.value = word
        await FallingEdge(self.dut.clk)
        self.dut.w.value = 0

    def _top(self, p):
        """The largest n whose blocks fit the banks: ceil(ceil(n/p)/NL) * S <= rows."""
        return min((1 << self.n_bits) - 1, (self.rows // -(-p // self.d)) * self.nl * p)

    def _covering(self):
        """A layer ``(sel, p, n)`` with an empty window and a partial one, or None."""
        full = (1 << self.d) - 1
        for sel, p in enumerate(self.ps):
            for n in range(1, self._top(p) + 1):
                masks = [m for *_, m in window_schedule(n, p, self.d, self.nl)]
                if 0 in masks and (self.d == 1 or any(0 < m < full for m in masks)):
                    return sel, p, n
        return None

    def pick(self) -> tuple[int, int, int]:
        i = self.layer_no
        if i == 0:  # the first layer covers an empty and a partial window, whatever the seed
            covering = self._covering()
            if covering is not None:
                return covering
        sel = i % len(self.ps) if i < 2 * len(self.ps) else self.rng.randrange(len(self.ps))
        p = self.ps[sel]
        top = self._top(p)
        r = self.rng.random()
        if r < 0.15:
            n = top
        elif r < 0.25:
            n = self.rng.randint(1, min(top, p))
        elif r < 0.5 and top > p:
            n = p * self.rng.randint(1, top // p)
        else:
            n = self.rng.randint(1, top)
        return sel, p, n

    async def layer(self, backpressure: float) -> None:
        sel, p, n = self.pick()
        await self.fill()
        windows = window_schedule(n, p, self.d, self.nl)
        live = [any(mask >> k & 1 and self.mem[bank][row][k] for k in range(self.d))
                for bank, row, _, mask in windows]
        want = [w for w, keep in zip(windows, live) if keep]
        self.expected += len(want)
        self.partial += sum(0 < m < (1 << self.d) - 1 for *_, m in windows)
        self.empty += live.count(False)
        self.sink.backpressure = backpressure
        await FallingEdge(self.dut.clk)
        self.pending = [(self.layer_no, i, w) for i, w in enumerate(windows) if live[i]]
        b0, d0 = len(self.beats), len(self.dones)
        if self.sel_bits:
            self.dut.sel.value = sel
        self.dut.n.value = n
        await FallingEdge(self.dut.clk)  # the descriptor a cycle before start (no earlier)
        self.dut.start.value = 1
        c0 = cycle()
        await FallingEdge(self.dut.clk)
        self.dut.start.value = 0
        limit = 20 + len(windows) * (1 + int(20 * backpressure))
        for _ in range(limit):
            if not self.pending and len(self.dones) > d0:
                break
            await FallingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, 3)
        await FallingEdge(self.dut.clk)
        beats = self.beats[b0:]
        if self.pending:
            self.error(f"layer {self.layer_no} (p_prev {p}, n {n}): {len(self.pending)} of "
                       f"{len(want)} windows never came")
            self.pending = []
        else:
            self.check_reads(live, beats, c0, backpressure, p, n, d0)
        self.layer_no += 1

    def check_reads(self, live, beats, c0, backpressure, p, n, d0) -> None:
        """Section 9, step 1, from the observed acceptances ``beats``: every window's read cycle,
        the earliest a window with pairs may be taken, and ``done`` after the last leave."""
        read, left, taken, earliest = -1, [], iter(beats), []
        for w, keep in enumerate(live):
            read = read + 1 if w < self.buffer else max(read + 1, sorted(left)[w - self.buffer] + 1)
            if keep:
                earliest.append(c0 + read + self.latency)
                left.append(next(taken) - c0)
            else:
                left.append(read + self.latency - 1)
        late = [(b, e) for b, e in zip(beats, earliest) if b < e]
        if late:
            self.error(f"layer {self.layer_no} (p_prev {p}, n {n}): windows taken before they "
                       f"were read (cycle, earliest): {late}")
        if self.dones[d0:] != [c0 + max(left) + 1]:
            self.error(f"layer {self.layer_no}: done in cycles {self.dones[d0:]}, expected "
                       f"only {c0 + max(left) + 1}")
        if backpressure == 0 and not self.errors:
            self.runs += 1
            if beats != earliest:
                self.error(f"layer {self.layer_no} without back-pressure (p_prev {p}, n {n}): "
                           f"windows in cycles {beats}, expected {earliest}")

    def finish(self, name: str) -> None:
        tb_report(name, checked=self.checked, expected=self.expected, layers=self.layer_no,
                  runs=self.runs, dones=len(self.dones), partial=self.partial,
                  empty=self.empty, mismatches=len(self.errors))
        assert not self.errors, f"{len(self.errors)} mismatch(es); first: {self.errors[0]}"
        assert self.checked == self.expected > 0, f"checked {self.checked} of {self.expected}"


@cocotb.test()
async def test_layers(dut: Any) -> None:
    """Random layers of every block size from random bank contents, with and without
    back-pressure, every window checked in order."""
    tb = TB(dut)
    await reset(dut)
    tb.sink.start()
    cocotb.start_soon(tb.watch_done())
    pressures = [0.0, 0.3, 0.7, 0.0]
    for i in range(tb.layers):
        await tb.layer(pressures[i % 4])
    tb.finish("test_layers")
