"""Switching activity of a simulation, read from the SAIF file Verilator writes (docs/design.md
section 13).

A SAIF file (Switching Activity Interchange Format, IEEE 1801 annex) gives, for every net bit of
every instance, the time it spent at 0 and at 1 (``T0``, ``T1``) and its number of transitions
(``TC``) over the simulated ``DURATION``. :func:`read_saif` reads it into an :class:`Activity`:
per instance path (a tuple of instance names below the top) and net bit name (``data[3]``), the
pair ``(T1, TC)``. Verilator writes the names of escaped Verilog identifiers mangled (a character
outside ``[A-Za-z0-9_$]`` becomes ``__0`` and its two hex digits); they are read back as written
in the Verilog, so that ``w[4].value[0]`` is found under that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from permdeal.errors import PermdealError

__all__ = ["Activity", "demangle", "read_saif"]

_MANGLED = re.compile(r"__0([0-9a-f]{2})")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_NET = re.compile(r"^\s*\((\S+)\s+\(T0 (\d+)\)\s+\(T1 (\d+)\)\s+(?:\(T\w \d+\)\s+)*?\(TC (\d+)\)")
_INSTANCE = re.compile(r"^\s*\(INSTANCE\s+(\S+)")
_DURATION = re.compile(r"\(DURATION\s+(\d+)\)")
_TIMESCALE = re.compile(r"\(TIMESCALE\s+(\d+)\s*(fs|ps|ns|us)\)")
_UNIT_PS = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6}


def demangle(name: str) -> str:
    """A SAIF net or instance name as the Verilog wrote it: Verilator's ``__0XX`` codes decoded,
    the SAIF escapes of ``[`` and ``]`` removed."""
    return _MANGLED.sub(lambda m: chr(int(m[1], 16)), name.replace("\\", ""))


@dataclass
class Activity:
    """What :func:`read_saif` read: ``duration_ps`` simulated, and per instance path the nets'
    ``(T1 in ps, transitions)``. The top's ports are under the path ``()`` (SAIF's
    ``$rootio``); the top module's own nets under ``()`` too."""

    duration_ps: float
    nets: dict[tuple[str, ...], dict[str, tuple[int, int]]] = field(default_factory=dict)

    def net(self, path: tuple[str, ...], name: str) -> tuple[int, int] | None:
        """``(T1, TC)`` of net bit ``name`` in the instance at ``path``, or None."""
        return self.nets.get(tuple(path), {}).get(name)

    def clock_cycles(self, clock: str = "clk") -> float:
        """Clock cycles simulated: half the transitions of the top's port ``clock``."""
        hit = self.net((), clock)
        if hit is None or hit[1] < 2:
            raise PermdealError(f"the activity trace has no toggling clock {clock!r}")
        return hit[1] / 2

    def high_cycles(self, path: tuple[str, ...], name: str, clock: str = "clk") -> float:
        """Clock cycles net bit ``name`` of the instance at ``path`` spent at 1 (0 when the
        trace lacks it): for a register's output or an enable, the cycles it was on."""
        hit = self.net(path, name)
        return 0.0 if hit is None else hit[0] * self.clock_cycles(clock) / self.duration_ps

    def find(self, dotted: str, top: tuple[str, ...] = ()) -> tuple[int, int] | None:
        """The net bit of a flattened name ``a.b.sig[3]`` (instance names joined by dots, as
        Yosys' ``flatten`` writes them) below instance ``top``: the longest instance path that
        exists, the rest of the name the net's. None when there is no such net."""
        parts = dotted.split(".")
        path = list(top)
        i = 0
        while i < len(parts) - 1 and tuple([*path, parts[i]]) in self.nets:
            path.append(parts[i])
            i += 1
        # a net whose own name holds dots (``w[4].value``) is tried from every depth down
        while True:
            hit = self.net(tuple(path), ".".join(parts[i:]))
            if hit is not None or len(path) == len(top):
                return hit
            path.pop()
            i -= 1


def read_saif(path: str | Path, top: str) -> Activity:
    """The :class:`Activity` of SAIF file ``path``, whose design's top instance is ``top``;
    raises :class:`PermdealError` naming the file when it is not such a file."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise PermdealError(f"cannot read the activity file {path}: {e}") from None
    duration, scale = _DURATION.search(text), _TIMESCALE.search(text)
    if not text.lstrip().startswith(("//", "(SAIFILE")) or duration is None or scale is None:
        raise PermdealError(f"{path}: not a SAIF file (no SAIFILE, DURATION or TIMESCALE)")
    unit = int(scale[1]) * _UNIT_PS[scale[2]]
    act = Activity(duration_ps=int(duration[1]) * unit)
    stack: list[tuple[str, ...]] = []
    depth = 0  # parentheses open
    marks: list[int] = []  # depth at which each open instance began
    for line in text.splitlines():
        m = _NET.match(line)
        if m and stack:
            nets = act.nets.setdefault(stack[-1], {})
            nets[demangle(m[1])] = (int(int(m[3]) * unit), int(m[4]))
            depth += line.count("(") - line.count(")")
            continue
        m = _INSTANCE.match(line)
        if m:
            name = demangle(m[1])
            if not stack:
                current: tuple[str, ...] = ()
            elif name == top and stack[-1] == ():
                current = ()
            else:
                current = (*stack[-1], name)
            stack.append(current)
            marks.append(depth)
        depth += line.count("(") - line.count(")")
        while marks and depth <= marks[-1]:
            marks.pop()
            stack.pop()
    if not act.nets:
        raise PermdealError(f"{path}: the SAIF file holds no net")
    return act
