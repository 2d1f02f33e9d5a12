"""cocotb testbench: ``hdl.writeback.Writeback`` against ``golden.formats.writeback``, bit for bit.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"formats":
LayerFormats.to_json(), "relu": bool, "latency": int, "random": int}``, or, for a unit serving
several layers, ``"formats"`` a list of ``LayerFormats.to_json()`` and ``"relu"`` a list of bools
(layer ``l`` is selected by ``sel = l``, packed above ``acc`` and ``bias``; every width is the
largest over the layers). Every test drives the input stream with random idle cycles and the
output with random back-pressure (except the throughput test), and the scoreboard compares every
output beat, in order, to the golden model of its layer. With several layers the corners of every
layer are sent, and every random beat draws its layer at random.

The bench acts on the falling clock edge and samples in the read-only phase after it, so that a
handshake it records is exactly the one the design sees at the next rising edge, whatever the
simulator's order of events at that edge.
"""

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from permdeal.golden.formats import LayerFormats, writeback
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, StreamSource, cycle, reset, to_signed



class Scoreboard:
    """Checks output beats in order against the expected ones; keeps every mismatch."""

    def __init__(self, log):
        self.log = log
        self.expected = deque()  # (index, layer, acc, bias, value)
        self.checked = 0
        self.cycles = []  # cycle of each checked beat
        self.errors = []

    def expect(self, index: int, layer: int, acc: int, bias: int, value: int) -> None:
        self.expected.append((index, layer, acc, bias, value))

    def check(self, observed: int) -> None:
        now = f"at {get_sim_time('ns'):g} ns (cycle {cycle()})"
        if not self.expected:
            self.errors.append(f"unexpected output {observed} {now}")
        else:
            index, layer, acc, bias, value = self.expected.popleft()
            if observed != value:
                self.errors.append(f"output {index}: layer {layer} acc={acc} bias={bias}: "
                                   f"expected {value}, observed {observed} {now}")
            self.checked += 1
            self.cycles.append(cycle())
        if self.errors and len(self.errors) <= 10:
            self.log.error("%s", self.errors[-1])


class TB:
    """Clock, reset, source, sink and scoreboard around one ``Writeback`` instance."""

    def __init__(self, dut, idle=0.3, backpressure=0.3):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        multi = isinstance(cfg["formats"], list)
        fmts = cfg["formats"] if multi else [cfg["formats"]]
        relus = cfg["relu"] if multi else [cfg["relu"]]
        assert len(fmts) == len(relus) > 0, "config: one relu per format"
        self.layers = [(LayerFormats.from_json(f), r) for f, r in zip(fmts, relus)]
        self.latency, self.n_random = cfg["latency"], cfg.get("random", 500)
        self.rng = random.Random(cocotb.RANDOM_SEED)
        for n, (f, relu) in enumerate(self.layers):
            self.log.info("layer %d: act %s weight %s bias %s out %s: %d-bit accumulator, "
                          "shift %d, relu %s", n, f.act, f.weight, f.bias, f.out, f.acc_bits,
                          f.out_shift, relu)
        self.log.info("test seed %d", cocotb.RANDOM_SEED)
        # The port widths: the largest over the layers, and a layer select above acc and bias.
        self.acc_bits = max(f.acc_bits for f, _ in self.layers)
        self.bias_bits = max(f.bias.bits for f, _ in self.layers)
        self.out_bits = max(f.out.bits for f, _ in self.layers)
        self.sel_bits = (len(self.layers) - 1).bit_length() if multi else 0
        widths = (len(dut.i__payload), len(dut.o__payload))
        assert widths == (self.acc_bits + self.bias_bits + self.sel_bits, self.out_bits), \
            f"payload widths {widths}"
        self.scoreboard = Scoreboard(self.log)
        self.source = StreamSource(dut.clk, dut.i__valid, dut.i__ready, dut.i__payload,
                                   self.rng, idle)
        self.sink = StreamSink(
            dut.clk, dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
            on_beat=lambda raw: self.scoreboard.check(to_signed(raw, self.out_bits)),
            on_error=lambda m: self.scoreboard.errors.append(f"{m} (cycle {cycle()})"),
            backpressure=backpressure)
        self.sent = 0
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    @staticmethod
    def acc_range(fmts: LayerFormats) -> tuple[int, int]:
        n = fmts.acc_bits
        return -(1 << (n - 1)), (1 << (n - 1)) - 1

    async def reset(self) -> None:
        await reset(self.dut)
        self.source.start()
        self.sink.start()

    def send(self, beats: Sequence[tuple[int, int, int]]) -> None:
        """Queue ``(layer, acc, bias)`` beats and their golden outputs."""
        a_bits, b_bits = self.acc_bits, self.bias_bits
        a_mask, b_mask = (1 << a_bits) - 1, (1 << b_bits) - 1
        expected = {}
        for layer in {b[0] for b in beats}:  # golden, one call per layer
            fmts, relu = self.layers[layer]
            mine = [(a, b) for sel, a, b in beats if sel == layer]
            acc, bias = (np.array(v, dtype=np.int64) for v in zip(*mine))
            expected[layer] = iter(writeback(acc, bias, fmts, relu).tolist())
        for sel, a, b in beats:
            self.scoreboard.expect(self.sent, sel, a, b, next(expected[sel]))
            self.source.send((sel << (a_bits + b_bits)) | ((b & b_mask) << a_bits) | (a & a_mask))
            self.sent += 1

    async def drain(self) -> bool:
        """Wait (boundedly) until every queued beat has come out; True if they all did."""
        for _ in range(50 * len(self.scoreboard.expected) + 100):
            if not self.scoreboard.expected:
                return True
            await RisingEdge(self.dut.clk)
        return False

    async def finish(self, name: str) -> None:
        """Drain, record the report, and fail on a mismatch, a missing or an extra beat."""
        await self.drain()
        await ClockCycles(self.dut.clk, 2 * self.latency + 2)  # an extra beat would show up
        sb = self.scoreboard
        tb_report(name, checked=sb.checked, sent=self.sent, mismatches=len(sb.errors))
        assert not sb.expected, f"{len(sb.expected)} of {self.sent} output(s) never came out"
        assert not sb.errors, f"{len(sb.errors)} mismatch(es); first: {sb.errors[0]}"
        assert sb.checked == self.sent > 0

    def corners(self) -> list[tuple[int, int, int]]:
        """Every layer's corners, layer by layer, then all of them again in random order (so that
        beats of different layers follow each other)."""
        beats = [(sel, a, b) for sel in range(len(self.layers)) for a, b in self.layer_corners(sel)]
        if len(self.layers) > 1:
            beats += self.rng.sample(beats, len(beats))
        return beats

    def layer_corners(self, sel: int) -> list[tuple[int, int]]:
        """Rounding ties and their neighbours, saturation edges, extreme accumulators and biases."""
        f = self.layers[sel][0]
        s = f.out_shift
        lo, hi = self.acc_range(f)
        sums = []
        for t in (0, 1, -1, 2, -2, f.out.max, f.out.max + 1, f.out.min, f.out.min - 1):
            if s > 0:  # the tie (t - 1/2) LSB rounds up to t
                tie = (t << s) - (1 << (s - 1))
                sums += [tie - 1, tie, tie + 1, (t << s) + (1 << (s - 1)) - 1]
            else:  # exact: no rounding, only the saturation edges
                v = t >> -s
                sums += [v - 1, v, v + 1]
        biases = [0, f.bias.max, f.bias.min, 1, -1]
        pairs = [(v - (b << f.bias_shift), b) for v in sums for b in biases]
        pairs += [(a, b) for a in (lo, hi, 0, -1) for b in biases]
        return list(dict.fromkeys((a, b) for a, b in pairs if lo <= a <= hi))

    def randoms(self, n: int) -> list[tuple[int, int, int]]:
        """``n`` beats of random layers: uniform accumulators, and sums spread a little past the
        output range."""
        r = self.rng
        beats = []
        for _ in range(n):
            sel = r.randrange(len(self.layers))
            f = self.layers[sel][0]
            s = f.out_shift
            lo, hi = self.acc_range(f)
            b = r.randint(f.bias.min, f.bias.max)
            if r.random() < 0.25:
                a = r.randint(lo, hi)
            else:
                t = r.randint(f.out.min - 4, f.out.max + 4)
                if s > 0:
                    v = (t << s) + r.randint(-(1 << s), 1 << s)
                else:
                    v = (t >> -s) + r.randint(-1, 1)
                a = min(hi, max(lo, v - (b << f.bias_shift)))
            beats.append((sel, a, b))
        return beats


@cocotb.test()
async def test_corners(dut: Any) -> None:
    """Rounding and saturation corners, with idle cycles and back-pressure."""
    tb = TB(dut)
    await tb.reset()
    tb.send(tb.corners())
    await tb.finish("test_corners")


@cocotb.test()
async def test_random(dut: Any) -> None:
    """Random accumulators and biases, with varying idle and back-pressure rates."""
    tb = TB(dut, idle=0.0, backpressure=0.0)
    await tb.reset()
    n = tb.n_random
    for part, (idle, bp) in enumerate([(0.5, 0.1), (0.1, 0.5), (0.3, 0.3)]):
        tb.source.idle, tb.sink.backpressure = idle, bp
        tb.send(tb.randoms(n // 3 + (part < n % 3)))
        if not await tb.drain():
            break
    await tb.finish("test_random")


@cocotb.test()
async def test_throughput(dut: Any) -> None:
    """No idle, no back-pressure: a beat per cycle, each out exactly ``latency`` cycles after in."""
    tb = TB(dut, idle=0.0, backpressure=0.0)
    await tb.reset()
    tb.send(tb.randoms(32))
    await tb.finish("test_throughput")
    sent, got = tb.source.sent, tb.scoreboard.cycles
    assert sent == list(range(sent[0], sent[0] + len(sent))), f"input stalled: cycles {sent}"
    assert [g - s for s, g in zip(sent, got)] == [tb.latency] * len(sent), \
        f"latency: in at cycles {sent}, out at {got}; expected {tb.latency} cycles"
