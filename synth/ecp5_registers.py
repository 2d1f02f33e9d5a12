"""Register absorption for ECP5: flip-flops moved into the block RAMs' and DSPs' own registers.

Yosys (0.70) maps a memory read onto a DP16KD with its output register off and a ``*`` onto a
MULT18X18D with no register in use, and leaves the flip-flops around them in the fabric. A path
through either block then starts or ends at the block's combinational pins: 5.6 ns from a block
RAM's clock to its data, 3.9 ns through a multiplier, on speed grade 6, before any routing. The
vendor's flow moves such flip-flops into the blocks; this pass does the same on the flat netlist
that nextpnr places (docs/design.md section 8), and only where the block's register does exactly
what the flip-flop did:

* **Block RAM output register** (``REGMODE_x = OUTREG``): every data output of port ``x`` that
  is used drives one plain flip-flop and nothing else, clocked by the port's clock; the
  flip-flops go, the outputs take their nets.
* **Multiplier input registers** (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``): every non-constant
  bit of operand ``A`` (``B``) comes from a plain flip-flop; the operand pins take the
  flip-flops' data inputs instead, so the multiplier's register holds what the flip-flop holds
  (a flip-flop left with no other load goes).
* **Multiplier output register** (``REG_OUTPUT_CLK``): every product bit that is used drives one
  plain flip-flop and nothing else; the flip-flops go, the product pins take their nets.

A *plain* flip-flop loads every cycle on the rising edge of the one clock: no clock enable, no
set or reset (``CEMUX = 1``, ``CLKMUX = CLK``, ``LSR`` tied to 0). The blocks' registers are
then used with their clock enable tied to 1 and their reset to 0: the same behaviour, cycle for
cycle. The multiplier's sign and source pins must be constants (they are registered with the
operands).
"""

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from permdeal import atomic

__all__ = ["absorb", "absorb_file"]

DSP, BRAM, FF = "MULT18X18D", "DP16KD", "TRELLIS_FF"


def _bits(cell: dict, pin: str) -> list:
    return cell["connections"].get(pin, [])


def _pins(cell: dict, prefix: str, count: int) -> Iterator[str]:
    return (f"{prefix}{i}" for i in range(count) if f"{prefix}{i}" in cell["connections"])


class _Netlist:
    """Drivers and loads of every net bit of one (flat) module."""

    def __init__(self, module: dict):
        self.cells = module["cells"]
        self.names = {id(c): n for n, c in self.cells.items()}
        self.driver: dict = {}
        self.loads: dict = defaultdict(list)
        for name, cell in self.cells.items():
            dirs = cell.get("port_directions", {})
            for pin, bits in cell["connections"].items():
                for bit in bits:
                    if isinstance(bit, str):
                        continue  # a constant
                    if dirs.get(pin) == "output":
                        self.driver[bit] = (name, pin)
                    else:
                        self.loads[bit].append((name, pin))
        for port in module.get("ports", {}).values():
            for bit in port["bits"]:
                if isinstance(bit, str):
                    continue
                if port["direction"] == "output":
                    self.loads[bit].append((None, "port"))
                else:
                    self.driver[bit] = (None, "port")

    def plain_ff(self, name: str | None, clock) -> bool:
        """Whether cell ``name`` is a flip-flop that loads every rising edge of ``clock``."""
        cell = self.cells.get(name) if name is not None else None
        if cell is None or cell["type"] != FF:
            return False
        p = cell["parameters"]
        return (p.get("CEMUX", "").strip() == "1" and p.get("CLKMUX", "CLK") == "CLK"
                and _bits(cell, "LSR") in ([], ["0"]) and _bits(cell, "CLK") == [clock])

    def only_ff_load(self, bit, clock) -> str | None:
        """The flip-flop whose data input is ``bit``'s one load, if it is a plain one."""
        loads = self.loads.get(bit, [])
        if len(loads) == 1 and loads[0][1] == "DI" and self.plain_ff(loads[0][0], clock):
            return loads[0][0]
        return None

    def drop_unloaded(self, names) -> None:
        """Remove those flip-flops of ``names`` whose output no longer has a load."""
        for name in sorted(set(names)):
            (q,) = _bits(self.cells[name], "Q")
            if not self.loads.get(q):
                for bit in _bits(self.cells[name], "DI"):
                    self.loads[bit] = [ld for ld in self.loads[bit] if ld[0] != name]
                del self.cells[name]

    def used_outputs(self, cell: dict, prefix: str, count: int) -> list[str]:
        """The output pins ``prefix0 .. prefix{count-1}`` of ``cell`` whose net has a load."""
        return [pin for pin in _pins(cell, prefix, count)
                if not isinstance(_bits(cell, pin)[0], str) and self.loads.get(_bits(cell, pin)[0])]


def _output_register(net: _Netlist, cell: dict, pins: list[str], clock) -> list[str] | None:
    """The flip-flops that ``pins`` (the used outputs of one register group) each drive alone,
    or None unless every used pin drives one plain flip-flop."""
    ffs = []
    for pin in pins:
        (bit,) = _bits(cell, pin)
        ff = net.only_ff_load(bit, clock) if not isinstance(bit, str) else None
        if ff is None:
            return None
        ffs.append(ff)
    return ffs or None


def _take_outputs(net: _Netlist, cell: dict, pins: list[str], ffs: list[str]) -> None:
    """Each pin drives its flip-flop's output net; the flip-flops go."""
    me = net.names[id(cell)]
    for pin, ff in zip(pins, ffs):
        (q,) = _bits(net.cells[ff], "Q")
        (old,) = _bits(cell, pin)
        cell["connections"][pin] = [q]
        net.driver[q] = (me, pin)
        net.loads.pop(old, None)
        del net.cells[ff]


def _absorb_bram(net: _Netlist, cell: dict) -> int:
    moved = 0
    for port in "AB":
        if cell["parameters"].get(f"REGMODE_{port}", "NOREG") != "NOREG":
            continue
        if _bits(cell, f"OCE{port}") != ["1"] or _bits(cell, f"RST{port}") not in ([], ["0"]):
            continue
        clock = _bits(cell, f"CLK{port}")
        if len(clock) != 1 or isinstance(clock[0], str):
            continue
        pins = net.used_outputs(cell, f"DO{port}", 18)
        ffs = _output_register(net, cell, pins, clock[0])
        if ffs:
            _take_outputs(net, cell, pins, ffs)
            cell["parameters"][f"REGMODE_{port}"] = "OUTREG"
            moved += len(ffs)
    return moved


def _dsp_clock(net: _Netlist, cell: dict):
    """The one clock of the flip-flops around a multiplier (None if there is none or several)."""
    clocks = set()
    for pin, bits in cell["connections"].items():
        if not (pin[0] in "ABP" and pin[1:].isdigit()):
            continue
        nets = [bit for bit in bits if not isinstance(bit, str)]
        if pin[0] == "P":  # the product's loads
            ends = [load[0] for bit in nets for load in net.loads[bit]]
        else:  # the operands' drivers
            ends = [net.driver.get(bit, (None, None))[0] for bit in nets]
        for end in ends:
            if end is not None and net.cells.get(end, {}).get("type") == FF:
                clocks.update(b for b in _bits(net.cells[end], "CLK") if not isinstance(b, str))
    return clocks.pop() if len(clocks) == 1 else None


def _absorb_dsp(net: _Netlist, cell: dict) -> tuple[int, list[str]]:
    """Input and output registers of one multiplier; returns ``(flip-flops moved, flip-flops
    that may have lost their last load)``."""
    p = cell["parameters"]
    if any(p.get(f"REG_{r}_CLK", "NONE") != "NONE"
           for r in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")):
        return 0, []
    if any(not all(isinstance(b, str) for b in _bits(cell, pin))
           for pin in ("SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB")):
        return 0, []
    clock = _dsp_clock(net, cell)
    if clock is None:
        return 0, []
    me = net.names[id(cell)]
    moved, touched, used = 0, [], False
    for operand in "AB":
        pins = list(_pins(cell, operand, 18))
        srcs = {}
        for pin in pins:
            (bit,) = _bits(cell, pin)
            if isinstance(bit, str):
                continue
            drv, drv_pin = net.driver.get(bit, (None, None))
            if drv_pin != "Q" or not net.plain_ff(drv, clock):
                srcs = None
                break
            srcs[pin] = drv
        if not srcs:
            continue
        for pin, ff in srcs.items():
            (q,) = _bits(cell, pin)
            (d,) = _bits(net.cells[ff], "DI")
            net.loads[q].remove((me, pin))
            cell["connections"][pin] = [d]
            if not isinstance(d, str):
                net.loads[d].append((me, pin))
            touched.append(ff)
        p[f"REG_INPUT{operand}_CLK"] = "CLK0"
        moved += len(set(srcs.values()))
        used = True
    outs = net.used_outputs(cell, "P", 36)
    ffs = _output_register(net, cell, outs, clock)
    if ffs:
        _take_outputs(net, cell, outs, ffs)
        p["REG_OUTPUT_CLK"] = "CLK0"
        moved += len(ffs)
        used = True
    if used:
        cell["connections"].update({"CLK0": [clock], "CE0": ["1"], "RST0": ["0"]})
        cell.setdefault("port_directions", {}).update(CLK0="input", CE0="input", RST0="input")
    return moved, touched


def absorb(netlist: dict, top: str) -> dict[str, int]:
    """Move flip-flops into the block RAMs' output registers and the multipliers' input and
    output registers of module ``top`` of a Yosys JSON ``netlist`` (flat, ECP5 cells), in place.
    Returns ``{"bram_output": n, "dsp": n, "flip_flops_removed": n}``: flip-flop bits moved into
    block RAM output registers and into multiplier registers, and the flip-flops gone in all."""
    module = netlist["modules"][top]
    net = _Netlist(module)
    before = sum(c["type"] == FF for c in net.cells.values())
    bram = sum(_absorb_bram(net, c) for c in list(net.cells.values()) if c["type"] == BRAM)
    dsp, touched = 0, []
    for cell in [c for c in net.cells.values() if c["type"] == DSP]:
        n, t = _absorb_dsp(net, cell)
        dsp += n
        touched += t
    net.drop_unloaded(touched)
    after = sum(c["type"] == FF for c in net.cells.values())
    return {"bram_output": bram, "dsp": dsp, "flip_flops_removed": before - after}


def absorb_file(path: Path) -> dict[str, int]:
    """:func:`absorb` on the top module of the Yosys JSON netlist file ``path`` (rewritten)."""
    netlist = json.loads(Path(path).read_text())
    # Yosys writes the top's attribute as a binary string ("000...01")
    (top,) = [name for name, mod in netlist["modules"].items()
              if int(str(mod.get("attributes", {}).get("top", "0")), 2)]
    counts = absorb(netlist, top)
    atomic.write_text(path, json.dumps(netlist))
    return counts
