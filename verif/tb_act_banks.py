"""cocotb testbench: ``hdl.act_banks.ActBanks`` against a Python model of its banks, word by word.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"banks": NL, "width": D,
"act_bits": int, "rows": int, "latency": int, "cycles": int (random cycles, default 1500)}``.

The model is a ``banks x rows x width`` array of activation codes, all zero at the start. First
every word of every bank is read once with no write (the zero initialisation); then each random
cycle lets a random subset of the banks write one activation each at its own ``(row, pos)`` (codes
including the most negative and the most positive, and, where the position field can hold one, a
position past ``width - 1`` that must write nothing), and makes a read request of a random bank and
row or stays idle with garbage in the request fields. A quarter of the reads aim at a word written
in the same cycle: they must return the new word (the request is registered and the banks read a
cycle later); a write in the cycle after a request must not be seen. Every
read's window, ``latency`` cycles later, is compared with the model value by value, and its
``nonzero`` bits with the model's zero tests; ``window.valid`` is checked in every cycle (high
exactly ``latency`` cycles after a request), and without a read the whole window must be 0.

The bench drives on the falling clock edge and samples in the read-only phase after it, so what it
compares is what the registers loaded at the rising edge, whatever the simulator's order of events.
"""

import random
from collections.abc import Sequence
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly
from cocotb.types import LogicArray

from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, cycle, reset, to_signed


def _bits(n):
    """Address width for ``n`` entries, at least 1 (``hdl.rom.addr_bits``)."""
    return max(1, (n - 1).bit_length())


class TB:
    """Clock, reset, drivers, model and scoreboard around one ActBanks."""

    def __init__(self, dut):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.banks, self.width = int(cfg["banks"]), int(cfg["width"])
        self.act_bits, self.rows = int(cfg["act_bits"]), int(cfg["rows"])
        self.latency = int(cfg["latency"])
        self.cycles = int(cfg.get("cycles", 1500))
        self.row_bits, self.pos_bits = _bits(self.rows), _bits(self.width)
        self.bank_bits = _bits(self.banks)
        self.w_bits = 1 + self.row_bits + self.pos_bits + self.act_bits  # one bank's write
        self.lo, self.hi = -(1 << (self.act_bits - 1)), (1 << (self.act_bits - 1)) - 1
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.model = np.zeros((self.banks, self.rows, self.width), dtype=np.int64)
        self.checked = self.values = self.reads = self.collisions = self.writes = 0
        self.errors = []
        self.log.info("banks %d, width %d, act_bits %d, rows %d, latency %d; test seed %d",
                      self.banks, self.width, self.act_bits, self.rows, self.latency,
                      cocotb.RANDOM_SEED)
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    def value(self) -> int:
        """A random activation code, the extremes and small values often."""
        r = self.rng.random()
        if r < 0.15:
            return self.lo
        if r < 0.3:
            return self.hi
        if r < 0.4:
            return self.rng.choice((0, -1, 1))
        return self.rng.randint(self.lo, self.hi)

    def pack_write(self, valid: int, row: int, pos: int, value: int) -> int:
        word = valid | row << 1 | pos << (1 + self.row_bits)
        word |= (value & ((1 << self.act_bits) - 1)) << (1 + self.row_bits + self.pos_bits)
        return word

    def drive(self, writes: dict[int, tuple[int, int, int]], read: tuple[int, int] | None) -> None:
        """Drive ``writes`` (``{bank: (row, pos, value)}``) and ``read`` (``(bank, row)`` or
        None) with garbage in every field that is not valid."""
        w = 0
        for g in range(self.banks):
            if g in writes:
                word = self.pack_write(1, *writes[g])
            else:  # valid low, every other field random
                word = self.rng.getrandbits(self.w_bits) & ~1
            w |= word << (g * self.w_bits)
        self.dut.w.value = w
        if read is None:
            self.dut.rd.value = self.rng.getrandbits(self.bank_bits + self.row_bits) << 1
        else:
            self.dut.rd.value = 1 | read[0] << 1 | read[1] << (1 + self.bank_bits)

    def apply(self, writes: dict[int, tuple[int, int, int]]) -> None:
        for g, (row, pos, value) in writes.items():
            if pos < self.width:
                self.model[g, row, pos] = value
            self.writes += 1

    def check(self, pending: tuple[int, int, list[int]] | None, raw: LogicArray) -> None:
        """Compare ``window`` (``raw``, a LogicArray) with the read ``pending`` issued
        ``latency`` cycles earlier (``(bank, row, expected words)`` or None)."""
        valid = str(raw)[-1]
        if pending is None:
            if valid != "0":
                self.error(f"window.valid = {valid} without a read request (cycle {cycle()})")
            elif not raw.is_resolvable or int(raw) != 0:
                self.error(f"window = {raw} without a read request, expected 0 "
                           f"(cycle {cycle()})")
            return
        bank, row, expected = pending
        self.checked += 1
        if valid != "1":
            self.error(f"bank {bank} row {row}: window.valid = {valid}, expected 1 "
                       f"(cycle {cycle()})")
            return
        data = int(raw) >> 1
        nonzero = data >> (self.width * self.act_bits)
        for k in range(self.width):
            observed = to_signed(data >> (k * self.act_bits), self.act_bits)
            self.values += 1
            if observed != expected[k]:
                self.error(f"bank {bank} row {row} position {k}: expected {expected[k]}, "
                           f"observed {observed} (cycle {cycle()})")
            if (nonzero >> k & 1) != (expected[k] != 0):
                self.error(f"bank {bank} row {row} position {k}: nonzero bit "
                           f"{nonzero >> k & 1} for the word {expected[k]} (cycle {cycle()})")

    async def run(self, steps: Sequence[tuple[dict[int, tuple[int, int, int]],
                                              tuple[int, int] | None]]) -> None:
        """Each step ``(writes, read)`` for one cycle, then idle; check every cycle's window."""
        pending = [None] * self.latency
        for writes, read in [*steps, *[({}, None)] * self.latency]:
            await FallingEdge(self.dut.clk)
            self.drive(writes, read)
            self.apply(writes)  # before the read's expectation: a same-cycle read sees the write
            if read is not None:
                self.reads += 1
                expect = (read[0], read[1], [int(v) for v in self.model[read[0], read[1]]])
            else:
                expect = None
            await ReadOnly()
            self.check(pending.pop(0), self.dut.window.value)
            pending.append(expect)

    def sweep(self) -> list[tuple[dict[int, tuple[int, int, int]], tuple[int, int]]]:
        """Every word of every bank once, no writes."""
        return [({}, (g, r)) for g in range(self.banks) for r in range(self.rows)]

    def random_steps(self) -> list[tuple[dict[int, tuple[int, int, int]], tuple[int, int] | None]]:
        steps = []
        for _ in range(self.cycles):
            p = self.rng.choice((0.0, 0.3, 0.7, 1.0))
            writes = {}
            for g in range(self.banks):
                if self.rng.random() < p:
                    pos_limit = (1 << self.pos_bits) if self.rng.random() < 0.05 else self.width
                    writes[g] = (self.rng.randrange(self.rows), self.rng.randrange(pos_limit),
                                 self.value())
            read = None
            if self.rng.random() < 0.7:
                if writes and self.rng.random() < 0.25:
                    g = self.rng.choice(sorted(writes))
                    read = (g, writes[g][0])
                    self.collisions += 1
                else:
                    read = (self.rng.randrange(self.banks), self.rng.randrange(self.rows))
            steps.append((writes, read))
        return steps

    def finish(self, name: str) -> None:
        tb_report(name, checked=self.checked, reads=self.reads, values=self.values,
                  writes=self.writes, collisions=self.collisions, mismatches=len(self.errors))
        assert not self.errors, f"{len(self.errors)} mismatch(es); first: {self.errors[0]}"
        assert self.checked == self.reads > 0, f"checked {self.checked} of {self.reads} reads"
        assert self.values == self.checked * self.width


@cocotb.test()
async def test_random(dut: Any) -> None:
    """Zero initialisation, then random parallel writes and reads against the model."""
    tb = TB(dut)
    tb.drive({}, None)
    await reset(dut)
    await tb.run(tb.sweep() + tb.random_steps())
    tb.finish("test_random")
