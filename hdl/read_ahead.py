"""A stream fed from a memory's synchronous read port, one element per cycle (docs/design.md 4.2).

Used by the window reader (the detector's windows) and the output reader (the engine's outputs):
both walk addresses with counters, read one word per cycle from the activation banks, and must
keep a stream going under back-pressure without losing, repeating or reordering an element.
"""

from amaranth.hdl import Cat, Module, Mux, ShapeLike, Signal, Value, ValueLike
from amaranth.lib import stream

from .lint import eq_const

__all__ = ["depth", "read_ahead"]


def depth(read_latency: int) -> int:
    """Entries of the output buffer for a memory of ``read_latency``: one more than the reads in
    flight and a full pipeline need, so that whether to read depends on registers alone (not on
    ``o.ready``)."""
    return read_latency + 2


def read_ahead(m: Module, layout: ShapeLike, going: ValueLike, arriving: ValueLike,
               o: stream.Interface, read_latency: int = 1) -> tuple[Value, Value, Value]:
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

    Returns ``(issue, pop, drains)``: ``pop`` is a handoff on ``o`` this cycle, ``drains`` a
    handoff that leaves the buffer empty with no read in flight.
    """
    n = depth(read_latency)
    # A shift register: the head is always entries[0], a register, so the consumer's side (the
    # detector loading a window) starts at flip-flops. (A circular buffer, whose handoff moves
    # pointers only, put a multiplexer before the consumer instead, and measured slower on
    # ECP5: 83 against 106 MHz on the demo.)
    entries = [Signal(layout, name=f"buf{k}", reset_less=True) for k in range(n)]
    count = Signal(range(n + 1), name="count")  # entries held, from entries[0] up
    flight = [Signal(name=f"in_flight{k + 1}") for k in range(read_latency)]  # reads issued k+1
    # cycles ago; the last one's element is on ``arriving``
    fv = flight[-1]
    pop, issue = Signal(name="pop"), Signal(name="issue")
    m.d.comb += [
        o.valid.eq(count.any()),
        o.payload.eq(entries[0]),
        pop.eq(o.valid & o.ready),
        issue.eq(going & (count + sum(flight) < n)),
    ]
    # After the pop, entry k holds what entry k + 1 held; the arriving element goes to the first
    # free entry.
    free = Signal(range(n + 1), name="free")
    m.d.comb += free.eq(count - pop)
    for k, e in enumerate(entries):
        shifted = entries[k + 1] if k + 1 < n else e
        kept = Mux(pop, shifted, e)
        m.d.sync += e.eq(Mux(fv & eq_const(free, k), arriving, kept))
    m.d.sync += [count.eq(free + fv), flight[0].eq(issue)]
    m.d.sync += [flight[k + 1].eq(flight[k]) for k in range(read_latency - 1)]
    empty_after = eq_const(count, 1) & ~Cat(*flight).any()
    return issue, pop, pop & empty_after
