"""The printed tables of ``permdeal bench`` (:mod:`.bench`'s results dict)."""

from typing import Any

from permdeal.golden.workloads import EIE
from permdeal.tables import table


def rtl_exact(row: dict[str, Any], sim: str) -> bool:
    """Whether a layer's RTL run on ``sim`` equals the models: every input's cycles equal to
    the cycle model's and every input's outputs equal to the golden model's."""
    s = row["sims"][sim]
    return s["cycles_match_model"] and s["golden_match"] and all(s["images_equal"])


def _kb(bits):
    return f"{bits / 8192:,.0f}"


def eie_tables(res: dict[str, Any]) -> str:
    """The ``eie`` part as text: timing, then utilization and storage, then the notes."""
    d = res["design"]
    head = (f"EIE's layers on the paper's design: {d['n_pe']} PE x {d['lanes']} lanes at "
            f"{d['clock_mhz']} MHz, cycle model, {res['draws']} random activation draws per layer "
            f"(seed {res['seed']}); EIE: {EIE['n_pe']} PEs at {EIE['clock_mhz']} MHz, actual "
            f"times from {EIE['source']}")
    ck, ek = d["clock_mhz"], EIE["clock_mhz"]
    rows = [[r["name"], f"{r['in']} x {r['out']}", r["p"],
             f"{100 * r['weight_density']:.1f}% / {100 * r['eie_weight_density']:g}%",
             f"{100 * r['act_density']:g}%",
             f"{r['cycles_mean']:.0f} +- {r['cycles_std']:.0f}", f"{r['us']:.2f}",
             f"{r['us_at_eie_clock']:.2f}", f"{r['eie_actual_us']:.1f}",
             f"{r['speedup']:.2f}x", f"{r['speedup_at_eie_clock']:.2f}x",
             f"{r['speedup_per_multiplier']:.2f}x"] for r in res["layers"]]
    t1 = table(["layer", "in x out", "p", "W dens PD / EIE", "x dens", "cycles (mean +- sd)",
                f"us @{ck}", f"us @{ek}", "EIE us", f"speed-up @{ck}", f"speed-up @{ek}",
                f"@{ek} per multiplier"], rows)
    rows = []
    for r in res["layers"]:
        em, es, ours = r["eie_model"], r["eie_storage_bits"], r["storage_bits"]["total_bits"]
        rows.append([r["name"], r["input_from"], r["block_rows"], r.get("groups", 1), r["slots"],
                     f"{100 * r['static_bound']:.1f}%", f"{100 * r['utilization']:.1f}%",
                     f"{100 * r['ideal_over_actual']:.1f}%",
                     f"{100 * r['eie_ideal_over_actual']:.1f}%",
                     "-" if em is None else f"{100 * em['ideal_over_actual']:.1f}%",
                     _kb(ours), "-" if es is None else _kb(es["total_bits"]),
                     "-" if es is None else f"{ours / es['total_bits']:.2f}"])
    t2 = table(["layer", "input from", "M'", "K", "B", "M'/(G*B)", "util", "ideal/actual",
                "EIE ideal/actual", "EIE model ideal/actual", "PD KB", "EIE KB", "PD/EIE"],
               rows)
    lo, hi = res["paper_claim"]
    notes = [
        f"geometric-mean speed-up: {res['geomean_speedup']:.2f}x at {ck} MHz, "
        f"{res['geomean_speedup_at_eie_clock']:.2f}x at {ek} MHz (the paper claims "
        f"{lo}-{hi}x); per layer {min(r['speedup'] for r in res['layers']):.2f}-"
        f"{max(r['speedup'] for r in res['layers']):.2f}x and "
        f"{min(r['speedup_at_eie_clock'] for r in res['layers']):.2f}-"
        f"{max(r['speedup_at_eie_clock'] for r in res['layers']):.2f}x; at equal clock and equal "
        f"multiplier count (ours times {EIE['n_pe']}/{d['n_pe'] * d['lanes']}) "
        f"{res['geomean_speedup_per_multiplier']:.2f}x",
        f"{res['block_size_rule']}. Cycles: the layer's compute on the engine (start to the "
        "next layer's start: issue and write-back), activations already in the banks, as EIE "
        "counts; a layer fed by the previous one reads them in its blocks ('input from').",
        "PD timing depends only on which inputs are non-zero, M', p and the engine (every "
        "non-zero input costs B cycles whatever the weights), so no weights are drawn.",
        f"{d['n_pe'] * d['lanes']} multipliers here against EIE's {EIE['n_pe']}: the speed-up "
        "at equal clock is what the structure buys, at the paper's clock what the design does.",
        f"K: lane groups ({d.get('groups', 1)}: docs/design.md 4.2), each of G = NL/K lanes "
        "holding every block-row for every K-th input block, B = ceil(M'/G) slots; K non-zero "
        "inputs issued per cycle, the groups' sums added while draining.",
        "util: multiplies on real block-rows over lane-cycles; ideal/actual: nnz*B/K over cycles; "
        "EIE ideal/actual: its published times; EIE model: golden/eie_cycles.py on a random "
        "layer of the same shape and densities.",
        "PD KB: M'N'p 16-bit weights (padding included) + ceil(log2 p) bits per block; EIE KB: "
        "interleaved CSC of a random layer, 4-bit codebook index + 4-bit relative index per "
        "entry (padding entries included), column pointers, codebook (golden/eie.py).",
    ]
    if any(r["eie_model"] is None or r["eie_storage_bits"] is None for r in res["layers"]):
        notes.append("'-': golden/eie.py or golden/eie_cycles.py is not there (or --eie-draws "
                     "0); eie_storage and eie_model are the hooks that fill these columns.")
    return "\n".join([head, t1, "", t2, *notes])


# -- part 2: validation by RTL --------------------------------------------------------------------

def rtl_tables(res: dict[str, Any]) -> str:
    """The ``rtl`` part as text."""
    c = res["engine"]
    head = (f"validation by RTL: each layer's sides divided by {res['scale']} (rounded up), p and "
            f"densities kept, random weights, {res['inputs']} random inputs; engine {c['n_pe']} "
            f"PE x {c['lanes']} lanes ({res['engine_rule']})")
    rows = []
    for r in res["layers"]:
        for sim, s in r["sims"].items():
            rows.append([r["name"], f"{r['in']} x {r['out']}", r["p"], r.get("groups", 1),
                         f"{r['slots_full']} / {r['slots']}", sim,
                         " ".join(map(str, s["cycles"])), " ".join(map(str, s["model_cycles"])),
                         " ".join(map(str, r["layer_cycles"])),
                         "equal" if s["cycles_match_model"] else "DIFFERENT",
                         f"{sum(s['images_equal'])} of {len(s['images_equal'])}",
                         f"{r['gen_seconds']:.1f}", f"{s['build_seconds']:.1f}",
                         f"{s['simulated_cycles_per_second'] or 0:,.0f}"])
    t = table(["layer", "in x out", "p", "K", "B full / here", "sim", "RTL cycles", "model cycles",
               "of which layer", "cycles", "outputs = golden", "gen s", "build s", "cycles/s"],
              rows)
    n_ok = sum(rtl_exact(r, sim) for r in res["layers"] for sim in r["sims"])
    n_all = sum(len(r["sims"]) for r in res["layers"])
    foot = (f"{n_ok} of {n_all} runs exact (cycles and outputs of every input). Cycles are the "
            "whole inference: loading n inputs, the layer, streaming m outputs.")
    return "\n".join([head, t, foot])


# -- part 3: energy and area efficiency ----------------------------------------------------------

def power_tables(res: dict[str, Any]) -> str:
    """The ``power`` part as text: ours and EIE's efficiency per layer, the ratios beside the
    paper's claims, and the scaling rules."""
    c = res["engine"]
    head = (f"area and energy efficiency against EIE: each layer measured at 1/{res['scale']} "
            f"scale on {c['n_pe']} PE x {c['lanes']} lanes ({res['inputs']} random inputs, "
            "permdeal power: OSU 0.18 um, activity from the RTL) and carried over to the full "
            "layer on 32 PE x 8 lanes; EIE: 64 PEs, 45 nm, "
            f"{res['eie']['clock_mhz']:g} MHz, {res['eie']['area_mm2']} mm^2, "
            f"{res['eie']['power_w']} W")
    rows = [[r["name"], f"{r['area_mm2_0p18um']:.1f}", f"{r['area_mm2_45nm']:.2f}",
             f"{r['energy_pj_0p18um'] / 1e6:.2f}", f"{r['energy_pj_45nm'] / 1e6:.3f}",
             f"{r['gops_per_mm2']:.1f}", f"{r['eie_gops_per_mm2']:.1f}",
             f"{r['area_efficiency_vs_eie']:.2f}x", f"{r['gops_per_w']:,.0f}",
             f"{r['eie_gops_per_w']:,.0f}", f"{r['energy_efficiency_vs_eie']:.2f}x",
             "yes" if r["reduced_golden_match"] else "NO"] for r in res["layers"]]
    t = table(["layer", "mm^2 0.18um", "mm^2 45nm", "uJ 0.18um", "uJ 45nm", "GOPS/mm^2",
               "EIE", "area eff.", "GOPS/W", "EIE", "energy eff.", "RTL exact"], rows)
    a, e = res["paper_claims"]["area_efficiency"], res["paper_claims"]["energy_efficiency"]
    notes = [f"geometric mean against EIE: area efficiency "
             f"{res['geomean_area_efficiency_vs_eie']:.2f}x (the paper claims {a[0]}-{a[1]}x), "
             f"energy efficiency {res['geomean_energy_efficiency_vs_eie']:.2f}x (the paper "
             f"claims {e[0]}-{e[1]}x)",
             *[f"{k}: {v}" for k, v in res["rules"].items()]]
    return "\n".join([head, t, *notes])


# -- the command ----------------------------------------------------------------------------------

def bench_table(results: dict[str, Any]) -> str:
    layer = results["layer"]
    ms = lambda v: f"{1e3 * v:.0f} ms"
    head = (f"golden model on a {layer['n']} in x {layer['m']} out {layer['dtype']} layer, "
            f"input density {100 * layer['input_density']:.1f}%, best of {results['repeat']}")
    rows = [[r["p"], r["stored_weights"], ms(r["project_s"]), ms(r["matvec_s"]),
             ms(r["int_matvec_s"]), ms(r["project_and_matvec_s"])] for r in results["rows"]]
    return "\n".join([head, table(["p", "stored weights", "project", "float matvec",
                                   "int matvec", "project + matvec"], rows, "rrrrrr")])
