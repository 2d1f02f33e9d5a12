"""The demo's report: ``REPORT.md`` and ``report.html`` with PNG plots beside them.

:func:`write_report` renders the demo's figures (the dict ``figures.json`` holds) into a folder.
The Markdown and the HTML come from one list of blocks (headings, text, tables, images), so they
say the same; :func:`summary_rows` is also the table the demo prints. The plots are drawn with
matplotlib's Agg backend, without a timestamp, so the same figures give the same bytes.

The figures it reads (the demo's, ``permdeal/api/demo.py``): ``sizes``, ``p``, ``seed``, ``engine``
(``n_pe``, ``lanes``, ``scan_width``), the accuracies ``float_dense_accuracy``,
``float_pd_accuracy`` and ``golden_fixed_accuracy``, ``compression_ratio``,
``weight_storage_bits`` (``dense_16bit``, ``permdiag``), ``cycles_per_image``,
``lane_utilization``, ``rom_images``, ``rtl`` (the RTL run, or ``{"skipped": why}``), and where
present ``synth``, ``smartdeal``, ``accuracy_vs_p`` (rows ``p``, ``weights``, ``storage_bits``,
``float``, ``fixed``), ``cycles_vs_pes`` (rows ``pes``, ``lanes``, ``cycles``,
``compute_cycles``, ``utilization``) and ``layer_utilization`` (rows ``layer``, ``shape``, ``p``,
``slots``, ``nnz``, ``utilization``).
"""

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from permdeal import atomic

REPORT_MD, REPORT_HTML = "REPORT.md", "report.html"
#: The plots: figures key -> (file, title).
PLOTS = {
    "accuracy_vs_p": ("accuracy_vs_p.png", "Accuracy against block size p and weight storage"),
    "cycles_vs_pes": ("cycles_vs_pes.png", "Cycles per image against PE count"),
    "layer_utilization": ("lane_utilization.png", "Lane utilization per layer"),
}


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


# -- the figures table ----------------------------------------------------------------------

def _rtl_value(rtl):
    if "accuracy" not in rtl:
        return f"skipped: {rtl.get('skipped', 'not run')}"
    return (f"{_pct(rtl['accuracy'])}; {rtl['images_equal_to_golden']} of {rtl['images']} "
            f"images equal to golden, output for output; cycles equal to the cycle model: "
            f"{'yes' if rtl['cycles_match_model'] else 'NO'}")


def _synth_rows(syn):
    if syn is None:
        return [["synthesis (area, Fmax)", "not run (--no-synth)"]]
    if "skipped" in syn:
        return [["synthesis (area, Fmax)", f"skipped: {syn['skipped']}"]]
    r = syn["ecp5_resources"]
    return [["ASIC logic area (OSU 0.18 um)", f"{syn['asic_logic_mm2']:.3f} mm^2 (+ "
             f"{syn['asic_weight_memory_mm2']:.3f} mm^2 of weight SRAM, modelled)"],
            [f"ECP5 {syn['ecp5_device']}", f"{r['LUT4']} LUT4, {r['FF']} FF, {r['MULT18X18D']} "
             f"MULT18X18D, {r['DP16KD']} DP16KD"],
            ["ECP5 Fmax (nextpnr)", f"{syn['ecp5_fmax_mhz']:.1f} MHz, peak "
             f"{syn['ecp5_peak_gops']:.2f} GOPS"]]


def _engine_cycles(sd):
    """The SmartDeal engine's cycles per image beside the PD engine's (the cycle model's)."""
    e = sd["engine"]
    out = (f"{e['cycles_per_image']:.1f} ({e['vs_pd']:.2f}x the PD engine's "
           f"{e['pd_cycles_per_image']:.1f}); MAC-lane utilization {_pct(e['utilization'])}")
    if "batch" in e:
        b = e["batch"]
        out += (f"; at batch {b['batch']}: {b['cycles_per_image']:.1f}, "
                f"{_pct(b['utilization'])}")
    return out


def _sd_label(sd):
    """``SmartDeal`` with its pruning, when it has one."""
    if sd.get("prune"):
        return (f"SmartDeal ({100 * sd['prune']:.0f}% of Ce rows pruned in groups of "
                f"{sd['prune_group']}, fine-tuned)")
    return "SmartDeal"


def _smartdeal_rows(sd):
    if sd is None:
        return []
    if "skipped" in sd:
        return [["SmartDeal", f"skipped: {sd['skipped']}"]]
    bits, rtl = sd["storage_bits"], sd["rtl"]
    rows = [[f"golden fixed-point accuracy, {_sd_label(sd)}", _pct(sd["golden_fixed_accuracy"])],
            ["weight storage, SmartDeal (Ce + B codes)",
             f"{bits['smartdeal']} bits ({bits['dense_16bit'] / bits['smartdeal']:.2f}x "
             f"smaller than dense)"],
            ["SmartDeal engine RTL" + (f" ({rtl['sim']}, {rtl['images']} test images)"
                                       if "images" in rtl else ""), _rtl_value(rtl)]]
    if "engine" in sd:
        e = sd["engine"]
        rows.append([f"SmartDeal engine cycles per image ({e['pes']} PE x {e['lanes_per_pe']} "
                     f"lanes = {e['lanes']} MAC lanes)", _engine_cycles(sd)])
    if "units_cycles_per_image" in sd:
        rows.append(["SmartDeal layer-unit chain, cycles per image (cycle model)",
                     str(sd["units_cycles_per_image"])])
    return rows


def summary_rows(figures: dict[str, Any]) -> list[list[str]]:
    """The demo's headline figures as ``[figure, value]`` rows (printed and reported)."""
    f = figures
    e = f["engine"]
    bits = f["weight_storage_bits"]
    rtl = f["rtl"]
    return [
        ["float accuracy, dense", _pct(f["float_dense_accuracy"])],
        [f"float accuracy, permuted-diagonal p={f['p']}", _pct(f["float_pd_accuracy"])],
        ["golden fixed-point accuracy (16-bit), PD", _pct(f["golden_fixed_accuracy"])],
        ["RTL accuracy" + (f" ({rtl['sim']})" if "sim" in rtl else ""), _rtl_value(rtl)],
        ["compression ratio (weights), PD", f"{f['compression_ratio']:.2f}x"],
        ["weight storage, dense 16-bit -> PD",
         f"{bits['dense_16bit']} -> {bits['permdiag']} bits"],
        *_smartdeal_rows(f.get("smartdeal")),
        [f"cycles per image ({e['n_pe']} PE x {e['lanes']} lanes)",
         f"{f['cycles_per_image']:.1f}"],
        ["lane utilization (compute phase)", _pct(f["lane_utilization"])],
        ["ROM images", f"{f['rom_images']} (read back and verified)"],
        *_synth_rows(f.get("synth")),
    ]


# -- plots ----------------------------------------------------------------------------------

def _png(fig):
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _log2_axis(ax, values):
    ax.set_xscale("log", base=2)
    ax.set_xticks(values)
    ax.set_xticklabels([str(v) for v in values])
    ax.grid(True, alpha=0.3)


def _plot_accuracy(f, plt):
    rows = f["accuracy_vs_p"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ps = [r["p"] for r in rows]
    ax1.axhline(100 * f["float_dense_accuracy"], color="tab:gray", ls="--", label="dense, float")
    ax1.plot(ps, [100 * r["float"] for r in rows], marker="o", ms=9, mfc="none", lw=2.5,
             alpha=0.6, label="PD, float (fine-tuned)")
    ax1.plot(ps, [100 * r["fixed"] for r in rows], marker="s", ms=4, ls="--",
             label="PD, golden 16-bit fixed")
    sd = f.get("smartdeal")
    has_sd = sd is not None and "golden_fixed_accuracy" in sd
    if has_sd:
        ax1.axhline(100 * sd["golden_fixed_accuracy"], color="tab:green", ls=":",
                    label="SmartDeal, golden fixed")
    _log2_axis(ax1, ps)
    ax1.set_xlabel("block size p (1 = dense)")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("accuracy against p")
    ax1.legend(fontsize=8, loc="lower left")
    kb = [r["storage_bits"] / 1000 for r in rows]
    ax2.plot(kb, [100 * r["fixed"] for r in rows], marker="s", color="tab:orange",
             label="PD (dense at p=1), golden fixed")
    for r, x in zip(rows, kb):
        ax2.annotate(f"p={r['p']}", (x, 100 * r["fixed"]), textcoords="offset points",
                     xytext=(4, 4), fontsize=8)
    if has_sd:
        ax2.plot([sd["storage_bits"]["smartdeal"] / 1000], [100 * sd["golden_fixed_accuracy"]],
                 marker="D", ls="none", color="tab:green", label="SmartDeal, golden fixed")
    ax2.margins(x=0.12, y=0.1)
    ax2.grid(True, alpha=0.3)
    ax2.set_xlabel("weight storage (kbit)")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("accuracy against storage")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def _plot_cycles(f, plt):
    rows = f["cycles_vs_pes"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    pes = [r["pes"] for r in rows]
    ax1.plot(pes, [r["cycles"] for r in rows], marker="o", label="whole inference")
    ax1.plot(pes, [r["compute_cycles"] for r in rows], marker="s", label="compute phase")
    ax1.set_ylim(bottom=0)
    _log2_axis(ax1, pes)
    ax1.axvline(f["engine"]["n_pe"], color="tab:gray", ls=":", label="the demo's design")
    ax1.set_xlabel(f"PEs ({rows[0]['lanes']} lanes each)")
    ax1.set_ylabel("cycles per image (mean, cycle model)")
    ax1.set_title("cycles against PE count")
    ax1.legend(fontsize=8)
    ax2.plot(pes, [100 * r["utilization"] for r in rows], marker="o", color="tab:purple")
    _log2_axis(ax2, pes)
    ax2.set_ylim(0, 100)
    ax2.set_xlabel(f"PEs ({rows[0]['lanes']} lanes each)")
    ax2.set_ylabel("lane utilization, compute phase (%)")
    ax2.set_title("lane utilization against PE count")
    fig.tight_layout()
    return _png(fig)


def _plot_layers(f, plt):
    rows = f["layer_utilization"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    labels = [f"{r['layer']}\n{r['shape']}\np={r['p']}, B={r['slots']}" for r in rows]
    bars = ax.bar(range(len(rows)), [100 * r["utilization"] for r in rows], color="tab:blue")
    for b, r in zip(bars, rows):
        ax.annotate(_pct(r["utilization"]), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("lane utilization (%)")
    e = f["engine"]
    ax.set_title(f"per layer, {e['n_pe']} PE x {e['lanes']} lanes (mean over the test set)",
                 fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


_DRAW = {"accuracy_vs_p": _plot_accuracy, "cycles_vs_pes": _plot_cycles,
         "layer_utilization": _plot_layers}


# -- the document ---------------------------------------------------------------------------

def _blocks(f, plots):
    """The report as blocks: ``("h1"|"h2"|"p", text)``, ``("table", headers, rows)``,
    ``("img", file, alt)``."""
    e = f["engine"]
    sim = f["rtl"].get("sim")
    out = [("h1", "permdeal demo report"),
           ("p", f"A {'-'.join(map(str, f['sizes']))} MLP trained on scikit-learn's handwritten "
                 f"digits (seed {f['seed']}), projected to permuted-diagonal form with p = "
                 f"{f['p']} and fine-tuned, quantized to 16-bit fixed point, and run on a "
                 f"generated engine of {e['n_pe']} PE x {e['lanes']} lanes (scan width "
                 f"{e['scan_width']})" + (f", simulated on {sim}" if sim else "") + "."),
           ("h2", "Figures"),
           ("table", ["figure", "value"], summary_rows(f))]
    if "accuracy_vs_p" in f:
        out += [("h2", PLOTS["accuracy_vs_p"][1]),
                ("p", "Each p: the dense model projected to block size p (every layer) and "
                      "fine-tuned; golden fixed point is the bit-exact 16-bit model the RTL "
                      "computes. Storage counts 16-bit weights and the ceil(log2 p)-bit index "
                      "of every block.")]
        if "accuracy_vs_p" in plots:
            out.append(("img", plots["accuracy_vs_p"], "accuracy against p and storage"))
        out.append(("table", ["p", "stored weights", "storage (bits)", "float", "golden fixed"],
                    [[r["p"], r["weights"], r["storage_bits"], _pct(r["float"]),
                      _pct(r["fixed"])] for r in f["accuracy_vs_p"]]))
    sd = f.get("smartdeal")
    if sd is not None and "golden_fixed_accuracy" in sd:
        c = sd["config"]
        bits = sd["storage_bits"]
        out += [("h2", "SmartDeal beside permuted-diagonal"),
                ("p", f"The same dense model compressed with SmartDeal (W ~ Ce @ B, S = {c['S']}, "
                      f"E = {c['E']} exponent bits, {c['b_bits']}-bit B"
                      + (f"; {100 * sd['prune']:.0f}% of the Ce rows pruned in groups of "
                         f"{sd['prune_group']} outputs, whole tiles of the engine, and "
                         f"fine-tuned {sd['finetune_epochs']} epochs with the structure kept"
                         if sd.get("prune") else "")
                      + f"): its golden fixed-point accuracy and weight storage ({c['E'] + 2}-bit "
                      "Ce codes and B codes) against PD's."),
                ("table", ["model", "golden fixed accuracy", "weight storage (bits)",
                           "vs dense"],
                 [["dense 16-bit", _pct(f["accuracy_vs_p"][0]["fixed"])
                   if f.get("accuracy_vs_p") else "-", bits["dense_16bit"], "1.00x"],
                  [f"permuted-diagonal p={f['p']}", _pct(f["golden_fixed_accuracy"]),
                   bits["permdiag"], f"{bits['dense_16bit'] / bits['permdiag']:.2f}x"],
                  ["SmartDeal", _pct(sd["golden_fixed_accuracy"]), bits["smartdeal"],
                   f"{bits['dense_16bit'] / bits['smartdeal']:.2f}x"]]),
                ("table", ["layer", "rel. error (quantized)", "Ce density"],
                 [[r["layer"], f"{r['rel_error_quantized']:.4f}", _pct(r["ce_density"])]
                  for r in sd["layers"]]),
                ("p", "The SmartDeal engine (docs/design.md 11.1: MAC lanes with a rebuild "
                      "engine each, zero inputs and pruned chunks skipped) at the PD engine's "
                      "multiplier budget, in RTL" + (f" on all {sd['rtl']['images']} test images"
                                                     if "images" in sd["rtl"] else "") + ": "
                 + _rtl_value(sd["rtl"])
                 + (f". Cycles per image (cycle model, equal to the RTL's): {_engine_cycles(sd)}"
                    if "engine" in sd else "")
                 + (f". The layer-unit chain (one bit-serial shift-add unit per layer) would take "
                    f"{sd['units_cycles_per_image']} cycles per image"
                    if "units_cycles_per_image" in sd else "") + ".")]
    if "cycles_vs_pes" in f:
        out += [("h2", PLOTS["cycles_vs_pes"][1]),
                ("p", f"The cycle model (exact for the RTL, checked by the simulation above) over "
                      f"the test set for each PE count at {e['lanes']} lanes per PE.")]
        if "cycles_vs_pes" in plots:
            out.append(("img", plots["cycles_vs_pes"], "cycles against PE count"))
        out.append(("table", ["PEs", "total lanes", "cycles per image", "compute cycles",
                              "utilization"],
                    [[r["pes"], r["pes"] * r["lanes"], f"{r['cycles']:.1f}",
                      f"{r['compute_cycles']:.1f}", _pct(r["utilization"])]
                     for r in f["cycles_vs_pes"]]))
    if "layer_utilization" in f:
        out += [("h2", PLOTS["layer_utilization"][1]),
                ("p", "Multiplies on real block-rows over all lane-cycles of each layer; B is "
                      "the block-rows per lane, i.e. cycles per non-zero input.")]
        if "layer_utilization" in plots:
            out.append(("img", plots["layer_utilization"], "lane utilization per layer"))
        out.append(("table", ["layer", "in -> out", "p", "B", "nnz(x)", "utilization"],
                    [[r["layer"], r["shape"], r["p"], r["slots"], f"{r['nnz']:.1f}",
                      _pct(r["utilization"])] for r in f["layer_utilization"]]))
    return out


def _md_cell(v):
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown(blocks: Sequence[tuple[Any, ...]]) -> str:
    """The blocks as Markdown."""
    lines = []
    for b in blocks:
        if b[0] == "h1":
            lines += [f"# {b[1]}", ""]
        elif b[0] == "h2":
            lines += [f"## {b[1]}", ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1]})", ""]
        else:
            _, headers, rows = b
            lines.append("| " + " | ".join(map(_md_cell, headers)) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            lines.append("")
    return "\n".join(lines)


def html_page(blocks: Sequence[tuple[Any, ...]]) -> str:
    """The blocks as one self-standing HTML page (the images beside it)."""
    e = html.escape
    body = []
    for b in blocks:
        if b[0] in ("h1", "h2", "p"):
            body.append(f"<{b[0]}>{e(b[1])}</{b[0]}>")
        elif b[0] == "img":
            body.append(f'<p><img src="{e(b[1])}" alt="{e(b[2])}"></p>')
        else:
            _, headers, rows = b
            body.append("<table>\n<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in headers)
                        + "</tr>\n" + "\n".join("<tr>" + "".join(f"<td>{e(str(c))}</td>"
                                                                 for c in r) + "</tr>"
                                                for r in rows) + "\n</table>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:.25em .6em;text-align:left}th{background:#f3f3f3}img{max-width:100%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>permdeal demo "
            f"report</title><style>{style}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_report(folder: str | Path, figures: dict[str, Any]) -> list[str]:
    """Write ``REPORT.md``, ``report.html`` and the plots of ``figures`` into ``folder`` (which
    must exist), each file atomically. Returns the names written, the report first."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder = Path(folder)
    plots = {}
    with matplotlib.rc_context({"font.size": 9}):
        for key, (name, _) in PLOTS.items():
            if key in figures and figures[key]:
                atomic.write_bytes(folder / name, _DRAW[key](figures, plt))
                plots[key] = name
    blocks = _blocks(figures, plots)
    atomic.write_text(folder / REPORT_MD, markdown(blocks))
    atomic.write_text(folder / REPORT_HTML, html_page(blocks))
    return [REPORT_MD, REPORT_HTML, *plots.values()]
