"""cocotb testbench: ``hdl.engine.Engine`` against the golden model, value by value and by cycle.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"in_bits": int, "out_bits": int,
"inputs": [[code, ...], ...], "expected": [[code, ...], ...], "cycles": [int, ...], "idle": float,
"backpressure": float}``: the input vectors (codes of the first layer's input format), the golden
model's outputs for them (``QuantModel.forward``) and the cycle model's count for each
(``golden.cycles.model_cycles(...).total``).

``test_streams`` sends every vector with random idle cycles on the input stream and random
back-pressure on the output stream; the scoreboard compares every output, in order, with the
golden value, and ``last`` must be set exactly on each vector's final output. ``test_cycles``
sends them again with neither: every inference must take exactly the cycle model's count, from
its first input accepted to its last output accepted, and the next inference's first input must
be accepted in the cycle after (the count is the period of back-to-back inferences).
"""

import random
from collections import deque
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, StreamSource, cycle, reset, to_signed


class TB:
    """Clock, reset, input source, output sink and scoreboard around one ``Engine``."""

    def __init__(self, dut, idle, backpressure):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.in_bits, self.out_bits = int(cfg["in_bits"]), int(cfg["out_bits"])
        self.inputs = [[int(v) for v in x] for x in cfg["inputs"]]
        self.expected = [[int(v) for v in y] for y in cfg["expected"]]
        self.cycles = [int(c) for c in cfg["cycles"]]
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.log.info("%d input vectors of %d, %d outputs each; idle %.2f, back-pressure %.2f; "
                      "test seed %d", len(self.inputs), len(self.inputs[0]),
                      len(self.expected[0]), idle, backpressure, cocotb.RANDOM_SEED)
        self.pending = deque()  # (vector, index, value, last)
        self.out_cycles = []
        self.observed = []
        self.errors = []
        self.checked = 0
        self.source = StreamSource(dut.clk, dut.i__valid, dut.i__ready, dut.i__payload, self.rng,
                                   idle)
        self.sink = StreamSink(dut.clk, dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                               self.on_beat, lambda m: self.error(f"{m} (cycle {cycle()})"),
                               backpressure=backpressure, stall_first=backpressure > 0)
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    def on_beat(self, raw: int) -> None:
        c = cycle()
        self.out_cycles.append(c)
        value, last = to_signed(raw, self.out_bits), raw >> self.out_bits & 1
        self.observed.append(value)
        if not self.pending:
            self.error(f"unexpected output {value} in cycle {c}")
            return
        v, i, want, want_last = self.pending.popleft()
        self.checked += 1
        if value != want:
            self.error(f"input vector {v}, output {i}: expected {want}, observed {value} "
                       f"(cycle {c})")
        if last != want_last:
            self.error(f"input vector {v}, output {i}: last is {last}, expected {want_last} "
                       f"(cycle {c})")

    async def run(self, name: str) -> None:
        await reset(self.dut)
        self.source.start()
        self.sink.start()
        mask = (1 << self.in_bits) - 1
        for v, (x, y) in enumerate(zip(self.inputs, self.expected)):
            for code in x:
                self.source.send(code & mask)
            for i, value in enumerate(y):
                self.pending.append((v, i, value, int(i == len(y) - 1)))
        budget = 4 * sum(self.cycles) + 200 * len(self.cycles) + 100
        waited = 0
        while self.pending and waited < budget and len(self.errors) < 50:
            await RisingEdge(self.dut.clk)
            waited += 1
        await ClockCycles(self.dut.clk, 5)  # nothing may follow the last output
        if self.pending:
            self.error(f"{len(self.pending)} outputs missing after {waited} cycles (the next: "
                       f"input vector {self.pending[0][0]}, output {self.pending[0][1]})")
        tb_report(name, checked=self.checked, mismatches=len(self.errors),
                  vectors=len(self.inputs), observed=self.observed, cycles=waited,
                  input_stalls=self.source.stalls, output_stalls=self.sink.stalls)


@cocotb.test()
async def test_streams(dut: Any) -> None:
    """Every vector with random idle on the input and back-pressure on the output."""
    cfg = tb_config()
    tb = TB(dut, float(cfg.get("idle", 0.3)), float(cfg.get("backpressure", 0.3)))
    await tb.run("test_streams")
    assert not tb.errors, f"{len(tb.errors)} errors; the first: {tb.errors[0]}"


@cocotb.test()
async def test_cycles(dut: Any) -> None:
    """No idle, no back-pressure: each inference takes exactly the cycle model's count."""
    tb = TB(dut, 0.0, 0.0)
    await tb.run("test_cycles")
    n = len(tb.inputs[0])
    m = len(tb.expected[0])
    firsts = tb.source.sent[::n]
    lasts = tb.out_cycles[m - 1::m]
    measured = [last - first + 1 for first, last in zip(firsts, lasts)]
    gaps = [nxt - last for last, nxt in zip(lasts, firsts[1:])]
    tb_report("test_cycles", rtl_cycles=measured, model_cycles=tb.cycles, gaps=gaps,
              errors=tb.errors[:20])
    assert not tb.errors, f"{len(tb.errors)} errors; the first: {tb.errors[0]}"
    for v, (got, want) in enumerate(zip(measured, tb.cycles)):
        assert got == want, (f"input vector {v}: {got} cycles in RTL, the cycle model says "
                             f"{want} (first input in cycle {firsts[v]}, last output in "
                             f"{lasts[v]})")
    assert all(g == 1 for g in gaps), f"inferences not back to back: gaps {gaps}"
