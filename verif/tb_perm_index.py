"""cocotb testbench: ``hdl.perm_index.PermIndex`` against ``golden.permdiag.diag_row``, exhaustive.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"ps": [p, ...], "latency": int}``
(``ps`` in ``sel`` order; ``latency`` 0 is a combinational design without a clock). The test
drives every legal ``(sel, c, k)`` (``c``, ``k`` in ``[0, p)`` for each supported ``p``) once, in
an order shuffled by cocotb's random seed, a new input every cycle, and compares each ``r``
``latency`` cycles later with ``diag_row(c, k, p)``.

The bench drives on the falling clock edge and samples in the read-only phase after it, so what it
compares is what the register loaded at the rising edge, whatever the simulator's order of events.
Without a clock it steps with a timer instead and samples the combinational output the same way.
"""

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, Timer
from cocotb.utils import get_sim_time

from permdeal.golden.permdiag import diag_row
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, cycle



class Scoreboard:
    """Compares each ``r`` with the golden row of the vector driven ``latency`` steps earlier."""

    def __init__(self, log):
        self.log = log
        self.checked = 0
        self.errors = []

    def check(self, vector: tuple[int, int, int, int], observed: int) -> None:
        sel, p, c, k = vector
        expected = diag_row(c, k, p)
        self.checked += 1
        if observed != expected:
            self.errors.append(f"sel={sel} p={p} c={c} k={k}: expected r={expected}, observed "
                               f"r={observed} at {get_sim_time('ns'):g} ns (cycle {cycle()})")
            if len(self.errors) <= 10:
                self.log.error("%s", self.errors[-1])


class TB:
    """Clock (when the design has one), reset, input driver and scoreboard around one PermIndex."""

    def __init__(self, dut):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.ps, self.latency = [int(p) for p in cfg["ps"]], int(cfg["latency"])
        self.has_sel = len(self.ps) > 1
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.scoreboard = Scoreboard(self.log)
        self.log.info("block sizes %s (sel order), latency %d; test seed %d", self.ps,
                      self.latency, cocotb.RANDOM_SEED)
        if self.latency:
            Clock(dut.clk, PERIOD_NS, unit="ns").start()

    async def step(self) -> None:
        """To the next point at which the bench drives: a falling edge, or a period later."""
        if self.latency:
            await FallingEdge(self.dut.clk)
        else:
            await Timer(PERIOD_NS, unit="ns")

    def drive(self, vector: tuple[int, int, int, int]) -> None:
        sel, _, c, k = vector
        if self.has_sel:
            self.dut.sel.value = sel
        self.dut.c.value, self.dut.k.value = c, k

    async def reset(self) -> None:
        """With a clock, a synchronous reset that must hold ``r`` at 0 while the inputs ask for a
        non-zero result (``c = 1, k = 0`` of the first ``p >= 2``, when there is one)."""
        sel = next((i for i, p in enumerate(self.ps) if p >= 2), 0)
        self.drive((sel, self.ps[sel], 1 % self.ps[sel], 0))
        if not self.latency:
            return
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        await FallingEdge(self.dut.clk)
        await ReadOnly()
        assert int(self.dut.r.value) == 0, f"r = {self.dut.r.value} in reset, not 0"
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def vectors(self) -> list[tuple[int, int, int, int]]:
        """Every legal ``(sel, p, c, k)``, shuffled."""
        vs = [(s, p, c, k) for s, p in enumerate(self.ps) for c in range(p) for k in range(p)]
        self.rng.shuffle(vs)
        return vs

    async def run(self, vectors: Sequence[tuple[int, int, int, int]]) -> None:
        """Drive a vector per step and check each ``r`` ``latency`` steps after its vector."""
        pending = deque()
        for v in [*vectors, *[None] * self.latency]:  # then flush the pipeline
            if v is not None:
                self.drive(v)
            pending.append(v)
            await ReadOnly()
            if len(pending) > self.latency:
                self.scoreboard.check(pending.popleft(), int(self.dut.r.value))
            await self.step()

    def finish(self, name: str, sent: int) -> None:
        sb = self.scoreboard
        tb_report(name, checked=sb.checked, sent=sent, mismatches=len(sb.errors))
        assert not sb.errors, f"{len(sb.errors)} mismatch(es); first: {sb.errors[0]}"
        assert sb.checked == sent > 0, f"checked {sb.checked} of {sent}"


@cocotb.test()
async def test_exhaustive(dut: Any) -> None:
    """Every (sel, c, k) with c, k in [0, p), shuffled, one per cycle, against diag_row."""
    tb = TB(dut)
    await tb.reset()
    await tb.step()
    vectors = tb.vectors()
    await tb.run(vectors)
    tb.finish("test_exhaustive", len(vectors))
