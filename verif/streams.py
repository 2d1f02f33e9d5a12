"""Reusable cocotb drivers for ready/valid streams, shared by every testbench.

Drivers act on the falling clock edge and sample in the read-only phase after it, so that a
handshake they record is exactly the one the design sees at the next rising edge, whatever the
simulator's order of events at that edge (Verilator and Icarus differ there).
"""

from collections import deque
from typing import Any

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

#: Clock period of every bench.
PERIOD_NS = 10


def cycle() -> int:
    """Index of the current clock cycle (cycle k runs from rising edge k to rising edge k+1)."""
    return int(get_sim_time("ns")) // PERIOD_NS


async def reset(dut: Any, cycles: int = 3) -> None:
    """Hold ``dut.rst`` high for ``cycles`` clock cycles and release it; returns after the next
    rising edge."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class StreamSource:
    """Drives a stream from a queue of payloads, idle with probability ``idle`` between beats.

    ``sent`` records the cycle of every transfer; ``stalls`` counts the cycles a beat was offered
    and not taken (back-pressure); ``busy`` tells whether beats are still pending.
    """

    def __init__(self, clk, valid, ready, payload, rng, idle=0.0):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.rng, self.idle = rng, idle
        self.queue = deque()
        self.sent = []
        self.stalls = 0
        self.word = None  # the beat on offer
        valid.value = 0

    def start(self) -> None:
        cocotb.start_soon(self._run())

    def send(self, word: int) -> None:
        self.queue.append(word)

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.word is not None

    async def _run(self):
        while True:
            await FallingEdge(self.clk)
            if self.word is None and self.queue and self.rng.random() >= self.idle:
                self.word = self.queue.popleft()
            self.valid.value = int(self.word is not None)
            if self.word is not None:
                self.payload.value = self.word
            await ReadOnly()
            if self.word is not None and self.ready.value:
                self.sent.append(cycle())
                self.word = None
            elif self.word is not None:
                self.stalls += 1


class StreamSink:
    """Accepts a stream, calling ``on_beat(payload as int)`` for every transfer.

    Not ready with probability ``backpressure``; with ``hold = B`` it is instead ready only in the
    ``B``-th cycle of each beat (as the engine that broadcasts a pair for ``B`` cycles). It checks
    the stream rule that a stalled beat stays valid and unchanged, reporting a breach through
    ``on_error(message)``. ``stalls`` counts the cycles a valid beat was not taken; with
    ``stall_first`` the first beat always waits at least one cycle (so back-pressure is seen).
    """

    def __init__(self, clk, valid, ready, payload, rng, on_beat, on_error, backpressure=0.0,
                 hold=1, stall_first=False):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.rng, self.on_beat, self.on_error = rng, on_beat, on_error
        self.backpressure, self.hold = backpressure, hold
        self.stalls = 0
        self.stall_first = stall_first  # not ready until the first beat has waited a cycle
        ready.value = 0

    def start(self) -> None:
        cocotb.start_soon(self._run())

    async def _run(self):
        held, stalled = 0, None  # cycles the current beat has been valid; payload of a stall
        while True:
            await FallingEdge(self.clk)
            if self.hold > 1:
                ready = held >= self.hold - 1
            elif self.stall_first:
                ready = False
            else:
                ready = self.rng.random() >= self.backpressure
            self.ready.value = int(ready)
            await ReadOnly()
            valid = bool(self.valid.value)
            payload = int(self.payload.value) if valid else None
            if stalled is not None and payload != stalled:
                self.on_error(f"beat {stalled:#x} stalled by back-pressure "
                              f"{'changed to ' + hex(payload) if valid else 'was withdrawn'}")
            stalled = None
            if valid and ready:
                self.on_beat(payload)
                held = 0
            elif valid:
                stalled, held = payload, held + 1
                self.stalls += 1
                self.stall_first = False


def to_signed(raw: int, bits: int) -> int:
    """The two's-complement value of the low ``bits`` bits of ``raw``."""
    raw &= (1 << bits) - 1
    return raw - ((raw >> (bits - 1)) << bits)
