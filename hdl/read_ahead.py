"""A stream fed from a memory's synchronous read port, one element per cycle (docs/design.md 4.2).

Used by the window reader (the detector's windows) and the output reader (the engine's outputs):
both walk addresses with counters, read one word per cycle from the activation banks, and must
keep a stream going under back-pressure without losing, repeating or reordering an element.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ShapeLike, Signal, Value, ValueLike
from amaranth.lib import stream

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
    # ``held[k]``: entry k holds an element (``count > k``), a register of its own, so that what
    # an entry loads is chosen from registers and ``pop`` (the consumer's ready, the latest
    # signal) is the last select before the entry.
    held = [Signal(name=f"held{k}") for k in range(n)]
    flight = [Signal(name=f"in_flight{k + 1}") for k in range(read_latency)]  # reads issued k+1
    # cycles ago; the last one's element is on ``arriving``
    fv = flight[-1]
    pop, issue = Signal(name="pop"), Signal(name="issue")
    m.d.comb += [
        o.valid.eq(held[0]),
        o.payload.eq(entries[0]),
        pop.eq(o.valid & o.ready),
        issue.eq(going & (count + sum(flight) < n)),
    ]
    # On a pop entry k takes what entry k + 1 held, or the arriving element when entry k + 1 is
    # free (then entry k is free after the pop, or above the first free one); without a pop a
    # free entry takes the arriving element. An entry at or above ``count`` means nothing, so
    # the arriving element may land in several: the one that counts is the lowest.
    for k, e in enumerate(entries):
        above = held[k + 1] if k + 1 < n else Const(0)
        shifted = entries[k + 1] if k + 1 < n else e
        with m.If(pop):
            m.d.sync += e.eq(Mux(fv & ~above, arriving, shifted))
        with m.Elif(fv & ~held[k]):
            m.d.sync += e.eq(arriving)
        below = held[k - 1] if k else Const(1)
        m.d.sync += held[k].eq(Mux(pop & ~fv, above, Mux(fv & ~pop, below, held[k])))
    m.d.sync += [count.eq(count - pop + fv), flight[0].eq(issue)]
    m.d.sync += [flight[k + 1].eq(flight[k]) for k in range(read_latency - 1)]
    empty_after = ~held[1] & ~Cat(*flight).any()
    return issue, pop, pop & empty_after
