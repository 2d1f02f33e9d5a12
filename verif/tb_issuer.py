"""cocotb testbench: ``hdl.issuer.Issuer`` against its spec, op by op and cycle by cycle.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"ps": [p, ...], "index_bits":
N, "act_bits": int, "w_addr_bits": int, "k_addr_bits": int, "acc_addr_bits": int, "max_slots":
int, "sel_bits": int, "index_width": int, "latency": int, "layers": int (default 12)}``.

The golden model (:func:`expected_ops`) is written here from the spec with Python ints: a pair
``(j, x)`` of a layer ``(sel, B, w_base, k_base, w_step, k_step)`` with ``p = ps[sel]`` and ``J, c
= divmod(j, p)`` gives, for ``t = 0 .. B-1``, the op ``(w_base + j + t*w_step, k_base + J +
t*k_step, c, sel, x, t*p)`` (the addresses modulo their widths). Each layer draws a random
descriptor (every block size, ``B`` in ``[1, max_slots]``, random bases and steps), random
ascending ``j`` in ``[0, 2**N)`` (the ends and multiples of ``p`` often) and random values, and
sends the pairs through a :class:`StreamSource` with no idle or with random idle. Every cycle after
reset is checked: a pair accepted in cycle ``a`` must show its op ``t`` on ``op`` in cycle ``a +
latency + t`` exactly, ``op.valid`` must be low in every other cycle, and ``i.ready`` must be high
in cycle ``c`` exactly when no op is due in cycle ``c + latency - 1`` or the op due then is the
last of its pair (the next pair is taken ``B`` cycles after the one before). Layers sent without idle must in addition
give one run of exactly ``B * pairs`` consecutive valid ops, the pairs accepted ``B`` cycles apart.
"""

import random
from collections.abc import Sequence
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import PERIOD_NS, StreamSource, cycle, reset, to_signed


def expected_ops(desc: tuple[int, ...], j: int, x: int, ps: Sequence[int],
                 widths: tuple[int, int, int]) -> list[tuple[int, int, int, int, int, int]]:
    """The spec: the ``B`` ops ``(w_addr, k_addr, c, sel, x, acc_addr)`` of pair ``(j, x)``."""
    sel, b, w_base, k_base, w_step, k_step = desc
    wab, kab, aab = widths
    p = ps[sel]
    big_j, c = divmod(j, p)
    return [((w_base + j + t * w_step) % (1 << wab), (k_base + big_j + t * k_step) % (1 << kab),
             c, sel, x, (t * p) % (1 << aab)) for t in range(b)]


class TB:
    """Clock, reset, source, golden model and scoreboard around one Issuer."""

    def __init__(self, dut):
        cfg = tb_config()
        self.dut, self.log = dut, dut._log
        self.ps = [int(p) for p in cfg["ps"]]
        self.n, self.act_bits = int(cfg["index_bits"]), int(cfg["act_bits"])
        self.wab, self.kab = int(cfg["w_addr_bits"]), int(cfg["k_addr_bits"])
        self.aab, self.max_slots = int(cfg["acc_addr_bits"]), int(cfg["max_slots"])
        self.sel_bits, self.iw = int(cfg["sel_bits"]), int(cfg["index_width"])
        self.latency, self.layers = int(cfg["latency"]), int(cfg.get("layers", 12))
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.lo, self.hi = -(1 << (self.act_bits - 1)), (1 << (self.act_bits - 1)) - 1
        self.sent_pairs = []  # (desc, j, x) in send order
        self.expected = {}  # cycle -> (op, last)
        self.valid_cycles = []  # every cycle with op.valid high
        self.accepted = 0
        self.checked = self.ops = self.ready_checks = self.runs = 0
        self.errors = []
        self.src = StreamSource(dut.clk, dut.i__valid, dut.i__ready, dut.i__payload, self.rng)
        self.log.info("ps %s, index_bits %d, act_bits %d, widths w %d k %d acc %d, max_slots %d; "
                      "test seed %d", self.ps, self.n, self.act_bits, self.wab, self.kab,
                      self.aab, self.max_slots, cocotb.RANDOM_SEED)
        Clock(dut.clk, PERIOD_NS, unit="ns").start()

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        if len(self.errors) <= 10:
            self.log.error("%s", msg)

    def decode(self, raw: int) -> tuple[int, tuple[int, int, int, int, int, int]]:
        """``(valid, (w_addr, k_addr, c, sel, x, acc_addr))`` of an ``op`` word."""
        pos = 0
        out = []
        for bits in (1, self.wab, self.kab, self.iw, self.sel_bits, self.act_bits, self.aab):
            out.append(raw >> pos & ((1 << bits) - 1))
            pos += bits
        valid, w, k, c, sel, x, acc = out
        return valid, (w, k, c, sel, to_signed(x, self.act_bits), acc)

    def drive_desc(self, desc: tuple[int, ...]) -> None:
        sel, b, w_base, k_base, w_step, k_step = desc
        if self.sel_bits:
            self.dut.sel.value = sel
        self.dut.slots.value = b
        self.dut.w_base.value = w_base
        self.dut.k_base.value = k_base
        self.dut.w_step.value = w_step
        self.dut.k_step.value = k_step

    def value(self) -> int:
        r = self.rng.random()
        if r < 0.1:
            return self.lo
        if r < 0.2:
            return self.hi
        return self.rng.choice([v for v in (self.rng.randint(self.lo, self.hi), 1, -1) if v])

    def indices(self, p: int, count: int) -> list[int]:
        """``count`` distinct ascending ``j``, the ends and multiples of ``p`` (and their
        neighbours) often."""
        top = (1 << self.n) - 1
        picks = {0, top} if self.rng.random() < 0.5 else set()
        while len(picks) < count:
            r = self.rng.random()
            if r < 0.4:
                q = self.rng.randrange(top // p + 1)
                j = q * p + self.rng.choice((-1, 0, 0, 1))
            else:
                j = self.rng.randrange(top + 1)
            if 0 <= j <= top:
                picks.add(j)
        return sorted(picks)[:count]

    async def monitor(self) -> None:
        taken = 0
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            c = cycle()
            while taken < len(self.src.sent) and self.src.sent[taken] < c:  # accepted in < c
                a = self.src.sent[taken]
                desc, j, x = self.sent_pairs[taken]
                ops = expected_ops(desc, j, x, self.ps, (self.wab, self.kab, self.aab))
                for t, op in enumerate(ops):
                    at = a + self.latency + t
                    if at in self.expected:
                        self.error(f"pair {taken} accepted in cycle {a} overlaps an earlier "
                                   f"pair's op in cycle {at}")
                    self.expected[at] = (op, t == len(ops) - 1, taken, t)
                taken += 1
                self.accepted += 1
            valid, op = self.decode(int(self.dut.op.value))
            want = self.expected.pop(c, None)
            if valid:
                self.valid_cycles.append(c)
            if want is None:
                if valid:
                    self.error(f"op.valid high with no op due (cycle {c}): {op}")
            else:
                self.checked += 1
                exp, _, k, t = want
                if not valid:
                    self.error(f"pair {k} op t={t}: op.valid low (cycle {c})")
                elif op != exp:
                    self.error(f"pair {k} op t={t}: expected (w_addr, k_addr, c, sel, x, "
                               f"acc_addr) = {exp}, observed {op} (cycle {c})")
            ready = int(self.dut.i__ready.value)
            ahead = self.expected.get(c + self.latency - 1) if self.latency > 1 else want
            want_ready = int(ahead is None or ahead[1])
            self.ready_checks += 1
            if ready != want_ready:
                self.error(f"i.ready = {ready}, expected {want_ready} (cycle {c})")

    async def layer(self, idle: float) -> None:
        p_sel = self.rng.randrange(len(self.ps))
        b = self.rng.choice((1, self.max_slots, self.rng.randint(1, self.max_slots)))
        desc = (p_sel, b, self.rng.getrandbits(self.wab), self.rng.getrandbits(self.kab),
                self.rng.getrandbits(self.wab), self.rng.getrandbits(self.kab))
        count = self.rng.randint(1, min(40, 1 << self.n))
        js = self.indices(self.ps[p_sel], count)
        await FallingEdge(self.dut.clk)
        self.drive_desc(desc)
        self.src.idle = idle
        first, v0 = len(self.sent_pairs), len(self.valid_cycles)
        for j in js:
            x = self.value()
            last = self.rng.getrandbits(1)
            self.sent_pairs.append((desc, j, x))
            self.src.send(j | (x & ((1 << self.act_bits) - 1)) << self.n
                          | last << (self.n + self.act_bits))
            self.ops += b
        while self.src.busy:
            await FallingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, b + self.latency + 2)
        if idle == 0:  # back to back: one run of B * pairs ops, pairs taken B cycles apart
            self.runs += 1
            sent = self.src.sent[first:]
            if any(y - x != b for x, y in zip(sent, sent[1:])):
                self.error(f"layer without idle (B = {b}): pairs accepted in cycles {sent}")
            cycles = self.valid_cycles[v0:]
            if len(cycles) != b * len(js) or cycles != list(range(cycles[0], cycles[0]
                                                                   + len(cycles))):
                self.error(f"layer without idle (B = {b}, {len(js)} pairs): valid ops not one "
                           f"run of {b * len(js)} cycles (got {len(cycles)})")

    def finish(self, name: str) -> None:
        tb_report(name, checked=self.checked, ops=self.ops, pairs=len(self.sent_pairs),
                  accepted=self.accepted, ready_checks=self.ready_checks, runs=self.runs,
                  mismatches=len(self.errors))
        assert not self.errors, f"{len(self.errors)} mismatch(es); first: {self.errors[0]}"
        assert self.accepted == len(self.sent_pairs) > 0, "not every pair was accepted"
        assert self.checked == self.ops, f"checked {self.checked} of {self.ops} ops"
        assert not self.expected, f"{len(self.expected)} op(s) never checked"


@cocotb.test()
async def test_layers(dut: Any) -> None:
    """Random layers of random pairs, with and without idle, checked every cycle."""
    tb = TB(dut)
    tb.drive_desc((0, 1, 0, 0, 0, 0))
    await reset(dut)
    tb.src.start()
    cocotb.start_soon(tb.monitor())
    idles = [0.0, 0.3, 0.7]
    for n in range(tb.layers):
        await tb.layer(idles[n % 3] if n >= 3 else 0.0 if n < 2 else 0.5)
    tb.finish("test_layers")
