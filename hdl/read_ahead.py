"""A stream fed from a memory's synchronous read port, one element per cycle (docs/design.md 4.2).

Used by the window reader (the detector's windows) and the output reader (the engine's outputs):
both walk addresses with counters, read one word per cycle from the activation banks, and must
keep a stream going under back-pressure without losing, repeating or reordering an element.
"""

from amaranth.hdl import Module, Mux, ShapeLike, Signal, Value, ValueLike
from amaranth.lib import stream

__all__ = ["read_ahead"]


def read_ahead(m: Module, layout: ShapeLike, going: ValueLike, arriving: ValueLike,
               o: stream.Interface) -> tuple[Value, Value, Value]:
    """Add a 2-entry output buffer in front of the stream ``o`` to module ``m``; return ``issue``.

    ``going`` says that the source has a next element to read this cycle; ``issue`` (returned,
    combinational) says that its read is issued this cycle (``going`` and room in the buffer). The
    caller advances its counters on ``issue`` and, in the cycle after, presents the element read
    on ``arriving`` (a value of ``layout``, built from the read port's data and whatever the caller
    registered with the read). ``o.valid`` and ``o.payload`` come from registers only; ``issue``
    depends combinationally on ``o.ready``: a read is issued when the buffer's entries plus the
    read in flight, less the element handed off this cycle, are at most 1. With ``o.ready`` high
    every cycle the elements come one per cycle, the first two cycles after its read.

    Returns ``(issue, pop, drains)``: ``pop`` is a handoff on ``o`` this cycle, ``drains`` a
    handoff that leaves the buffer empty with no read in flight.
    """
    e0, e1 = Signal(layout, name="buf0"), Signal(layout, name="buf1")
    e0v, e1v = Signal(name="buf0_valid"), Signal(name="buf1_valid")
    fv = Signal(name="in_flight")  # a read is in flight: ``arriving`` holds its element
    pop, issue = Signal(name="pop"), Signal(name="issue")
    occ = Signal(2, name="occupancy")
    m.d.comb += [
        o.valid.eq(e0v),
        o.payload.eq(e0),
        pop.eq(e0v & o.ready),
        occ.eq(e0v + e1v + fv),
        issue.eq(going & ((occ <= 1) | (pop & (occ == 2)))),
    ]
    with m.If(pop):
        m.d.sync += [
            e0.eq(Mux(e1v, e1, arriving)),
            e0v.eq(e1v | fv),
            e1.eq(arriving),
            e1v.eq(e1v & fv),
        ]
    with m.Else():
        m.d.sync += [
            e0.eq(Mux(e0v, e0, arriving)),
            e0v.eq(e0v | fv),
            e1.eq(Mux(e0v & e1v, e1, arriving)),
            e1v.eq(e1v | (e0v & fv)),
        ]
    m.d.sync += fv.eq(issue)
    return issue, pop, pop & ~e1v & ~fv
