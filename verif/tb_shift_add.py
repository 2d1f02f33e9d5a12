"""cocotb testbench: ``hdl.shift_add.ShiftAdd`` against ``golden.smartdeal.rebuild_int``, weight by
weight, and against the cycle model ``golden.shift_add``, transfer by transfer.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"S", "E", "b_bits",
"weight_bits", "shift", "lanes", "rows": int (random rows per test, default 30), "idle": float,
"backpressure": float (of ``test_stalls``, defaults 0.3 and 0.4), "extra": optional {"codes":
[[S codes], ...], "b": [[[S x S]], ...], "expected": [[S weights], ...]} (rows of a real layer,
with their expected weights from ``rebuild_int``)}``. The unit's timing is recomputed here from
the same parameters (``golden.shift_add.ShiftAddTiming``).

Stimulus (drawn from ``cocotb.RANDOM_SEED``, which is logged): all-zero rows (``nz = 0`` with
random junk in the sign and exponent bits), every exponent index with both signs, the extreme rows
(every ``B`` code ``-2**(b_B-1)``, every exponent ``2**E - 1``, all signs alike: the largest
accumulator of either sign, which saturates when the weight format allows it), rounding ties
(``acc = 2**(s-1) mod 2**s`` for ``s > 0``), then random rows with the ``B`` extremes often, and the
``extra`` rows. The expected weights are ``golden.shift_add.rebuild_rows`` (``rebuild_int``).

``test_no_stall`` offers the rows without idle to an output that is always ready: rows must be
accepted exactly ``interval`` cycles apart, each delivered ``latency`` cycles after its
acceptance, the whole run taking ``total_cycles(N)``. ``test_stalls`` adds random idle on the input
and random back-pressure on the output, in phases of ``backpressure`` and of none taken for a few
latencies (so that finished rows find ``o`` full and the unit must freeze; the report's
``frozen`` counts those cycles). Both compare every input and output transfer cycle with
``golden.shift_add.schedule`` fed with the offers and ``o.ready`` the bench saw, and every weight
with the golden value; a mismatch names the row, the weight index, expected and observed values and
the cycle.
"""

import random
from collections.abc import Sequence
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from permdeal.golden.shift_add import ShiftAddTiming, rebuild_rows, schedule
from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSink, StreamSource, cycle, reset, to_signed


class TB:
    """Clock, reset, source, sink, monitor, golden model and scoreboard around one ShiftAdd."""

    def __init__(self, dut, idle, backpressure):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.S, self.E, self.b_bits = int(cfg["S"]), int(cfg["E"]), int(cfg["b_bits"])
        self.wb, self.shift = int(cfg["weight_bits"]), int(cfg["shift"])
        self.timing = ShiftAddTiming(self.S, self.E, self.b_bits, int(cfg["lanes"]))
        self.n_random = int(cfg.get("rows", 30))
        self.extra = cfg.get("extra")
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.b_lo, self.b_hi = -(1 << (self.b_bits - 1)), (1 << (self.b_bits - 1)) - 1
        self.w_lo, self.w_hi = -(1 << (self.wb - 1)), (1 << (self.wb - 1)) - 1
        self.errors = []
        self.frozen = 0  # cycles a finished row waited for o (from the cycle model)
        self.pending = []  # expected weights of the rows sent, in order
        self.observed = 0  # rows delivered
        self.checked = 0  # weights compared
        self.out_cycles = []
        self.offers = []  # first cycle each row was on offer
        self.ready = {}  # cycle -> o.ready
        self.cover = {"zero_rows": 0, "b_min_terms": 0, "sat_high": 0, "sat_low": 0, "ties": 0,
                      "exponents": set()}
        self.src = StreamSource(dut.clk, dut.i__valid, dut.i__ready, dut.i__payload, self.rng,
                                idle)
        self.sink = StreamSink(dut.clk, dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                               self.on_beat, lambda msg: self.error(f"{msg} (cycle {cycle()})"),
                               backpressure=backpressure, stall_first=backpressure > 0)
        t = self.timing
        self.log.info("S %d, E %d, b_B %d, weight bits %d, shift %+d, lanes %d: acc_bits %d, "
                      "%d pass(es), %d cycles per row, latency %d; idle %.2f, back-pressure "
                      "%.2f; test seed %d", self.S, self.E, self.b_bits, self.wb, self.shift,
                      t.lanes, t.acc_bits, t.passes, t.cycles_per_row, t.latency, idle,
                      backpressure, cocotb.RANDOM_SEED)
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    # -- stimulus ---------------------------------------------------------------------------

    def code(self, nz: int, sign: int, e_idx: int) -> int:
        return nz << (self.E + 1) | sign << self.E | e_idx

    def b_value(self) -> int:
        r = self.rng.random()
        if r < 0.15:
            return self.b_lo
        if r < 0.25:
            return self.b_hi
        return self.rng.randint(self.b_lo, self.b_hi)

    def b_matrix(self) -> list[list[int]]:
        return [[self.b_value() for _ in range(self.S)] for _ in range(self.S)]

    def random_code(self) -> int:
        if self.rng.random() < 0.25:  # zero, with junk behind nz = 0
            return self.rng.randrange(1 << (self.E + 1))
        return self.code(1, self.rng.getrandbits(1), self.rng.randrange(1 << self.E))

    def stimulus(self) -> list[tuple[list[int], list[list[int]]]]:
        """``(codes, b)`` rows (module docstring)."""
        S, E, rng = self.S, self.E, self.rng
        top = (1 << E) - 1
        rows = []
        for _ in range(2):  # all zero, junk behind nz = 0
            rows.append(([rng.randrange(1 << (E + 1)) for _ in range(S)], self.b_matrix()))
        rows.append(([0] * S, self.b_matrix()))
        for e in range(1 << E):  # every exponent, both signs
            for sign in (0, 1):
                codes = [self.random_code() for _ in range(S)]
                codes[(e + sign) % S] = self.code(1, sign, e)
                rows.append((codes, self.b_matrix()))
        for sign in (0, 1):  # the extremes: +-S * 2**(b_B-1+D)
            rows.append(([self.code(1, sign, top)] * S, [[self.b_lo] * S for _ in range(S)]))
        s = self.shift
        if s > 0:  # ties: one term, acc = 2**(s-1) mod 2**s
            e = min(top, max(0, s + 1 - self.b_bits))
            if s - 1 - e <= self.b_bits - 2:
                for _ in range(4):
                    k = rng.randrange(S)
                    codes = [rng.randrange(1 << (E + 1)) for _ in range(S)]
                    codes[k] = self.code(1, rng.getrandbits(1), e)
                    b = self.b_matrix()
                    unit = 1 << (s - e)  # B = unit/2 + q*unit, inside the B range
                    half = unit >> 1
                    q_lo, q_hi = -((half - self.b_lo) // unit), (self.b_hi - half) // unit
                    for j in range(S):
                        b[k][j] = half + rng.randint(q_lo, q_hi) * unit
                    rows.append((codes, b))
        for _ in range(self.n_random):
            rows.append(([self.random_code() for _ in range(S)], self.b_matrix()))
        return rows

    def tally(self, codes: Sequence[int], b: Sequence[Sequence[int]]) -> None:
        """Coverage of one row, from the codes and the golden arithmetic."""
        E, S, s = self.E, self.S, self.shift
        fields = [(c >> (E + 1) & 1, c >> E & 1, c & ((1 << E) - 1)) for c in codes]
        if not any(nz for nz, _, _ in fields):
            self.cover["zero_rows"] += 1
        for k, (nz, sign, e) in enumerate(fields):
            if nz:
                self.cover["exponents"].add((e, sign))
                self.cover["b_min_terms"] += sum(v == self.b_lo for v in b[k])
        for j in range(S):
            acc = sum((-1 if sign else 1) * (b[k][j] << e)
                      for k, (nz, sign, e) in enumerate(fields) if nz)
            if s > 0:
                v = (acc + (1 << (s - 1))) >> s
                self.cover["ties"] += acc & ((1 << s) - 1) == 1 << (s - 1)
            else:
                v = acc << -s
            self.cover["sat_high"] += v > self.w_hi
            self.cover["sat_low"] += v < self.w_lo

    def pack(self, codes: Sequence[int], b: Sequence[Sequence[int]]) -> int:
        word, pos = 0, 0
        for c in codes:
            word |= c << pos
            pos += self.E + 2
        mask = (1 << self.b_bits) - 1
        for row in b:
            for v in row:
                word |= (v & mask) << pos
                pos += self.b_bits
        return word

    # -- checking ---------------------------------------------------------------------------

    def on_beat(self, raw: int) -> None:
        c = cycle()
        self.out_cycles.append(c)
        n = self.observed
        self.observed += 1
        got = [to_signed(raw >> (j * self.wb), self.wb) for j in range(self.S)]
        if n >= len(self.pending):
            self.error(f"unexpected output {got} in cycle {c}")
            return
        for j, (want, value) in enumerate(zip(self.pending[n], got)):
            self.checked += 1
            if value != want:
                self.error(f"row {n} weight {j}: expected {want}, observed {value} (cycle {c})")

    async def monitor(self) -> None:
        was_valid, was_taken = False, False
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            c = cycle()
            valid = bool(self.dut.i__valid.value)
            if valid and (not was_valid or was_taken):
                self.offers.append(c)
            was_valid, was_taken = valid, valid and bool(self.dut.i__ready.value)
            self.ready[c] = bool(self.dut.o__ready.value)

    def check_schedule(self) -> tuple[list[int], list[int]]:
        """Every transfer cycle against ``golden.shift_add.schedule``; returns the model's."""
        counts = {"frozen": 0}
        accepted, delivered = schedule(self.timing, self.offers,
                                       lambda c: self.ready.get(c, False), counts=counts)
        self.frozen = counts["frozen"]
        for what, rtl, model in (("accepted", self.src.sent, accepted),
                                 ("delivered", self.out_cycles, delivered)):
            for n, (got, want) in enumerate(zip(rtl, model)):
                if got != want:
                    self.error(f"row {n}: {what} in cycle {got}, the cycle model says {want}")
                    break
            else:
                if len(rtl) != len(model):
                    self.error(f"{len(rtl)} rows {what} in RTL, the cycle model says "
                               f"{len(model)}")
        return accepted, delivered

    async def pressure(self, base: float, period: int = 40) -> None:
        """Back-pressure in phases: ``base`` for 20 to 80 cycles, then none taken for 2 or 3
        latencies (so that a finished row must wait for ``o``), in turn."""
        while True:
            self.sink.backpressure = base
            await ClockCycles(self.dut.clk, self.rng.randint(period // 2, 2 * period))
            self.sink.backpressure = 1.0
            await ClockCycles(self.dut.clk, self.rng.randint(2, 3) * self.timing.latency)

    async def run(self) -> int:
        rows = self.stimulus()
        codes = [r[0] for r in rows]
        bs = [r[1] for r in rows]
        expected, _ = rebuild_rows(codes, bs, self.E, self.b_bits, self.wb, self.shift)
        self.pending = [[int(v) for v in w] for w in expected]
        if self.extra:
            codes += [[int(c) for c in r] for r in self.extra["codes"]]
            bs += [[[int(v) for v in r] for r in b] for b in self.extra["b"]]
            self.pending += [[int(v) for v in w] for w in self.extra["expected"]]
        for c, b in zip(codes, bs):
            self.tally(c, b)
        await reset(self.dut)
        cocotb.start_soon(self.monitor())
        self.src.start()
        self.sink.start()
        for c, b in zip(codes, bs):
            self.src.send(self.pack(c, b))
        budget = 20 * len(codes) * (self.timing.latency + 2) + 100
        waited = 0
        while self.observed < len(codes) and waited < budget and len(self.errors) < 50:
            await RisingEdge(self.dut.clk)
            waited += 1
        await ClockCycles(self.dut.clk, self.timing.latency + 3)  # nothing may follow
        if self.observed < len(codes):
            self.error(f"{len(codes) - self.observed} rows missing after {waited} cycles (the "
                       f"next: row {self.observed})")
        return len(codes)

    def finish(self, name: str, **fields: Any) -> None:
        cover = dict(self.cover, exponents=len(self.cover["exponents"]))
        tb_report(name, rows=len(self.pending), delivered=self.observed, checked=self.checked,
                  mismatches=len(self.errors), errors=self.errors[:10],
                  input_stalls=self.src.stalls, output_stalls=self.sink.stalls,
                  frozen=self.frozen, **cover, **fields)
        assert not self.errors, f"{len(self.errors)} mismatch(es); first: {self.errors[0]}"
        assert self.checked == self.S * len(self.pending) > 0, "not every weight was checked"


@cocotb.test()
async def test_no_stall(dut: Any) -> None:
    """Rows back to back, output always ready: the exact cycle counts of the model."""
    tb = TB(dut, 0.0, 0.0)
    n = await tb.run()
    accepted, delivered = tb.check_schedule()
    sent, out = tb.src.sent, tb.out_cycles
    t = tb.timing
    intervals = sorted({b - a for a, b in zip(sent, sent[1:])})
    latencies = sorted({o - a for a, o in zip(sent, out)})
    total = out[-1] - sent[0] + 1 if out and sent else 0
    if intervals != [t.interval]:
        tb.error(f"rows accepted {intervals} cycles apart, the model says {t.interval}")
    if latencies != [t.latency]:
        tb.error(f"rows delivered {latencies} cycles after acceptance, the model says "
                 f"{t.latency}")
    if total != t.total_cycles(n):
        tb.error(f"{n} rows took {total} cycles, the model says {t.total_cycles(n)}")
    tb.finish("test_no_stall", intervals=intervals, latencies=latencies, total_cycles=total)


@cocotb.test()
async def test_stalls(dut: Any) -> None:
    """Random idle on the input, random back-pressure on the output."""
    cfg = tb_config()
    backpressure = float(cfg.get("backpressure", 0.4))
    tb = TB(dut, float(cfg.get("idle", 0.3)), backpressure)
    cocotb.start_soon(tb.pressure(backpressure))
    await tb.run()
    tb.check_schedule()
    tb.finish("test_stalls")
