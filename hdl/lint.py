"""Expressions written so that Yosys's Verilog passes Verilator's lint (docs/design.md 7).

Yosys emits a comparison with a constant 0 as ``!sig``, which Verilator flags (WIDTHTRUNC) for a
multi-bit ``sig``; :func:`eq_const` is the comparison every generator uses instead. A dynamic
index into an array view becomes a wide shift that Verilator flags too; :func:`select` is the
multiplexer every generator uses instead.
"""

from collections.abc import Sequence

from amaranth.hdl import Mux, Value

__all__ = ["eq_const", "select"]


def eq_const(sig: Value, value: int) -> Value:
    """``sig == value`` for an integer ``value``, as ``~sig.any()`` when ``value`` is 0."""
    return ~sig.any() if value == 0 else sig == value


def select(index: Value, values: Sequence[Value]) -> Value:
    """``values[index]`` as a chain of multiplexers (the last value for an index past the end)."""
    out = values[-1]
    for i in range(len(values) - 2, -1, -1):
        out = Mux(eq_const(index, i), values[i], out)
    return out
