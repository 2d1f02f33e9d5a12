"""Pieces of pipeline the engine's blocks share: delay lines and multiplexer trees
(docs/design.md 4.2)."""

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal, Value, ValueLike

__all__ = ["delay", "mux_level", "mux_tree"]


def delay(m: Module, value: ValueLike, cycles: int, name: str, *,
          reset_less: bool = True) -> Value:
    """``value`` ``cycles`` cycles later: a chain of registers ``{name}_d1``, ``{name}_d2``, ...
    in module ``m`` (``value`` itself when ``cycles`` is 0). Reset-less unless ``reset_less`` is
    false (then ``rst`` clears them)."""
    for k in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{k + 1}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def mux_level(bit: ValueLike, values: Sequence[ValueLike]) -> list[Value]:
    """One level of a multiplexer tree: of each pair of ``values`` (from the first), the second
    where ``bit`` is set."""
    return [Mux(bit, hi, lo) for lo, hi in zip(values[0::2], values[1::2])]


def mux_tree(bits: Value, values: Sequence[ValueLike]) -> Value:
    """``values[bits]``, a tree of 2:1 multiplexers, one level per bit of ``bits`` from the least
    significant, over ``values`` padded to ``2**len(bits)`` with ``values[0]`` (an index past the
    last picks the first). Its depth is ``len(bits)``, not ``len(values)`` (a chain of 512 would
    overflow Python's recursion limit when Amaranth walks it)."""
    level = list(values) + [values[0]] * ((1 << len(bits)) - len(values))
    for bit in bits:
        level = mux_level(bit, level)
    (out,) = level
    return out
