"""The human-readable table of a synthesis report (``report.txt`` and the terminal)."""

__all__ = ["text"]

#: Modules shown in a composition table before "... and N more".
TOP_ROWS = 12


def _num(v, digits=0):
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def _composition(rows, unit, each_key, total_key, fmt=lambda v: _num(v)):
    lines = [f"    {'module':<44} {'inst':>5} {unit + ' each':>14} {unit + ' total':>15}"]
    for r in rows[:TOP_ROWS]:
        lines.append(f"    {r['module']:<44} {r['instances']:>5} {fmt(r[each_key]):>14} "
                     f"{fmt(r[total_key]):>15}")
    if len(rows) > TOP_ROWS:
        lines.append(f"    ... and {len(rows) - TOP_ROWS} more modules (report.json)")
    return lines


def text(report):
    """The report as a few aligned tables."""
    d = report["design"]
    how = ("hierarchical: every module synthesized once, totals = sum of instances x module"
           if report["hierarchical"] else "flat: the whole design flattened, then synthesized")
    out = [f"design {d['top']}: {d['n_pe']} PE x {d['lanes']} lanes, layers "
           f"{', '.join(d['layers'])} ({d['folder']})", f"synthesis: {how}", ""]
    if "generic" in report:
        g = report["generic"]
        out += ["generic (Yosys synth, internal gates)",
                f"  cells {_num(g['cells_total'])}, transistors (stat -tech cmos) "
                f"{_num(g['transistors'])}; {g['rom_instances']} ROM instances as black boxes",
                "  cells by type: " + ", ".join(f"{t} {n}" for t, n in
                                                sorted(g["cells"].items(), key=lambda x: -x[1])),
                *_composition(g["composition"], "transistors", "transistors_each",
                              "transistors_total"), ""]
    if "asic" in report:
        a = report["asic"]
        mm2 = lambda um2: f"{um2 / 1e6:.3f} mm^2"
        wm = a["weight_memory"]
        out += [f"asic (OSU 0.18 um cells, {a['liberty']})",
                f"  logic area        {mm2(a['logic_area_um2'])} ({_num(a['cells_total'])} cells; "
                f"sequential {mm2(a['sequential_area_um2'])})"]
        if a["per_pe"]:
            out += [f"    {d['n_pe']} PEs          {mm2(a['pes_area_um2'])} "
                    f"({mm2(a['per_pe']['area_um2'])} each)",
                    f"    shared          {mm2(a['shared_area_um2'])} (controller, reader, "
                    "detector, issuer, banks, output reader)"]
        out += [f"  weight memories   {mm2(wm['total']['area_um2'])} for "
                f"{_num(wm['total']['bits'])} bits at {a['sram_model']['um2_per_bit']} um^2/bit "
                f"({a['sram_model']['source']})",
                f"  total             {mm2(a['total_area_um2'])}"]
        if a["per_pe"]:
            per = a["per_pe"]["breakdown_um2"]
            total = sum(per.values()) or 1.0
            out += ["  one PE by function (um^2):"]
            out += [f"    {k:<16} {_num(v):>12} {100 * v / total:5.1f}%" for k, v in per.items()]
        out += _composition(a["composition"], "um^2", "area_um2_each", "area_um2_total")
        c = a["paper_comparison"]
        sc, pp = c["scaled"], c["paper"]
        line = (f"  next to the paper ({pp['design']}: {pp['area_mm2']} mm^2, {pp['peak_gops']} "
                f"GOPS at {pp['clock_mhz']} MHz): this design scaled to {pp['node_nm']} nm is "
                f"{sc['logic_area_mm2']} mm^2 logic, {sc['total_area_mm2']} mm^2 with weight "
                "memories")
        if "peak_gops" in sc:
            line += (f"; peak {sc['peak_gops']} GOPS at the given {sc['clock_mhz']:g} MHz (a clock "
                     f"you chose, not a timing result) = {sc['gops_per_mm2']} GOPS/mm^2 (paper "
                     f"{pp['gops_per_mm2']})")
        out += [line, f"    scaling: {sc['formula']}; {sc['caveat']}"]
        out += [f"  note: {n}" for n in a["notes"]] + [""]
    if "ecp5" in report:
        e = report["ecp5"]
        r = e["resources"]
        cp = e["critical_path"]
        out += [f"ecp5 ({e['device']}, {e['package']}, speed {e['speed']}; ROMs from "
                f"{e['rom_contents']})",
                "  cells: " + ", ".join(f"{k} {v}" for k, v in r.items())
                + (f"; {e['luts_placed']} LUT4 slots placed (TRELLIS_COMB)"
                   if e.get("luts_placed") is not None else ""),
                f"  Fmax {e['fmax_mhz']} MHz (target {e['target_mhz']:g} MHz)"]
        if cp:
            out.append(f"  critical path {cp['delay_ns']} ns, {cp['steps']} steps: {cp['from']} "
                       f"-> {cp['to']}")
        out += ["  device use: " + ", ".join(f"{b} {u['used']}/{u['available']}"
                                            for b, u in e["utilization"].items()), ""]
    t = report["throughput"]
    line = f"throughput: {t['macs_per_cycle']} MACs per cycle"
    if "ecp5_peak_gops" in t:
        line += f"; peak {t['ecp5_peak_gops']} GOPS at the ECP5 Fmax"
    if "asic_peak_gops" in t:
        line += f"; peak {t['asic_peak_gops']} GOPS at the given ASIC clock {t['asic_clock_mhz']:g} MHz"
    out += [line, "  " + t["formula"],
            "time: " + ", ".join(f"{k} {v} s" for k, v in report["seconds"].items())]
    return "\n".join(out) + "\n"
