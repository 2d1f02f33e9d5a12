"""cocotb testbench: ``hdl.nz_detect.NonZeroDetector`` against its spec, pair by pair and by cycle.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"width": D, "act_bits": int,
"index_bits": int, "latency": int, "windows": int (random windows, default 600), "broadcast": B
(cycles per pair in ``test_broadcast``, default 3)}``.

The golden model (:func:`expected_pairs`) is written here from the spec: a window ``(base, mask,
data)`` gives ``(base + k, data[k])`` for every position ``k`` in ascending order whose mask bit is
set, whatever the word (the mask marks the live words: the window reader makes the zero test).
The windows are mostly as the reader makes them (mask bit set iff the position is real and its
word non-zero); some random ones also mark zero words, which must come out as pairs, and words
whose mask bit is clear hold garbage, mostly non-zero, which must not. ``test_random`` drives windows of every density class with random
idle cycles and random back-pressure; the timing tests drive them without idle and check every
window's acceptance cycle and every pair's handoff cycle against a consumer that takes a pair
only in its ``B``-th cycle: window ``w`` is accepted ``sum_{v<w} max(1, B * nnz_v)`` cycles after
the first, pair ``q`` of window ``w`` is handed off ``latency - 1 + B * (q + 1)`` cycles after its
window, and a layer's windows, cut from its input vector by ``golden.cycles.window_nnz``, take
exactly ``sum_w max(1, B * z_w)`` cycles.

The bench acts on the falling clock edge and samples in the read-only phase after it, so that a
handshake it records is exactly the one the design sees at the next rising edge, whatever the
simulator's order of events at that edge.
"""

import random
from collections import deque
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from permdeal.golden.cycles import window_nnz
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, StreamSource, cycle, reset



def expected_pairs(base: int, mask: int, words: Sequence[int],
                   index_bits: int) -> list[tuple[int, int, int]]:
    """The spec: ``[(k, (base + k) mod 2**index_bits, words[k])]`` for the live words (mask bit
    set)."""
    return [(k, (base + k) % (1 << index_bits), v) for k, v in enumerate(words) if mask >> k & 1]


def live(mask: int, words: Sequence[int]) -> int:
    """The window reader's mask: the real positions (``mask``) whose word is non-zero."""
    return sum(1 << k for k, v in enumerate(words) if mask >> k & 1 and v != 0)


class Scoreboard:
    """Checks pairs in order against the expected ones; keeps every mismatch."""

    def __init__(self, log, index_bits, act_bits):
        self.log, self.index_bits, self.act_bits = log, index_bits, act_bits
        self.expected = deque()  # (window, position, index, value, last)
        self.checked = 0
        self.cycles = []  # cycle of each checked pair
        self.errors = []

    def expect(self, window: int, position: int, index: int, value: int, last: int) -> None:
        self.expected.append((window, position, index, value, last))

    def decode(self, payload: int) -> tuple[int, int, int]:
        """``(index, value, last)`` of an ``o__payload`` word."""
        ib, ab = self.index_bits, self.act_bits
        value = payload >> ib & ((1 << ab) - 1)
        value -= (value >> (ab - 1)) << ab
        return payload & ((1 << ib) - 1), value, payload >> (ib + ab) & 1

    def error(self, message: str) -> None:
        self.errors.append(f"{message} at {get_sim_time('ns'):g} ns (cycle {cycle()})")
        if len(self.errors) <= 10:
            self.log.error("%s", self.errors[-1])

    def check(self, payload: int) -> None:
        index, value, last = self.decode(payload)
        if not self.expected:
            self.error(f"unexpected pair (index {index}, value {value}, last {last})")
            return
        w, k, e_index, e_value, e_last = self.expected.popleft()
        if (index, value, last) != (e_index, e_value, e_last):
            self.error(f"window {w} position {k}: expected (index {e_index}, value {e_value}, "
                       f"last {e_last}), observed (index {index}, value {value}, last {last})")
        self.checked += 1
        self.cycles.append(cycle())


class TB:
    """Clock, reset, window source, pair sink and scoreboard around one ``NonZeroDetector``."""

    def __init__(self, dut, idle=0.0, backpressure=0.0):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.width, self.act_bits = cfg["width"], cfg["act_bits"]
        self.index_bits = cfg["index_bits"]
        self.latency = cfg["latency"]
        self.n_random, self.broadcast = cfg.get("windows", 600), cfg.get("broadcast", 3)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.log.info("width %d, %d-bit activations, %d-bit index, latency %d; test seed %d",
                      self.width, self.act_bits, self.index_bits, self.latency,
                      cocotb.RANDOM_SEED)
        self.scoreboard = Scoreboard(self.log, self.index_bits, self.act_bits)
        self.source = StreamSource(dut.clk, dut.i__valid, dut.i__ready, dut.i__payload,
                                   self.rng, idle)
        self.sink = StreamSink(dut.clk, dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                             self.scoreboard.check, self.scoreboard.error)
        self.sink.backpressure = backpressure
        self.windows = []  # (base, mask, words) of every window sent
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    @property
    def code_range(self) -> tuple[int, int]:
        n = self.act_bits
        return -(1 << (n - 1)), (1 << (n - 1)) - 1

    async def reset(self) -> None:
        await reset(self.dut)
        self.source.start()
        self.sink.start()

    def send(self, base: int, mask: int, words: Sequence[int]) -> None:
        """Queue one window and its golden pairs."""
        d, ab, ib = self.width, self.act_bits, self.index_bits
        assert len(words) == d and 0 <= mask < 1 << d and 0 <= base < 1 << ib
        w = len(self.windows)
        self.windows.append((base, mask, list(words)))
        pairs = expected_pairs(base, mask, words, ib)
        for q, (k, index, value) in enumerate(pairs):
            self.scoreboard.expect(w, k, index, value, int(q == len(pairs) - 1))
        payload = base | mask << ib
        for k, v in enumerate(words):
            payload |= (v & ((1 << ab) - 1)) << (ib + d + k * ab)
        self.source.queue.append(payload)

    # --- stimulus -------------------------------------------------------------------------------

    def nonzero(self) -> int:
        """A random non-zero code, the extremes and +-1 often."""
        lo, hi = self.code_range
        if self.rng.random() < 0.3:
            return self.rng.choice((lo, hi, -1, 1))
        return self.rng.choice((self.rng.randint(lo, -1), self.rng.randint(1, hi)))

    def word(self, density: float) -> int:
        return self.nonzero() if self.rng.random() < density else 0

    def random_window(self) -> tuple[int, int, list[int]]:
        """One window of a random density class; masked words hold garbage, mostly non-zero. The
        mask is the live words as the reader makes it, or (one in five) the real positions
        whatever their words (zeros among them are live)."""
        d, r = self.width, self.rng
        full = (1 << d) - 1
        kind = r.choice(("zero", "full", "sparse", "masked", "tail"))
        if kind == "zero":
            mask, density = full, 0.0
        elif kind == "full":
            mask, density = full, 1.0
        elif kind == "sparse":
            mask, density = full, 0.35
        elif kind == "masked":
            mask, density = r.getrandbits(d), r.choice((0.35, 0.7, 1.0))
        else:  # the partially masked last window of a vector
            mask, density = (1 << r.randint(1, d)) - 1, r.choice((0.35, 1.0))
        words = [self.word(density) if mask >> k & 1 else self.word(0.8) for k in range(d)]
        span = mask.bit_length()  # real words lie in [base, base + span)
        top = (1 << self.index_bits) - max(span, 1)
        base = top if r.random() < 0.2 else r.randint(0, top)
        return base, (mask if r.random() < 0.2 else live(mask, words)), words

    def layer_windows(self, n: int, in_block: int,
                      density: float) -> tuple[list[int], list[tuple[int, int, list[int]]]]:
        """The windows of an ``n``-word input vector laid out in producer blocks of ``in_block``.

        As ``golden.cycles`` describes: each block is cut into ``ceil(in_block / D)`` windows of
        up to ``D`` words; positions past the block or past ``n`` are masked (and hold garbage),
        and so are zero words (the window reader's live mask). Returns the vector and the
        windows.
        """
        d = self.width
        n = min(n, (1 << self.index_bits) - 1)  # a layer's n fits the index range
        x = [self.word(density) for _ in range(n)]
        windows = []
        for j0 in range(0, n, in_block):
            for s in range(0, in_block, d):
                base = (j0 + s) % (1 << self.index_bits)  # as the window reader wraps it
                mask = sum(1 << k for k in range(d) if s + k < in_block and j0 + s + k < n)
                words = [x[j0 + s + k] if mask >> k & 1 else self.word(0.8) for k in range(d)]
                windows.append((base, live(mask, words), words))
        return x, windows

    # --- checks ---------------------------------------------------------------------------------

    async def drain(self) -> bool:
        """Wait (boundedly) until every window is in and every pair out; True if they all are."""
        # a pair may take ``hold`` cycles, a window at least one
        pending = len(self.scoreboard.expected) + len(self.source.queue)
        for _ in range(20 * max(1, self.sink.hold) * pending + 100):
            if not self.scoreboard.expected and not self.source.busy:
                return True
            await RisingEdge(self.dut.clk)
        return False

    async def finish(self, name: str, **fields: Any) -> None:
        """Drain, record the report, and fail on a mismatch, a missing or an extra pair."""
        await self.drain()
        await ClockCycles(self.dut.clk, 4 * self.latency + 4)  # an extra pair would show up
        sb = self.scoreboard
        total = sum(len(expected_pairs(*w, self.index_bits)) for w in self.windows)
        tb_report(name, checked=sb.checked, pairs=total, windows=len(self.windows),
                  accepted=len(self.source.sent), mismatches=len(sb.errors), **fields)
        assert not self.source.busy, \
            f"{len(self.source.queue) + 1} of {len(self.windows)} window(s) never accepted"
        assert not sb.expected, f"{len(sb.expected)} of {total} pair(s) never came out"
        assert not sb.errors, f"{len(sb.errors)} error(s); first: {sb.errors[0]}"
        assert sb.checked == total > 0 and len(self.source.sent) == len(self.windows)

    async def timing(self, name: str, hold: int) -> None:
        """No idle; the sink takes a pair in its ``hold``-th cycle. Checks every cycle exactly."""
        d, r = self.width, self.rng
        self.sink.hold = hold
        await self.reset()
        layers, start = [], 0  # (x, in_block, index of its first window)
        for in_block in sorted({1, max(1, d - 1), d, d + 1, 2 * d + 1}):
            n = r.randint(3 * d + 1, 6 * d + 7)
            x, windows = self.layer_windows(n, in_block, r.choice((0.0, 0.2, 0.35, 0.6, 1.0)))
            layers.append((x, in_block, start))
            start += len(windows)
            for w in windows:
                self.send(*w)
        for _ in range(12):
            self.send(*self.random_window())
        self.send(0, 1, [self.nonzero()] + [0] * (d - 1))  # ends with a pair
        await self.finish(name)

        lat = self.latency
        nnz = [len(expected_pairs(*w, self.index_bits)) for w in self.windows]
        cost = [max(1, hold * z) for z in nnz]
        a = self.source.sent
        want_a = [a[0] + c for c in accumulate([0] + cost[:-1])]
        want_pairs = [a_w + lat - 1 + hold * (q + 1) for a_w, z in zip(want_a, nnz)
                      for q in range(z)]
        got_pairs = self.scoreboard.cycles
        span = got_pairs[-1] - a[0] + 1  # from the first acceptance to the last handoff
        # Each layer's issue cycles: from its first window's acceptance to the next layer's.
        bounds = [w0 for _, _, w0 in layers] + [start]
        layer_issue = [a[w1] - a[w0] for w0, w1 in zip(bounds, bounds[1:])]
        golden_issue = [int(np.maximum(1, hold * window_nnz(np.array(x), in_block, d)).sum())
                        for x, in_block, _ in layers]
        tb_report(name, hold=hold, span_cycles=span, expected_span=sum(cost) + lat,
                  layer_issue=layer_issue, golden_issue=golden_issue,
                  layers=[(len(x), in_block) for x, in_block, _ in layers])
        for w, (got, want) in enumerate(zip(a, want_a)):
            assert got == want, (f"window {w} (nnz {nnz[w]}) accepted in cycle {got}, expected "
                                 f"{want}; acceptances {a[:w + 1]}")
        for q, (got, want) in enumerate(zip(got_pairs, want_pairs)):
            assert got == want, (f"pair {q} handed off in cycle {got}, expected {want} "
                                 f"(windows accepted in {a})")
        assert span == sum(cost) + lat, f"span {span} != {sum(cost)} + latency {lat}"
        for (x, in_block, _), got, want in zip(layers, layer_issue, golden_issue):
            assert got == want, (f"layer of {len(x)} inputs in blocks of {in_block} issued in "
                                 f"{got} cycles, cycle model {want}")


@cocotb.test()
async def test_random(dut: Any) -> None:
    """Windows of every density class, with varying idle and back-pressure rates."""
    tb = TB(dut)
    await tb.reset()
    n, r = tb.n_random, tb.rng
    parts = [(0.5, 0.1), (0.1, 0.5), (0.3, 0.3), (0.0, 0.0)]
    for i, (idle, bp) in enumerate(parts):
        tb.source.idle, tb.sink.backpressure = idle, bp
        for _ in range(n // len(parts) + (i < n % len(parts))):
            tb.send(*tb.random_window())
        for _ in range(2):  # and whole vectors, as the controller cuts them
            d = tb.width
            _, windows = tb.layer_windows(r.randint(1, 4 * d + 3),
                                          r.choice((1, d, 2 * d + 1)), r.random())
            for w in windows:
                tb.send(*w)
        if not await tb.drain():
            break
    await tb.finish("test_random")


@cocotb.test()
async def test_timing(dut: Any) -> None:
    """No idle, no back-pressure: a window costs max(1, nnz) cycles, no bubbles (cycle model)."""
    tb = TB(dut)
    await tb.timing("test_timing", hold=1)


@cocotb.test()
async def test_broadcast(dut: Any) -> None:
    """Each pair held for B cycles by the sink: a window costs max(1, B * nnz) cycles."""
    tb = TB(dut)
    await tb.timing("test_broadcast", hold=tb.broadcast)
