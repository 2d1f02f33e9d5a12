"""cocotb testbench: the SmartDeal layer unit (``hdl.smartdeal_layer``) or a chain of them
(``hdl.smartdeal_net``) against the golden model, output by output and cycle by cycle.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"layer": str (the name a
mismatch report gives: the layer, or the chain's last layer), "in_bits": int, "out_bits": int,
"inputs": [[code, ...], ...], "expected": [[code, ...], ...], "cycles": int, "idle": float,
"backpressure": float}``: the input vectors (codes of the first layer's input format), the golden
outputs (``SmartDealModel.forward``) and the cycle model's count of one vector
(``golden.smartdeal_cycles``: ``layer_cycles(...).compute + n`` for a layer, ``model_cycles(...)
.total`` for a chain), the same for every vector.

``test_streams`` sends every vector back to back with random idle cycles on the input (``idle``,
default 0.3) and random back-pressure on the output (``backpressure``, default 0.3, in phases
with stretches of none taken, so that the MAC and write-back fill and the unit must freeze); the
scoreboard compares every output, in order, and ``last`` must be set exactly on each vector's
final output. ``test_cycles`` sends the vectors one at a time (the next after the last output of
the one before), with no idle and the output always ready: every vector must take exactly
``cycles``, from its first input accepted to its last output accepted, and every output is
compared again. Its drivers wait on the design's signals rather than on every clock edge, so that
long layers run at the simulator's speed. A mismatch names the layer, the input vector, the output
index, the expected and observed values and the cycle. The seed (``cocotb.RANDOM_SEED``) is
logged.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer

from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, StreamSource, cycle, reset, to_signed

if TYPE_CHECKING:
    from permdeal.golden.smartdeal_model import SmartDealModel


def bench_config(model: SmartDealModel, x: npt.ArrayLike, lanes: int | None = None,
                 **extra: Any) -> dict:
    """The bench's ``config`` for a chain of ``model``'s layers (a ``SmartDealModel``; a single
    layer is a model of one) on input codes ``x`` (vectors x n): the golden outputs and the cycle
    model's count. ``extra`` adds ``idle`` or ``backpressure``."""
    from permdeal.golden.smartdeal_cycles import model_cycles
    x = np.asarray(x, dtype=np.int64)
    return {"layer": model.layers[-1].name, "in_bits": model.input_format.bits,
            "out_bits": model.output_format.bits, "inputs": x.tolist(),
            "expected": model.forward(x).tolist(), "cycles": model_cycles(model, lanes).total,
            **extra}


class TB:
    """Clock, reset, drivers, golden outputs and scoreboard around one layer unit or chain."""

    def __init__(self, dut, idle, backpressure):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.layer = str(cfg["layer"])
        self.in_bits, self.out_bits = int(cfg["in_bits"]), int(cfg["out_bits"])
        self.inputs = [[int(v) for v in x] for x in cfg["inputs"]]
        self.expected = [[int(v) for v in y] for y in cfg["expected"]]
        self.cycles = int(cfg["cycles"])
        self.idle, self.backpressure = idle, backpressure
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.pending = deque()  # (vector, index, value, last)
        self.errors = []
        self.checked = 0
        self.observed = []
        self.out_cycles = []
        self.log.info("layer %s: %d input vectors of %d, %d outputs each, %d cycles each; idle "
                      "%.2f, back-pressure %.2f; test seed %d", self.layer, len(self.inputs),
                      len(self.inputs[0]), len(self.expected[0]), self.cycles, idle,
                      backpressure, cocotb.RANDOM_SEED)
        dut.i__valid.value = 0  # (a test that failed may have left a beat on offer)
        dut.o__ready.value = 0
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    def expect(self, v: int) -> None:
        y = self.expected[v]
        for i, value in enumerate(y):
            self.pending.append((v, i, value, int(i == len(y) - 1)))

    def on_beat(self, raw: int, c: int | None = None) -> None:
        c = cycle() if c is None else c
        self.out_cycles.append(c)
        value, last = to_signed(raw, self.out_bits), raw >> self.out_bits & 1
        self.observed.append(value)
        if not self.pending:
            self.error(f"layer {self.layer}: unexpected output {value} (cycle {c})")
            return
        v, i, want, want_last = self.pending.popleft()
        self.checked += 1
        if value != want:
            self.error(f"layer {self.layer}, input vector {v}, output {i}: expected {want}, "
                       f"observed {value} (cycle {c})")
        if last != want_last:
            self.error(f"layer {self.layer}, input vector {v}, output {i}: last is {last}, "
                       f"expected {want_last} (cycle {c})")

    # -- test_streams: the shared random drivers --------------------------------------------

    async def pressure(self, sink: StreamSink, period: int = 40) -> None:
        """Back-pressure in phases: the base rate for 20 to 80 cycles, then none taken for 10 to
        30 cycles (so that finished sums pile up and the unit must freeze)."""
        while True:
            sink.backpressure = self.backpressure
            await ClockCycles(self.dut.clk, self.rng.randint(period // 2, 2 * period))
            sink.backpressure = 1.0
            await ClockCycles(self.dut.clk, self.rng.randint(10, 30))

    async def run_streams(self) -> tuple[StreamSource, StreamSink]:
        await reset(self.dut)
        source = StreamSource(self.dut.clk, self.dut.i__valid, self.dut.i__ready,
                              self.dut.i__payload, self.rng, self.idle)
        sink = StreamSink(self.dut.clk, self.dut.o__valid, self.dut.o__ready,
                          self.dut.o__payload, self.rng, self.on_beat,
                          lambda msg: self.error(f"layer {self.layer}: {msg} (cycle {cycle()})"),
                          backpressure=self.backpressure, stall_first=self.backpressure > 0)
        source.start()
        sink.start()
        if self.backpressure > 0:
            cocotb.start_soon(self.pressure(sink))
        mask = (1 << self.in_bits) - 1
        for v, x in enumerate(self.inputs):
            for code in x:
                source.send(code & mask)
            self.expect(v)
        budget = 4 * self.cycles * len(self.inputs) + 400
        waited = 0
        while self.pending and waited < budget and len(self.errors) < 50:
            await RisingEdge(self.dut.clk)
            waited += 1
        await ClockCycles(self.dut.clk, 10)  # nothing may follow the last output
        self.missing(waited)
        return source, sink

    def missing(self, waited: int) -> None:
        if self.pending:
            v, i, _, _ = self.pending[0]
            self.error(f"layer {self.layer}: {len(self.pending)} outputs missing after {waited} "
                       f"cycles (the next: input vector {v}, output {i})")

    # -- test_cycles: event-driven drivers ----------------------------------------------------

    async def send(self, x: Sequence[int], limit: int) -> int | None:
        """Offer the codes of ``x`` back to back from the next falling edge; returns the cycle
        of the first transfer, or None when a code waits ``limit`` cycles."""
        dut, mask, first = self.dut, (1 << self.in_bits) - 1, None
        for code in x:
            await FallingEdge(dut.clk)
            dut.i__valid.value = 1
            dut.i__payload.value = code & mask
            await ReadOnly()
            waited = 0
            while not dut.i__ready.value:
                waited += 1
                if waited > limit:
                    self.error(f"layer {self.layer}: an input not taken in {limit} cycles "
                               f"(cycle {cycle()})")
                    return None
                await FallingEdge(dut.clk)
                await ReadOnly()
            first = cycle() if first is None else first
        await FallingEdge(dut.clk)
        dut.i__valid.value = 0
        return first

    async def receive(self, count: int, limit: int) -> int | None:
        """Take ``count`` output beats (ready held high), waiting on ``o__valid`` rather than on
        every clock edge; returns the cycle of the last, or None when ``limit`` cycles pass
        without one."""
        dut, got = self.dut, 0
        while got < count:
            await ReadOnly()
            if not dut.o__valid.value:
                await First(RisingEdge(dut.o__valid), Timer(limit * PERIOD_NS, unit="ns"))
                await ReadOnly()
                if not dut.o__valid.value:
                    return None
            self.on_beat(int(dut.o__payload.value))
            got += 1
            await RisingEdge(dut.clk)  # the next cycle: a beat that follows at once is seen
        return self.out_cycles[-1]

    def model_cycles(self, v: int) -> int:
        """The cycle model's count of vector ``v`` (the layer's: every vector alike)."""
        return self.cycles

    async def run_cycles(self) -> list[int]:
        """Each vector alone: its cycles against the model; returns the measured counts."""
        await reset(self.dut)
        self.dut.o__ready.value = 1
        measured = []
        m = len(self.expected[0])
        limit = 4 * self.cycles + 400
        for v, x in enumerate(self.inputs):
            self.expect(v)
            receiver = cocotb.start_soon(self.receive(m, limit))
            first = await self.send(x, limit)
            if first is None:
                break
            last = await receiver
            if last is None:
                self.missing(limit)
                break
            measured.append(last - first + 1)
            if measured[-1] != self.model_cycles(v):
                self.error(f"layer {self.layer}, input vector {v}: {measured[-1]} cycles in RTL, "
                           f"the cycle model says {self.model_cycles(v)} (first input in cycle "
                           f"{first}, last output in cycle {last})")
            if len(self.errors) >= 50:
                break
            await FallingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, 10)
        await ReadOnly()
        if self.dut.o__valid.value:
            self.error(f"layer {self.layer}: an output beyond the expected ones (cycle {cycle()})")
        return measured


async def check_streams(dut: Any, tb_class: type) -> None:
    """``test_streams`` with a TB of ``tb_class`` (this module's, or a subclass): every vector
    with random idle on the input and back-pressure on the output, reported and checked."""
    cfg = tb_config()
    tb = tb_class(dut, float(cfg.get("idle", 0.3)), float(cfg.get("backpressure", 0.3)))
    source, sink = await tb.run_streams()
    tb_report("test_streams", checked=tb.checked, outputs=sum(map(len, tb.expected)),
              mismatches=len(tb.errors), errors=tb.errors[:10], vectors=len(tb.inputs),
              input_stalls=source.stalls, output_stalls=sink.stalls, seed=cocotb.RANDOM_SEED)
    assert not tb.errors, f"{len(tb.errors)} errors; the first: {tb.errors[0]}"
    assert tb.checked == sum(map(len, tb.expected)) > 0, "not every output was checked"


@cocotb.test()
async def test_streams(dut: Any) -> None:
    """Every vector with random idle on the input and back-pressure on the output."""
    await check_streams(dut, TB)


@cocotb.test()
async def test_cycles(dut: Any) -> None:
    """One vector at a time, no idle, no back-pressure: the cycle model's count, exactly."""
    tb = TB(dut, 0.0, 0.0)
    measured = await tb.run_cycles()
    tb_report("test_cycles", checked=tb.checked, outputs=sum(map(len, tb.expected)),
              mismatches=len(tb.errors), errors=tb.errors[:10], vectors=len(tb.inputs),
              observed=tb.observed, rtl_cycles=measured, model_cycles=tb.cycles)
    assert not tb.errors, f"{len(tb.errors)} errors; the first: {tb.errors[0]}"
    assert tb.checked == sum(map(len, tb.expected)) > 0, "not every output was checked"
    assert measured == [tb.cycles] * len(tb.inputs), (measured, tb.cycles)
