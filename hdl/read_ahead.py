"""A stream fed from a memory's synchronous read port, one element per cycle (docs/design.md 4.2).

Used by the window reader (the detector's windows) and the output reader (the engine's outputs):
both walk addresses with counters, read one word per cycle from the activation banks, and must
keep a stream going under back-pressure without losing, repeating or reordering an element.
"""

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, ShapeLike, Signal, Value, ValueLike
from amaranth.lib import data, stream

from .lint import eq_const
from .pipeline import mux_tree

__all__ = ["depth", "read_ahead"]


def depth(read_latency: int) -> int:
    """Entries of the output buffer for a memory of ``read_latency``: one more than the reads in
    flight and a full pipeline need, so that whether to read depends on registers alone (not on
    ``o.ready``)."""
    return read_latency + 2


def read_ahead(m: Module, layout: ShapeLike, going: ValueLike, arriving: ValueLike,
               o: stream.Interface, read_latency: int = 1, *,
               circular: Sequence[str] = (),
               keep: ValueLike | None = None) -> tuple[Value, Value, Value]:
    """Add a :func:`depth`-entry output buffer in front of the stream ``o`` to module ``m``.

    ``going`` says that the source has a next element to read this cycle; ``issue`` (returned)
    says that its read is issued this cycle: ``going`` and room in the buffer for every element
    held or in flight, counted from registers (``o.ready`` is not on this path: a ready chain
    from the consumer never reaches the memories' read enables). The caller advances its
    counters on ``issue`` and, ``read_latency`` cycles after, presents the element read on
    ``arriving`` (a value of ``layout``, built from the memory's data and whatever the caller
    registered with the read). ``o.valid`` and ``o.payload`` come from registers only. With
    ``o.ready`` high every cycle the elements come one per cycle, the first ``read_latency + 1``
    cycles after its read; under back-pressure none is lost, repeated or reordered.

    ``circular`` names fields of ``layout`` (a struct) kept in a circular buffer instead: written
    where the arriving element goes and read where the head is, by two pointers, so that the
    consumer's handoff reaches the pointers alone, not every bit of those fields (their
    ``o.payload`` comes from the pointer's registers through a multiplexer tree). The other
    fields come from a register of the head.

    ``keep`` (a 1-bit value beside ``arriving``, default always): whether the arriving element
    enters the buffer. One not kept is dropped in the cycle it arrives: it is never offered on
    ``o`` and frees its place at once (the window reader's empty windows, docs/design.md 9).
    ``keep`` reaches only the entries' held flags, the occupancy, the circular buffer's write
    pointer and ``drains`` (registers' next values), never an entry's load enable, ``o`` or the
    read: entries still load on the arrival alone (a register), and an entry loaded with an
    element not kept is not held, so it means nothing.

    Returns ``(issue, pop, drains)``: ``pop`` is a handoff on ``o`` this cycle, ``drains`` a
    handoff (or with ``keep`` a drop) that leaves the buffer empty with no read in flight (an
    issue of the same cycle not counted).
    """
    n = depth(read_latency)
    # A shift register: the head is always entries[0], a register, so the consumer's side (the
    # detector loading a window) starts at flip-flops. (A circular buffer, whose handoff moves
    # pointers only, put a multiplexer before the consumer instead, and measured slower on
    # ECP5 for the whole element: 83 against 106 MHz on the demo; ``circular`` keeps it for the
    # fields whose consumer only stores them.)
    if circular:
        shifted_fields = [f for f, _ in data.Layout.cast(layout) if f not in circular]
    else:
        shifted_fields = [None]  # the whole element

    def part(v, f):
        return v if f is None else v[f]

    entries = [Signal(layout, name=f"buf{k}", reset_less=True) for k in range(n)]
    # ``held[k]``: entry k holds an element (the entries held fill entries[0] up), a register of
    # its own, so that what an entry loads is chosen from registers and ``pop`` (the consumer's
    # ready, the latest signal) is the last select before the entry.
    held = [Signal(name=f"held{k}") for k in range(n)]
    flight = [Signal(name=f"in_flight{k + 1}") for k in range(read_latency)]  # reads issued k+1
    # cycles ago; the last one's element is on ``arriving``
    fv = flight[-1]
    pop, issue = Signal(name="pop"), Signal(name="issue")
    # ``fk``: the arriving element enters the buffer; ``drop``: it arrives and is not kept
    if keep is None:
        fk, drop = fv, Const(0)
    else:
        fk, drop = Signal(name="arrive_kept"), Signal(name="arrive_dropped")
        m.d.comb += [fk.eq(fv & keep), drop.eq(fv & ~keep)]
    # ``room``: the entries held plus the reads in flight (the occupancy) are fewer than ``n``.
    # The occupancy is kept as a thermometer code, ``occ[j] = occupancy > j``, shifted up by a
    # read without a pop and down by a pop without a read, so that every bit's next value is a
    # gate or two of its neighbours, ``issue`` and ``pop`` (no adder, no compare), and ``room``
    # is a flip-flop (``~occ[n - 1]``): whether to read is one gate from registers.
    occ = Signal(n, name="occupancy")
    room = Signal(name="room")
    up, down = Signal(name="occ_up"), Signal(name="occ_down")
    m.d.comb += [
        o.valid.eq(held[0]),
        *[part(o.payload, f).eq(part(entries[0], f)) for f in shifted_fields],
        pop.eq(o.valid & o.ready),
        issue.eq(going & room),
        room.eq(~occ[n - 1]),
    ]
    if keep is None:
        m.d.comb += [up.eq(issue & ~pop), down.eq(pop & ~issue)]
        for j in range(n):
            below_j = occ[j - 1] if j else Const(1)
            above_j = occ[j + 1] if j + 1 < n else Const(0)
            m.d.sync += occ[j].eq(Mux(up, below_j, Mux(down, above_j, occ[j])))
    else:
        # a drop leaves too: the occupancy moves by issue - pop - drop, from +1 to -2
        down2 = Signal(name="occ_down2")
        m.d.comb += [up.eq(issue & ~pop & ~drop),
                     down.eq(Mux(issue, pop & drop, pop ^ drop)),
                     down2.eq(pop & drop & ~issue)]
        for j in range(n):
            below_j = occ[j - 1] if j else Const(1)
            above_j = occ[j + 1] if j + 1 < n else Const(0)
            above2_j = occ[j + 2] if j + 2 < n else Const(0)
            m.d.sync += occ[j].eq(Mux(up, below_j, Mux(down, above_j,
                                                       Mux(down2, above2_j, occ[j]))))
    # On a pop entry k takes what entry k + 1 held, or the arriving element when entry k + 1 is
    # free (then entry k is free after the pop, or above the first free one); without a pop a
    # free entry takes the arriving element. An entry not held means nothing, so the arriving
    # element may land in several: the one that counts is the lowest.
    for k, e in enumerate(entries):
        above = held[k + 1] if k + 1 < n else Const(0)
        shifted = entries[k + 1] if k + 1 < n else e
        with m.If(pop):
            m.d.sync += [part(e, f).eq(Mux(fv & ~above, part(arriving, f), part(shifted, f)))
                         for f in shifted_fields]
        with m.Elif(fv & ~held[k]):
            m.d.sync += [part(e, f).eq(part(arriving, f)) for f in shifted_fields]
        below = held[k - 1] if k else Const(1)
        m.d.sync += held[k].eq(Mux(pop & ~fk, above, Mux(fk & ~pop, below, held[k])))
    m.d.sync += flight[0].eq(issue)
    m.d.sync += [flight[k + 1].eq(flight[k]) for k in range(read_latency - 1)]
    if circular:
        # written at ``wr`` (the next free entry), read at ``rd`` (the head)
        ring = [Signal(layout, name=f"ring{k}", reset_less=True) for k in range(n)]
        wr, rd = Signal(range(n), name="ring_wr"), Signal(range(n), name="ring_rd")
        for k, e in enumerate(ring):
            with m.If(fv & eq_const(wr, k)):
                m.d.sync += [e[f].eq(arriving[f]) for f in circular]
        for f in circular:
            m.d.comb += o.payload[f].eq(mux_tree(rd, [e[f] for e in ring]))
        with m.If(fk):
            m.d.sync += wr.eq(Mux(eq_const(wr, n - 1), 0, wr + 1))
        with m.If(pop):
            m.d.sync += rd.eq(Mux(eq_const(rd, n - 1), 0, rd + 1))
    if keep is None:
        empty_after = ~held[1] & ~Cat(*flight).any()
        return issue, pop, pop & empty_after
    # with drops: the occupancy (held and in flight) falls to 0 by this cycle's leaves
    drains = Signal(name="drains")
    m.d.comb += drains.eq(Mux(pop & drop, ~occ[2], (pop | drop) & ~occ[1]))
    return issue, pop, drains
