"""Expressions written so that Yosys's Verilog passes Verilator's lint (docs/design.md 7).

Yosys emits a comparison with a constant 0 as ``!sig``, which Verilator flags (WIDTHTRUNC) for a
multi-bit ``sig``; :func:`eq_const` is the comparison every generator uses instead.
"""

from amaranth.hdl import Value

__all__ = ["eq_const"]


def eq_const(sig: Value, value: int) -> Value:
    """``sig == value`` for an integer ``value``, as ``~sig.any()`` when ``value`` is 0."""
    return ~sig.any() if value == 0 else sig == value
