"""A component emitted once as its own Verilog module and instantiated by name (docs/design.md 8).

The engine repeats identical blocks (its PEs and their write-back) dozens of times; elaborating each
copy would make generating a large engine slow. :class:`Blackbox` stands for a component by an
instance of the Verilog module ``module``, with the same ports; ``gen.verilog.emit`` emits that
module once, from the component, next to the design that instantiates it. The same one module is
what synthesis handles once per design (hierarchical synthesis).
"""

from typing import Any

from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib import wiring

__all__ = ["Blackbox", "leaf_modules"]


class Blackbox(wiring.Component):
    """An instance of the Verilog module ``module`` that ``inner`` (a ``wiring.Component`` with
    ``clk`` and ``rst``, the ``sync`` domain) is emitted as; same signature and port names as
    Amaranth gives ``inner`` when it converts it as a top module."""

    def __init__(self, inner, module):
        if not isinstance(inner, wiring.Component):
            raise TypeError(f"a blackbox stands for a wiring.Component, not {inner!r}")
        self._inner, self._module = inner, module
        super().__init__(inner.signature)

    @property
    def inner(self) -> wiring.Component:
        return self._inner

    @property
    def module(self) -> str:
        return self._module

    def elaborate(self, platform: Any) -> Instance:
        ports = [("i", "clk", ClockSignal()), ("i", "rst", ResetSignal())]
        for path, member, value in self.signature.flatten(self):
            kind = "i" if member.flow == wiring.In else "o"
            ports.append((kind, "__".join(map(str, path)), Value.cast(value)))
        return Instance(self._module, *ports)


def leaf_modules(component: wiring.Component) -> dict[str, wiring.Component]:
    """``{module name: component}`` of every :class:`Blackbox` a design holds, through its
    ``blackboxes`` attribute (a sequence) and theirs, recursively, first found first. Two
    components may share a module name only when they are the same object or have the same
    ``blackbox_key`` (the parameters that fix their Verilog, e.g. :attr:`.ram.Ram.blackbox_key`)."""
    out = {}
    todo = list(getattr(component, "blackboxes", ()))
    while todo:
        box = todo.pop(0)
        if box.module not in out:
            out[box.module] = box.inner
            todo.extend(getattr(box.inner, "blackboxes", ()))
        elif out[box.module] is not box.inner and not _same_key(out[box.module], box.inner):
            raise ValueError(f"two different components claim the module name {box.module!r}")
    return out


def _same_key(a, b):
    key = getattr(a, "blackbox_key", None)
    return key is not None and key == getattr(b, "blackbox_key", None)
