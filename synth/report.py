"""The human-readable table of a synthesis report (``report.txt`` and the terminal)."""

__all__ = ["smartdeal_text", "text"]

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


def text(report: dict) -> str:
    """The report as a few aligned tables (a SmartDeal design's: :func:`smartdeal_text`; a
    SmartDeal engine's: :func:`.smartdeal_engine.text`)."""
    from . import smartdeal_engine
    if report.get("kind") == smartdeal_engine.REPORT_KIND:
        return smartdeal_engine.text(report)
    if report.get("design", {}).get("method") == "smartdeal":
        return smartdeal_text(report)
    d = report["design"]
    out = _header(report, f"{d['n_pe']} PE x {d['lanes']} lanes")
    if "generic" in report:
        out += _generic(report["generic"]) + [""]
    if "asic" in report:
        a = report["asic"]
        mm2 = _mm2
        wm = a["weight_memory"]
        out += [f"asic (OSU 0.18 um cells, {a['liberty']})",
                f"  logic area        {mm2(a['logic_area_um2'])} ({_num(a['cells_total'])} cells; "
                f"sequential {mm2(a['sequential_area_um2'])})"]
        if "timing" in a:
            t = a["timing"]
            out += [f"  Fmax {t['fmax_mhz']} MHz (OpenSTA, clock {1000 / t['period_ns']:g} MHz: "
                    f"slack {t['worst_slack_ns']} ns)",
                    f"  critical path {t['critical_path_ns']} ns, {t['logic_levels']} logic levels: "
                    f"{t['startpoint']} -> {t['endpoint']}"
                    + (" (through a memory)" if t["through_memory"] else "")]
            if "netlist_area_um2" in t:
                out += [f"  timed netlist     {mm2(t['netlist_area_um2'])} logic "
                        f"({_num(t['netlist_cells'])} cells; mapped flat, buffered across "
                        "modules; the logic area above is the per-module mapping's)"]
        if a["per_pe"]:
            out += [f"    {d['n_pe']} PEs          {mm2(a['pes_area_um2'])} "
                    f"({mm2(a['per_pe']['area_um2'])} each)",
                    f"    shared          {mm2(a['shared_area_um2'])} (controller, reader, "
                    "detector, issuer, bank logic, output reader)"]
        mem = a["memories"]
        out += [f"  memories          {mm2(mem['total']['area_um2'])} for "
                f"{_num(mem['total']['bits'])} bits (weight ROMs {mm2(wm['total']['area_um2'])}); "
                f"{mem['rule']}",
                f"    {'memory':<16} {'width':>6} {'depth':>7} {'inst':>5} {'bits':>11} "
                f"{'model':<14} {'um^2/bit':>8} {'area':>12} {'useful':>7}"]
        out += [f"    {kind:<16} {k['width']:>6} {k['depth']:>7} {k['instances']:>5} "
                f"{_num(k['bits']):>11} {k['model']:<14} {k['um2_per_bit']:>8g} "
                f"{mm2(k['area_um2']):>12} {100 * k['efficiency']:6.1f}%"
                for kind, k in mem["kinds"].items()]
        out += [f"    {m}: {v['um2_per_bit']} um^2/bit ({v['source']})"
                for m, v in mem["models"].items()]
        out += ["    useful = " + "; ".join(f"{kind}: {k['useful']}"
                                         for kind, k in mem["kinds"].items()),
                f"  total             {mm2(a['total_area_um2'])} (logic + memories)"]
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
                f"{sc['logic_area_mm2']} mm^2 logic, {sc['total_area_mm2']} mm^2 with the "
                "memories")
        if "peak_gops" in sc:
            line += (f"; peak {sc['peak_gops']} GOPS at the 0.18 um Fmax {sc['clock_mhz']:g} MHz "
                     f"(OpenSTA; not scaled) = {sc['gops_per_mm2']} GOPS/mm^2 (paper "
                     f"{pp['gops_per_mm2']})")
        out += [line, f"    scaling: {sc['formula']}; {sc['caveat']}"]
        out += [f"  note: {n}" for n in a["notes"]] + [""]
    if "ecp5" in report:
        out += _ecp5(report["ecp5"]) + [""]
    t = report["throughput"]
    line = f"throughput: {t['macs_per_cycle']} MACs per cycle"
    if "ecp5_peak_gops" in t:
        line += f"; peak {t['ecp5_peak_gops']} GOPS at the ECP5 Fmax"
    if "asic_peak_gops" in t:
        line += (f"; peak {t['asic_peak_gops']} GOPS at the ASIC Fmax {t['asic_clock_mhz']:g} MHz "
                 "(OpenSTA)")
    out += [line, "  " + t["formula"], _time(report)]
    return "\n".join(out) + "\n"


def generic_lines(report: dict, key: str, table) -> list[str]:
    """The generic target's lines of ``report`` (none without it), with ``table(figures)`` of
    its ``key`` figures when the report has them (a hierarchical synthesis)."""
    if "generic" not in report:
        return []
    g = report["generic"]
    return [*_generic(g), *(table(g[key]) if g[key] else []), ""]


def _header(report, what):
    d = report["design"]
    how = ("hierarchical: every module synthesized once, totals = sum of instances x module"
           if report["hierarchical"] else "flat: the whole design flattened, then synthesized")
    return [f"design {d['top']}: {what}, layers {', '.join(d['layers'])} ({d['folder']})",
            f"synthesis: {how}", ""]


def _time(report):
    return "time: " + ", ".join(f"{k} {v} s" for k, v in report["seconds"].items())


def _mm2(um2):
    return f"{um2 / 1e6:.3f} mm^2"


def _generic(g):
    return ["generic (Yosys synth, internal gates)",
            f"  cells {_num(g['cells_total'])}, transistors (stat -tech cmos) "
            f"{_num(g['transistors'])}; {g['rom_instances']} ROM instances as black boxes"
            + "".join(f", {n} {m}" for m, n in g.get("ram_instances", {}).items()),
            "  cells by type: " + ", ".join(f"{t} {n}" for t, n in
                                            sorted(g["cells"].items(), key=lambda x: -x[1])),
            *_composition(g["composition"], "transistors", "transistors_each",
                          "transistors_total")]


def _ecp5(e):
    r = e["resources"]
    cp = e["critical_path"]
    out = [f"ecp5 ({e['device']}, {e['package']}, speed {e['speed']}; ROMs from "
           f"{e['rom_contents']})",
           "  cells: " + ", ".join(f"{k} {v}" for k, v in r.items())
           + (f"; {e['luts_placed']} LUT4 slots placed (TRELLIS_COMB)"
              if e.get("luts_placed") is not None else ""),
           f"  Fmax {e['fmax_mhz']} MHz (target {e['target_mhz']:g} MHz)"]
    if cp:
        out.append(f"  critical path {cp['delay_ns']} ns, {cp['steps']} steps: {cp['from']} "
                   f"-> {cp['to']}")
    out += ["  device use: " + ", ".join(f"{b} {u['used']}/{u['available']}"
                                        for b, u in e["utilization"].items())]
    return out


def _layers_table(layers, unit, fmt):
    """A SmartDeal report's per-layer figures: one row a layer, one column a block."""
    blocks = list(dict.fromkeys(b for l in layers for b in l["blocks"]))
    head = f"    {'layer':<10} {'module':<24} {'total':>13}" + "".join(
        f" {b:>12}" for b in blocks)
    rows = [f"    {l['name']:<10} {l['module']:<24} {fmt(l['total']):>13}" + "".join(
        f" {fmt(l['blocks'].get(b, 0)):>12}" for b in blocks) for l in layers]
    return [f"  per layer ({unit}; {OWN_NOTE}):", head, *rows]


#: What a layer's own logic is (the ``own`` column).
OWN_NOTE = "own = the layer unit's fetcher, state and input buffer"


def smartdeal_text(report: dict) -> str:
    """A SmartDeal design's synthesis report as a few aligned tables."""
    d = report["design"]
    out = _header(report, f"SmartDeal, {len(d['layers'])} layer unit(s), {d['lanes']} "
                          "shift-add lanes each")
    out += generic_lines(report, "layers", lambda v: _layers_table(v, "transistors", _num))
    if "asic" in report:
        a = report["asic"]
        rm = a["rom_memory"]
        out += [f"asic (OSU 0.18 um cells, {a['liberty']})",
                f"  logic area        {_mm2(a['logic_area_um2'])} ({_num(a['cells_total'])} cells; "
                f"sequential {_mm2(a['sequential_area_um2'])})",
                f"  ROMs (Ce, B, bias) {_mm2(rm['total']['area_um2'])} for "
                f"{_num(rm['total']['bits'])} bits at {a['sram_model']['um2_per_bit']} um^2/bit "
                f"({a['sram_model']['source']})",
                f"  total             {_mm2(a['total_area_um2'])}"]
        if a["layers"]:
            out += _layers_table(a["layers"], "um^2", _num)
        out += ["  ROM bits per layer: " + "; ".join(
                    f"{l['name']} " + ", ".join(f"{p} {m['depth']} x {m['width']}"
                                                for p, m in l["memories"].items())
                    + f" = {_num(l['bits'])}" for l in rm["layers"]),
                "  input buffers (flip-flops, in the layers' own logic): " + "; ".join(
                    f"{b['name']} {b['memories']} x {b['words']} x {b['width']} = "
                    f"{_num(b['bits'])} bits" for b in a["input_buffer"])]
        out += _composition(a["composition"], "um^2", "area_um2_each", "area_um2_total")
        out += [f"  note: {n}" for n in a["notes"]] + [""]
    if "ecp5" in report:
        e = report["ecp5"]
        out += _ecp5(e)
        if e["layers"]:
            out += [f"  per layer ({OWN_NOTE}; permdeal_rom = the three ROMs):"]
            out += [f"    {l['name']} ({l['module']}): " + ", ".join(
                        f"{k} {v}" for k, v in l["total"].items() if v) + "; " + "; ".join(
                        f"{b} " + " ".join(f"{k} {v}" for k, v in r.items() if v)
                        for b, r in l["blocks"].items()) for l in e["layers"]]
        out += ["  input buffers: Yosys maps them onto LUT RAM or flip-flops (in the layers' "
                "own logic)", ""]
    t = report["throughput"]
    line = f"throughput: {t['cycles_per_input']} cycles per input vector (cycle model)"
    if "ecp5_inputs_per_second" in t:
        line += f"; {t['ecp5_inputs_per_second']:,.0f} inputs/s at the ECP5 Fmax"
    if "asic_inputs_per_second" in t:
        line += (f"; {t['asic_inputs_per_second']:,.0f} inputs/s at the given ASIC clock "
                 f"{t['asic_clock_mhz']:g} MHz")
    out += [line, "  " + t["formula"], _time(report)]
    return "\n".join(out) + "\n"
