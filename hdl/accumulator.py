# amaranth: UnusedElaboratable=no
"""The accumulator memory of a lane: read-modify-write adds and read-and-clear drains
(docs/design.md 4.2).

A block of its own so that synthesis reports its area apart (``permdeal synth``'s per-PE
breakdown). Its words live in a :class:`~.ram.Ram`, elaborated in place or, with ``ram_module``,
emitted once as a Verilog module of its own (the engine's way: synthesis then counts it as a
memory, docs/design.md 8).
"""

from typing import Any

from amaranth.hdl import Assert, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.formats import MAX_ACC_BITS

from .blackbox import Blackbox
from .pipeline import delay
from .ram import Ram, RamUser
from .rom import addr_bits

__all__ = ["DRAIN_LATENCY", "VALUE_DELAY", "Accumulator"]

#: Cycles from a drain request to its value on ``acc``: the read, then the word registered.
DRAIN_LATENCY = 2
#: Cycles from an add request to its value on ``value``: the value is wanted only by the adder
#: of stage C, so it comes then and no register carries it through stages A and B.
VALUE_DELAY = 2


class Accumulator(RamUser, wiring.Component):
    """``depth`` signed accumulators of ``acc_bits`` in one memory with one read and one write
    port.

    Parameters
    ----------
    acc_bits : int
        Width of an accumulator, ``value_bits`` to 63; sums wrap to it (the generator sizes it so
        that they never do).
    value_bits : int
        Width of the signed values added, 2 to ``acc_bits``.
    depth : int
        Number of accumulators (of a set), >= 1.
    sets : int
        1 (default) or 2: two sets of ``depth`` accumulators, each in a memory of its own (so an
        add to one and a drain of the other may come in one cycle), the address one bit wider,
        its top bit the set (docs/design.md 15: a conv pass issues into one while the one before
        drains the other). The same timing a set; the sets share the adder and its forwarding
        registers, the drains taking a path of their own through the stages.
    set_depths : pair of int, optional
        With two sets: each set's accumulators, at most ``depth`` (default ``depth`` both; an FC
        network's layers use the set of their parity, docs/design.md 9); a set's memory of
        another depth than ``depth`` is a module of its own, ``ram_module`` with ``_set<i>``.
    ram_module : str, optional
        Emit the memory (a :class:`~.ram.Ram` of ``max(2, depth)`` words of ``acc_bits``, one
        enable a word) as the Verilog module of this name and instantiate it (:attr:`blackboxes`);
        by default it is elaborated in place. The behaviour is the same.
    fpga : bool
        The FPGA structure (default False; the behaviour is the same): the memory is written from
        registers, a cycle after the add (an FPGA's LUT RAM's write data then leaves the adder's
        path), at the cost of a third forwarding register (see Timing); and ``value`` must be
        zero in a drain's clear (the user zeroes the product before its DSP block), so that no
        gate follows the DSP block's output register.

    Members
    -------
    add : ``In({valid, addr})``
        Add ``value`` to accumulator ``addr``: presented in cycle ``n`` (the address goes to the
        read port then), written at the end of cycle ``n + 2``.
    value : ``In(signed(value_bits))``
        The value of the add presented ``value_delay = 2`` cycles before (ignored after a drain
        request or no request; with ``fpga``, zero ``value_delay`` cycles after a drain request:
        the clear adds it, the lane's multiplier gives a zero product without an op, and
        simulation asserts it).
    drain : ``In({valid, addr})``
        Read-and-clear accumulator ``addr``: presented in cycle ``d``, its value is on ``acc`` in
        cycle ``d + 2`` (``drain_latency = 2``) and the accumulator is zero after that cycle.
    acc : ``Out({valid, value})``
        Drained value; ``value`` is meaningful only while ``valid``.

    Timing
    ------
    A request moves through three stages, one a cycle: A reads the memory; B registers the word
    read; C adds (or clears) and writes. The add's value is wanted only in C, so it comes then
    (``value``, ``value_delay = 2`` cycles after its request: the lane's multiplier gives its
    product in that cycle, docs/design.md 4.2) and no register carries it through A and B. The
    word read in A misses the writes of the two requests before (the read port is not
    transparent, and the one before is still in C): B merges the write of cycle A (from a
    forwarding register) into the word it registers, and C takes the write of cycle B (the same
    register a cycle later) instead when it went to the same address. Both address compares are
    made a stage ahead, into a flag each, so B and C each hold one multiplexer after a register.
    A drain's zero masks the sum (one gate a bit after the adder); with ``fpga`` C clears in
    the multiplexer instead (the old value or zero: drains add a zero value), so that the adder
    is the last thing before the write port and the forwarding register. So requests may come
    every cycle, in any address order: back-to-back adds to one accumulator sum exactly, a drain
    right after a clear reads 0, and a request in cycle ``d`` sees every add presented up to
    ``d - 1``. Adds and drains share the read port: ``add.valid`` and ``drain.valid`` must not be
    high in the same cycle (the lane's controller guarantees it). With ``fpga`` the memory takes C's write a cycle later, from
    ``fwd`` and the registered address and enable, so nothing but ``fwd`` (a flip-flop) follows
    the adder; the read then misses that delayed write too, which B merges from a second
    forwarding register (``fwd2``, ``fwd`` a cycle later) with a flag of its own: ``acc_bits +
    addr_bits + 2`` flip-flops more, none of them on the adder's path. The accumulators are zero
    at initialisation, not at ``rst``; ``rst`` (synchronous) drops a pending add and the drain
    output.
    """

    def __init__(self, acc_bits, value_bits, depth, *, ram_module=None, fpga=False, sets=1,
                 set_depths=None):
        self._value_bits = integer(value_bits, "accumulator value_bits", 2)
        try:
            self._acc_bits = integer(acc_bits, "accumulator acc_bits", self._value_bits,
                                     MAX_ACC_BITS)
        except PermdealError:
            raise PermdealError(f"accumulator acc_bits must be an integer in "
                                f"[{self._value_bits}, {MAX_ACC_BITS}] (at least value_bits), "
                                f"not {acc_bits!r}") from None
        self._depth = integer(depth, "accumulator depth", 1)
        if sets not in (1, 2):
            raise PermdealError(f"accumulator sets must be 1 or 2, not {sets!r}")
        self._sets = sets
        self._fpga = bool(fpga)
        if sets == 1:
            self._use_ram(ram_module)
        else:
            # two sets: an accumulator of one set each, the address's top bit choosing it (each
            # of its own depth: a memory of another depth is a module of its own)
            depths = (self._depth,) * 2 if set_depths is None else tuple(set_depths)
            if len(depths) != 2 or any(integer(d, "accumulator set depth", 1) > self._depth
                                       for d in depths):
                raise PermdealError(f"accumulator set_depths must be two depths of at most "
                                    f"{self._depth}, not {set_depths!r}")
            self._set_depths = depths
            self._set_boxes = [
                None if ram_module is None else Blackbox(
                    Ram(*self._set_shape(d)),
                    ram_module if max(2, d) == max(2, self._depth) else f"{ram_module}_set{i}")
                for i, d in enumerate(depths)]
        if sets == 1 and set_depths is not None:
            raise PermdealError("accumulator set_depths need two sets")
        super().__init__({"add": In(self.add_layout), "value": In(signed(self._value_bits)),
                          "drain": In(self.drain_layout), "acc": Out(self.acc_layout)})

    def _set_shape(self, depth: int) -> tuple[int, int, int]:
        """``(width, depth, granularity)`` of a memory of ``depth`` accumulators."""
        return self._acc_bits, max(2, depth), self._acc_bits

    @property
    def set_depths(self) -> tuple[int, ...]:
        """Accumulators of each set."""
        return self._set_depths if self._sets > 1 else (self._depth,)

    @property
    def sets(self) -> int:
        """Accumulator sets: 1, or 2 (the drain's hidden behind the next pass, docs/design.md
        15), each ``depth`` words in a memory of its own, the address's top bit the set."""
        return self._sets

    @property
    def blackboxes(self) -> tuple:
        """The memories' :class:`~.blackbox.Blackbox` instances (one a set) with
        ``ram_module``, else none."""
        if self._sets == 1:
            return RamUser.blackboxes.fget(self)
        return tuple(b for b in self._set_boxes if b is not None)

    @property
    def fpga(self) -> bool:
        """Whether the FPGA structure is built: the memory written from registers, a cycle after
        the add, and ``value`` zero in a drain's clear."""
        return self._fpga

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def value_bits(self) -> int:
        return self._value_bits

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def addr_bits(self) -> int:
        """Address width: a set's, and with two sets one bit more above it (the set)."""
        return addr_bits(self._depth) + (self._sets > 1)

    @property
    def ram_shape(self) -> tuple[int, int, int]:
        """``(width, depth, granularity)`` of the memory (:class:`~.ram.Ram`; at least 2 words:
        a 1-word memory has a 0-bit address)."""
        return self._set_shape(self._depth)

    @property
    def drain_latency(self) -> int:
        """Cycles from a drain request to its value on ``acc``."""
        return DRAIN_LATENCY

    @property
    def value_delay(self) -> int:
        """Cycles from an add request to its value on ``value``."""
        return VALUE_DELAY

    @property
    def add_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "addr": unsigned(self.addr_bits)})

    @property
    def drain_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "addr": unsigned(self.addr_bits)})

    @property
    def acc_layout(self) -> data.StructLayout:
        return data.StructLayout({"valid": unsigned(1), "value": signed(self._acc_bits)})

    def _old_value(self, read, hit, fwd_data):
        """The word of a request's address as it is after write ``fwd_data`` (one the read port
        missed): that write's data when it went to the same address (``hit``), else ``read``."""
        return Mux(hit, fwd_data, read)

    def _elaborate_sets(self) -> Module:
        """Two sets, a memory each (``mem0``, ``mem1``), and two paths through the stages: the
        adds' (with the adder) and the drains' (a read, its word registered and a clear). Each
        memory's read port takes the drain of its set, else the add, so an add and a drain may
        come in one cycle when they go to different sets (simulation asserts it); in stage C
        the add path writes its sum into its set and the drain path a zero into its own. Each
        path merges the writes its read missed as one set does (see Timing), from either path:
        an add's sum from the add path's forwarding registers, a clear as zero, by one-hot
        selects made in stage A from compares on the whole address (the set included). So one
        adder and one set of forwarding registers serve both sets."""
        m = Module()
        ab = addr_bits(self._depth)
        rams = []
        for i, d in enumerate(self._set_depths):
            ram = self._set_boxes[i] if self._set_boxes[i] is not None else \
                Ram(*self._set_shape(d))
            m.submodules[f"mem{i}"] = ram
            rams.append(ram)
        full = self.addr_bits
        add, drain = self.add, self.drain
        # Stage A: a memory reads the drain of its set, else the add.
        for i, ram in enumerate(rams):
            mine = drain.addr[ab] if i else ~drain.addr[ab]
            m.d.comb += [ram.r_addr.eq(Mux(drain.valid & mine, drain.addr[:ab], add.addr[:ab])),
                         ram.r_en.eq(1)]
        m.d.sync += Assert(~(add.valid & drain.valid & (add.addr[ab] == drain.addr[ab])),
                           "accumulator: add and drain to one set in one cycle\n")
        # The paths' stages B and C (``a_*`` the adds', ``d_*`` the drains').
        a_b, a_c, d_b, d_c = Signal(), Signal(), Signal(), Signal()
        aa_b, aa_c, da_b, da_c = (Signal(full, name=n, reset_less=True)
                                  for n in ("a_addr_b", "a_addr_c", "d_addr_b", "d_addr_c"))
        m.d.sync += [a_b.eq(add.valid), a_c.eq(a_b), d_b.eq(drain.valid), d_c.eq(d_b),
                     aa_b.eq(add.addr), aa_c.eq(aa_b), da_b.eq(drain.addr), da_c.eq(da_b)]
        wr_data = Signal(signed(self._acc_bits))
        fwd = Signal(signed(self._acc_bits), name="fwd1", reset_less=True)  # C's sum a cycle on
        m.d.sync += fwd.eq(wr_data)
        # The writes a read misses (W(t): stage C's writes in cycle t, landing at the end of t,
        # or of t + 1 with ``fpga``): a read in cycle n misses W(n + 1) (the request in B now),
        # W(n) (in C now) and with ``fpga`` W(n - 1) (in C a cycle before: ``*_c1``).
        # Each path's selects are one-hot flags made in stage A from compares on the whole
        # address (the set included: of a cycle's two writes at most one goes to an address),
        # newest write first, a clear selecting nothing (zero); so B and C are AND-OR gates of
        # registers, and B picks the set's word without a multiplexer before the merge.
        w_b = [(a_c, aa_c), (d_c, da_c)]           # W(n): merged in B from ``fwd``
        fwd2 = None
        if self._fpga:
            a_c1, d_c1 = Signal(), Signal()
            aa_c1, da_c1 = (Signal(full, name=n, reset_less=True)
                            for n in ("a_addr_c1", "d_addr_c1"))
            fwd2 = Signal(signed(self._acc_bits), reset_less=True)
            m.d.sync += [a_c1.eq(a_c), d_c1.eq(d_c), aa_c1.eq(aa_c), da_c1.eq(da_c),
                         fwd2.eq(fwd)]
            w_b2 = [(a_c1, aa_c1), (d_c1, da_c1)]  # W(n - 1): merged in B from ``fwd2``
        merged = {}
        for path, addr in (("a", add.addr), ("d", drain.addr)):
            ha, hd = _hits(w_b, addr)
            sels_b = {"fwd": ha}
            rest = ~ha & ~hd
            if self._fpga:
                ha2, hd2 = _hits(w_b2, addr)
                sels_b["fwd2"] = rest & ha2
                rest = rest & ~ha2 & ~hd2
            sels_b["mem0"] = rest & ~addr[ab]
            sels_b["mem1"] = rest & addr[ab]
            words = {"fwd": fwd, "fwd2": fwd2, "mem0": rams[0].r_data.as_signed(),
                     "mem1": rams[1].r_data.as_signed()}
            word = 0
            for name, sel in sels_b.items():
                word = word | Mux(delay(m, sel, 1, f"{path}_sel_b_{name}"), words[name], 0)
            word_b = Signal(signed(self._acc_bits), name=f"{path}_word_b", reset_less=True)
            m.d.sync += word_b.eq(word)
            # Stage C: the write of the request that was in B when this one was in A (W(n + 1)).
            hc_a, hc_d = _hits([(a_b, aa_b), (d_b, da_b)], addr)
            merged[path] = 0
            for name, sel, value in (("fwd", hc_a, fwd), ("word", ~hc_a & ~hc_d, word_b)):
                merged[path] = merged[path] | Mux(delay(m, sel, 2, f"{path}_sel_c_{name}"),
                                                  value, 0)
        m.d.comb += [wr_data.eq(merged["a"] + self.value),  # wraps to acc_bits
                     self.acc.valid.eq(d_c), self.acc.value.eq(merged["d"])]
        # The write ports: the add's sum into its set, the drain's zero into its own; with
        # ``fpga`` a cycle later, from registers (``fwd`` is the sum then).
        if self._fpga:
            w_add, w_drain, w_data = (a_c1, aa_c1), (d_c1, da_c1), fwd
        else:
            w_add, w_drain, w_data = (a_c, aa_c), (d_c, da_c), wr_data
        for i, ram in enumerate(rams):
            to_add = w_add[0] & (w_add[1][ab] == i)
            to_drain = w_drain[0] & (w_drain[1][ab] == i)
            m.d.comb += [ram.w_en.eq(to_add | to_drain),
                         ram.w_addr.eq(Mux(to_add, w_add[1][:ab], w_drain[1][:ab])),
                         ram.w_data.eq(Mux(to_add, w_data, 0))]
        return m

    def elaborate(self, platform: Any) -> Module:
        if self._sets > 1:
            return self._elaborate_sets()
        m = Module()
        ram = self._ram()
        m.submodules.mem = ram
        ab = self.addr_bits
        # Stage A: adds and drains share the read port.
        addr_a = Signal(ab)
        m.d.comb += [addr_a.eq(Mux(self.drain.valid, self.drain.addr, self.add.addr)),
                     ram.r_addr.eq(addr_a), ram.r_en.eq(1)]

        # Stage B: the word read, merged with the write of cycle A, which it missed.
        add_b, drain_b = Signal(), Signal()
        addr_b = Signal(ab, reset_less=True)
        m.d.sync += [add_b.eq(self.add.valid), drain_b.eq(self.drain.valid), addr_b.eq(addr_a)]
        # Stage C: the old value plus the add's value, which comes now (``value``), or for a
        # drain zero, written back (the zero's place: below, by structure).
        add_c, drain_c = Signal(), Signal()
        addr_c = Signal(ab, reset_less=True)
        wr_en = Signal()  # C writes: add_c | drain_c, a register of its own for the compares
        m.d.sync += [add_c.eq(add_b), drain_c.eq(drain_b), addr_c.eq(addr_b),
                     wr_en.eq(add_b | drain_b)]
        wr_data = Signal(signed(self._acc_bits))
        # ``fwd`` is the write of the cycle before.
        fwd = Signal(signed(self._acc_bits), name="fwd1", reset_less=True)
        m.d.sync += fwd.eq(wr_data)

        # Both address compares are made a stage ahead, into a flag each: in A, whether the
        # write C makes now (``fwd`` in B) goes to the address read (``hit_b``); in B, whether
        # the one it makes now (``fwd`` in C) goes to B's (``hit_c``).
        hit_b = Signal(reset_less=True)
        hit_c = Signal(reset_less=True)
        m.d.sync += hit_b.eq(wr_en & (addr_c == addr_a))
        missed = ram.r_data.as_signed()
        if self._fpga:
            # The memory takes the write of the cycle before (``fwd``); the read misses it, and
            # B gets it a cycle later from ``fwd2``, when it went to the address read
            # (``hit_b2``, compared in A like ``hit_b``; ``hit_b``'s write is the later one).
            wr_en1 = Signal()
            addr_c1 = Signal(ab, reset_less=True)
            fwd2 = Signal(signed(self._acc_bits), reset_less=True)
            hit_b2 = Signal(reset_less=True)
            m.d.sync += [wr_en1.eq(wr_en), addr_c1.eq(addr_c), fwd2.eq(fwd),
                         hit_b2.eq(wr_en1 & (addr_c1 == addr_a))]
            m.d.comb += [ram.w_en.eq(wr_en1), ram.w_addr.eq(addr_c1), ram.w_data.eq(fwd)]
            missed = self._old_value(missed, hit_b2, fwd2)
        else:
            m.d.comb += [ram.w_en.eq(wr_en), ram.w_addr.eq(addr_c), ram.w_data.eq(wr_data)]
        word_b = Signal(signed(self._acc_bits), reset_less=True)
        m.d.sync += word_b.eq(self._old_value(missed, hit_b, fwd))
        old = Signal(signed(self._acc_bits))
        m.d.comb += [
            old.eq(self._old_value(word_b, hit_c, fwd)),
            self.acc.valid.eq(drain_c),
            self.acc.value.eq(old),
        ]
        if self._fpga:
            # The adder's operand is selected by a flag of its own, ``add_fwd`` (``hit_c`` for
            # an add only): with the drain's zero it is a gate of ``add_fwd``, ``drain_c`` and
            # the two words, one LUT of four inputs (with ``hit_c``'s select, synthesis would
            # share ``old`` and put a gate after it). ``same_c`` (B's address equal to C's) is
            # compared in A, a stage earlier still, so that ``hit_c`` and ``add_fwd`` are one
            # gate of flags. A drain adds ``value`` as it comes, zero then.
            add_fwd = Signal(reset_less=True)
            same_c = Signal(reset_less=True)
            m.d.sync += [same_c.eq(addr_b == addr_a), hit_c.eq(wr_en & same_c),
                         add_fwd.eq(wr_en & same_c & ~drain_b)]
            m.d.comb += wr_data.eq(  # wraps to acc_bits
                self._old_value(Mux(drain_c, 0, word_b), add_fwd, fwd) + self.value)
            m.d.sync += Assert(~drain_c | ~self.value.any(),  # not `== 0`: Verilator WIDTHTRUNC
                               "accumulator: non-zero value in a drain's clear\n")
        else:
            # Standard cells: B compares its address with C's, and a drain's zero masks the sum
            # (one gate a bit after the adder: fewer gates than a zero before it on both the
            # old value and ``value``, and the flags' three flip-flops).
            m.d.sync += hit_c.eq(wr_en & (addr_c == addr_b))
            m.d.comb += wr_data.eq(Mux(drain_c, 0, old + self.value))  # wraps to acc_bits
        return m


def _hits(writes, addr) -> list:
    """Whether each write ``(valid, address)`` of ``writes`` goes to ``addr``."""
    return [valid & (waddr == addr) for valid, waddr in writes]
