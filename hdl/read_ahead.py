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
    # A circular buffer: an element stays in the entry it arrived in (written at ``wptr``) and
    # leaves from ``rptr``, so a handoff moves two pointers and a count, never the entries (no
    # path from ``o.ready`` to the entries' enables).
    entries = [Signal(layout, name=f"buf{k}", reset_less=True) for k in range(n)]
    count = Signal(range(n + 1), name="count")  # entries held
    rptr = Signal(range(n), name="rptr")
    wptr = Signal(range(n), name="wptr")
    flight = [Signal(name=f"in_flight{k + 1}") for k in range(read_latency)]  # reads issued k+1
    # cycles ago; the last one's element is on ``arriving``
    fv = flight[-1]
    pop, issue = Signal(name="pop"), Signal(name="issue")
    head = entries[0]
    for k in range(1, n):
        head = Mux(eq_const(rptr, k), entries[k], head)
    m.d.comb += [
        o.valid.eq(count.any()),
        o.payload.eq(head),
        pop.eq(o.valid & o.ready),
        issue.eq(going & (count + sum(flight) < n)),
    ]
    for k, e in enumerate(entries):
        with m.If(fv & eq_const(wptr, k)):
            m.d.sync += e.eq(arriving)
    m.d.sync += [count.eq(count - pop + fv), flight[0].eq(issue)]
    m.d.sync += [flight[k + 1].eq(flight[k]) for k in range(read_latency - 1)]
    with m.If(pop):
        m.d.sync += rptr.eq(Mux(eq_const(rptr, n - 1), 0, rptr + 1))
    with m.If(fv):
        m.d.sync += wptr.eq(Mux(eq_const(wptr, n - 1), 0, wptr + 1))
    empty_after = eq_const(count, 1) & ~Cat(*flight).any()
    return issue, pop, pop & empty_after
