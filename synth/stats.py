"""Yosys ``stat -json`` of a hierarchical synthesis, composed into totals (docs/design.md section 8).

Yosys reports every module once: its own cells by type (a submodule instance counts as a cell
whose type is the submodule's name) and, for the ASIC target, its area including its submodules.
:class:`Hierarchy` keeps each module's *own* figures and composes the design's totals from them
and the instance counts (``total(m) = own(m) + sum(count * total(sub))``), so the report can show
how a total was made: one PE synthesized once, times ``n_pe``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from permdeal.errors import PermdealError

__all__ = ["Hierarchy", "Module", "breakdown", "read_stat"]


@dataclass
class Module:
    """One synthesized module: its own cells (by type), area and transistors, and its submodule
    instances (by module name)."""

    name: str
    cells: Counter = field(default_factory=Counter)
    subs: Counter = field(default_factory=Counter)
    area: float = 0.0          # own, um^2 (asic)
    sequential_area: float = 0.0
    transistors: int = 0       # own, `stat -tech cmos` (generic)
    blackboxes: Counter = field(default_factory=Counter)  # instances of cells without a model


def _name(key):
    return key[1:] if key.startswith("\\") else key


def _transistors(value):
    """``estimated_num_transistors``: an int, or a string ending in ``+`` when some cells have no
    estimate (black boxes)."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+)\+?", str(value))
    return int(m[1]) if m else 0


def read_stat(path: Path, blackboxes: Collection[str] = ()) -> Hierarchy:
    """The :class:`Hierarchy` of a ``stat -json`` file. ``blackboxes`` names modules without a
    body (the ROM stub), whose instances are counted apart from the cells."""
    try:
        data = json.loads(path.read_text())
        modules = data["modules"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PermdealError(f"{path}: not a Yosys stat -json report ({e})") from None
    known = {_name(k) for k in modules}
    out = {}
    for key, d in modules.items():
        mod = Module(_name(key))
        for t, n in d.get("num_cells_by_type", {}).items():
            t = _name(t)
            base = t.rsplit("\\", 1)[-1]  # $paramod$<hash>\name -> name
            if t in known:
                mod.subs[t] += n
            elif base in blackboxes:
                mod.blackboxes[base] += n
            elif not t.startswith("$paramod"):
                mod.cells[t] += n
            else:
                raise PermdealError(f"{path}: cell type {t} is neither a module nor a cell")
        mod.area = float(d.get("area", 0.0))
        mod.sequential_area = float(d.get("sequential_area", 0.0))
        mod.transistors = _transistors(d.get("estimated_num_transistors", 0))
        out[mod.name] = mod
    return Hierarchy(out)


class Hierarchy:
    """The synthesized modules of a design, with composed totals.

    Yosys' ``area`` and transistor figures include the submodules; the constructor turns them into
    each module's own figure, so that every total is composed here in one way.
    """

    #: The figures Yosys reports with submodules included.
    FIGURES = ("area", "sequential_area", "transistors")

    def __init__(self, modules):
        self.modules = modules
        for name, mod in modules.items():
            for sub in mod.subs:
                if sub not in modules:
                    raise PermdealError(f"module {name} instantiates {sub}, which Yosys did not "
                                        "report")
        yosys = {name: {f: getattr(mod, f) for f in self.FIGURES} for name, mod in modules.items()}
        for mod in modules.values():
            for f in self.FIGURES:
                own = yosys[mod.name][f] - sum(n * yosys[sub][f] for sub, n in mod.subs.items())
                # float noise of the subtraction; a module's own figure is never negative
                setattr(mod, f, max(0, round(own, 3) if f != "transistors" else own))
        _ = self.top  # exactly one top module (raises otherwise)

    @property
    def top(self) -> str:
        """The module no other module instantiates."""
        used = {s for m in self.modules.values() for s in m.subs}
        tops = sorted(set(self.modules) - used)
        if len(tops) != 1:
            raise PermdealError(f"synthesized design has {len(tops)} top modules: {tops}")
        return tops[0]

    def instances(self, root: str | None = None) -> Counter[str]:
        """``{module: number of instances}`` under ``root`` (default: the top), ``root`` once."""
        root = root or self.top
        counts = Counter({root: 1})

        def visit(name, k):
            for sub, n in self.modules[name].subs.items():
                counts[sub] += k * n
                visit(sub, k * n)
        visit(root, 1)
        return counts

    def cells(self, root: str | None = None) -> Counter[str]:
        """Cell counts by type under ``root`` (default: the top), submodules composed."""
        out = Counter()
        for name, k in self.instances(root).items():
            for t, n in self.modules[name].cells.items():
                out[t] += k * n
        return out

    def blackboxes(self, root: str | None = None) -> Counter[str]:
        out = Counter()
        for name, k in self.instances(root).items():
            for t, n in self.modules[name].blackboxes.items():
                out[t] += k * n
        return out

    def composed(self, what: str, root: str | None = None) -> float:
        """``what`` of ``root`` (default: the top) composed from own figures and instance
        counts."""
        return sum(k * getattr(self.modules[name], what)
                   for name, k in self.instances(root).items())

    def rows(self, what: str) -> list[tuple[str, int, float, float]]:
        """``[(module, instances, own each, own total)]`` for every module, largest first: how
        the total was composed."""
        rows = [(name, k, getattr(self.modules[name], what), k * getattr(self.modules[name], what))
                for name, k in self.instances().items()]
        return sorted(rows, key=lambda r: (-r[3], r[0]))


#: Per-PE breakdown categories (EIE Table II style), matched on the module path below the PE.
#: (The engine's lanes are one module, ``{top}_lane``; a PE of its own has ``{pe}.lane<l>``.)
BREAKDOWN = (
    ("multipliers", re.compile(r"lane\d*\.multiplier$")),
    ("accumulators", re.compile(r"lane\d*\.accumulator$")),
    ("index logic", re.compile(r"lane\d*\.perm_index$")),
    ("lane pipeline", re.compile(r"[._]lane\d*$|\.op_stages$")),
    ("write-back", re.compile(r"_pe_wb\.wb\d+$")),
)


def breakdown(hier: Hierarchy, pe: str, pe_wb: str, what: str,
              wb_share: float = 1.0) -> dict[str, float]:
    """One PE's ``what`` (area, cells...) by function: ``{category: figure}``. ``pe`` and
    ``pe_wb`` are the module names of the PE and its write-back, the write-back counted
    ``wb_share`` times (with lane groups, write-backs per PE); a module whose path matches none
    of :data:`BREAKDOWN` counts as control (the PE's and write-back's own glue)."""
    out = Counter({name: 0.0 for name, _ in BREAKDOWN})
    out["control"] = 0.0
    for root, share in ((pe, 1.0), (pe_wb, wb_share)):
        for name, k in hier.instances(root).items():
            value = share * k * getattr(hier.modules[name], what)
            for cat, pattern in BREAKDOWN:
                if pattern.search(name):
                    out[cat] += value
                    break
            else:
                out["control"] += value
    return dict(out)
