"""A gate-level netlist made simulatable again: the memories put back (docs/design.md section 13).

The power netlist (``synth/power.py``) has its memories cut to ports: every pin of a memory
instance ``a.b.mem`` is a top-level port ``a.b.mem__mem__<pin>`` of the netlist, one port per
bit. :func:`wrapper` writes the Verilog module that a testbench of the RTL can drive in its
place: it has the RTL top's name and ports (vectors as in the RTL), instantiates the netlist
(renamed :data:`GATES_SUFFIX`) and every memory, a module of the RTL with the parameters the RTL
gave it, connected to those ports and named by its flattened path (``\\pe0.lane1.mem``),
its clock straight from the top. The netlist's cells are whatever Verilog the caller gives them
(``synth/power.py`` ``sim_netlist``: each cell replaced by its liberty function).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from permdeal.errors import PermdealError

__all__ = ["GATES_SUFFIX", "MEMORY_SEP", "module_names", "module_text", "rtl_instances", "rtl_ports", "wrapper"]

#: The netlist module's name in the gate-level simulation: the top's name and this suffix.
GATES_SUFFIX = "_gates"
#: Separator of a memory-boundary port's name (synth/sta.py writes it).
MEMORY_SEP = "__mem__"
#: The clock port of the top and of every memory.
CLOCK = "clk"

_MODULE = re.compile(r"^module\s+(\\\S+|\w+)\s*\((.*?)\);(.*?)^endmodule", re.S | re.M)
_INSTANCE = re.compile(r"^\s{2}(\\\S+|\w+)\s*(#\((.*?)\))?\s*(\\\S+|\w+)\s*\(", re.S | re.M)
_DECL = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                   r"(\\\S+|\w+)\s*;", re.M)
_PORT_BIT = re.compile(r"^(.*?)(?:\[(\d+)\])?$")


def _name(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _modules(verilog: str) -> dict[str, tuple[str, str]]:
    """Module name -> (port list, body) of every module of ``verilog``."""
    return {_name(m[1]): (m[2], m[3]) for m in _MODULE.finditer(verilog)}


def module_names(verilog: str) -> set[str]:
    """The names of the modules ``verilog`` defines."""
    return set(_modules(verilog))


def module_text(verilog: str, name: str) -> str:
    """The whole text of module ``name`` of ``verilog`` (``module`` to ``endmodule``)."""
    for m in _MODULE.finditer(verilog):
        if _name(m[1]) == name:
            return m[0] + "\n"
    raise PermdealError(f"the Verilog has no module {name}")


def rtl_instances(verilog: str, top: str,
                  modules: Collection[str]) -> dict[str, tuple[str, str]]:
    """Every instance of one of ``modules`` below ``top`` in RTL text ``verilog``: dotted
    instance path (as Yosys' ``flatten`` names it) -> (module, parameter text or "")."""
    mods = _modules(verilog)
    if top not in mods:
        raise PermdealError(f"the RTL has no module {top}")
    out = {}

    def walk(module, prefix):
        for m in _INSTANCE.finditer(mods[module][1]):
            kind, params, inst = _name(m[1]), m[3] or "", _name(m[4])
            if kind in ("assign", "always", "initial", "reg", "wire", "input", "output"):
                continue
            path = f"{prefix}{inst}"
            if kind in modules:
                out[path] = (kind, params.strip())
            elif kind in mods:
                walk(kind, path + ".")
    walk(top, "")
    return out


def rtl_ports(verilog: str, top: str) -> list[tuple[str, str, int, int]]:
    """``(direction, name, msb, lsb)`` of the ports of module ``top`` of ``verilog``, in its
    port-list order (``msb = lsb = -1`` for a one-bit port)."""
    mods = _modules(verilog)
    if top not in mods:
        raise PermdealError(f"the Verilog has no module {top}")
    order = [_name(p.strip()) for p in mods[top][0].split(",") if p.strip()]
    decl = {_name(n): (d, int(a) if a else -1, int(b) if b else -1)
            for d, a, b, n in _DECL.findall(mods[top][1])}
    missing = [p for p in order if p not in decl]
    if missing:
        raise PermdealError(f"module {top}: no direction for port {missing[0]}")
    return [(decl[p][0], p, decl[p][1], decl[p][2]) for p in order]


def _esc(name: str) -> str:
    """``name`` as a Verilog identifier (escaped unless plain)."""
    return name if re.fullmatch(r"[A-Za-z_]\w*", name) else f"\\{name} "


def wrapper(netlist: str, rtl: str, top: str, memory_modules: Collection[str],
            tied: Mapping[str, int] | None = None) -> tuple[str, str]:
    """``(wrapper, netlist)``: the Verilog module ``top`` that stands for the RTL top (same
    ports) and holds the gate-level ``netlist`` (text of one module ``top``, renamed ``top`` +
    :data:`GATES_SUFFIX` in the returned netlist) and the memories of the RTL (instances of
    ``memory_modules``), and the renamed netlist. ``tied`` names input ports of the netlist
    that the RTL lacks and the constant (0 or 1) they are held at."""
    tied = dict(tied or {})
    gates = top + GATES_SUFFIX
    renamed, n = re.subn(rf"^module\s+{re.escape(top)}\s*\(", f"module {gates}(", netlist,
                         count=1, flags=re.M)
    if n != 1:
        raise PermdealError(f"the netlist has no module {top}")
    nports = rtl_ports(renamed, gates)
    rports = rtl_ports(rtl, top)
    memories = rtl_instances(rtl, top, memory_modules)
    lines = [f"// Gate-level stand-in for {top}: the netlist {gates} and the RTL's memories.",
             f"module {top}({', '.join(p for _, p, _, _ in rports)});"]
    for d, p, msb, lsb in rports:
        width = f"[{msb}:{lsb}] " if msb >= 0 else ""
        lines.append(f"  {d} wire {width}{p};")
    conns = []
    pins: dict[str, dict[str, dict[int, str]]] = {}
    rtl_names = {p: (msb, lsb) for _, p, msb, lsb in rports}
    for _d, p, _msb, _lsb in nports:
        base, bit = _PORT_BIT.match(p).groups()
        if MEMORY_SEP in p:
            inst, pin = base.split(MEMORY_SEP, 1)
            if inst not in memories:
                raise PermdealError(f"the netlist's port {p} names a memory {inst} the RTL "
                                    "does not have")
            wire = f"gm_{len(conns)}"
            lines.append(f"  wire {wire};")
            pins.setdefault(inst, {}).setdefault(pin, {})[int(bit) if bit else -1] = wire
            conns.append(f".{_esc(p)}({wire})")
        elif p in tied:
            conns.append(f".{_esc(p)}(1'b{int(bool(tied[p]))})")
        elif base in rtl_names:
            conns.append(f".{_esc(p)}({base}{f'[{bit}]' if bit else ''})")
        else:
            raise PermdealError(f"the netlist's port {p} is not a port of the RTL top {top}")
    lines.append(f"  {gates} gates (\n    " + ",\n    ".join(conns) + "\n  );")
    for inst, (module, params) in sorted(memories.items()):
        if inst not in pins:
            raise PermdealError(f"the netlist has no port of the memory {inst}")
        # the clock itself, not through the netlist: no race with the netlist's flip-flops
        cs = [f".{CLOCK}({CLOCK})"]
        for pin, bits in sorted(pins[inst].items()):
            if pin == CLOCK:
                continue
            if -1 in bits:
                cs.append(f".{pin}({bits[-1]})")
            else:
                cs.append(f".{pin}({{{', '.join(bits[i] for i in sorted(bits, reverse=True))}}})")
        ps = f" #({params})" if params else ""
        lines.append(f"  {module}{ps} {_esc(inst)} ({', '.join(cs)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n", renamed
