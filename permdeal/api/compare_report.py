"""The printed and plotted report of ``permdeal compare`` (:mod:`.compare`'s results dict)."""

import io
from typing import Any

import numpy as np

from permdeal import methods
from permdeal.tables import pct, table

def _n(v):
    return "-" if v is None else f"{v:,.0f}"


def text(res: dict[str, Any]) -> str:
    """The printed report: the per-layer table (when there are several layers), the totals, the
    counting rules."""
    st = res["settings"]
    e, x = st["engine"], st["xbar"]
    lines = [f"permdeal compare: {res['workload']['title']}",
             f"budget: {e['n_pe']} PE x {e['lanes']} lanes = {st['multipliers']} multipliers "
             f"(EIE: {st['multipliers']} PEs, FIFO depth {st['fifo_depth']}); crossbars "
             f"{x['rows']}x{x['cols']}, {x['cell_bits']}-bit cells, {x['dac_bits']}-bit DAC, "
             f"{x['adc_bits']}-bit ADC, {x['weight_bits']}-bit weights, {x['input_bits']}-bit "
             "inputs"]
    fmts = res["formats"]
    n_layers = len(fmts[0]["layers"])
    if n_layers > 1:
        rows = []
        for i in range(n_layers):
            for f in fmts:
                l = f["layers"][i]
                rows.append([l["layer"], f"{l['shape'][1]} x {l['shape'][0]}", f["label"],
                             pct(l["input_density"]), _n(l["storage_bits"]),
                             _n(l["index_bits"]), _n(l["multiplies"]), _n(l["cycles"]),
                             _n(l.get("crossbars"))])
        lines += ["", "per layer", table(["layer", "in x out", "format", "x density",
                                          "storage bits", "index bits", "multiplies", "cycles",
                                          "crossbars"], rows, "lllrrrrrr")]
    dense_bits = fmts[0]["total"]["storage_bits"]
    rows = []
    has_acc = any(f["accuracy"] for f in fmts)
    for f in fmts:
        t = f["total"]
        row = [f["label"], f["setting"], _n(t["storage_bits"]),
               f"{dense_bits / t['storage_bits']:.2f}x", _n(t["index_bits"]),
               _n(t["multiplies"]), _n(t["cycles"]), _n(t["crossbars"]),
               pct(t["crossbar_utilization"]), _n(t["crossbar_reads"])]
        if has_acc:
            a = f["accuracy"]
            row.append("-" if not a else pct(a["float"]) + (
                "" if a.get("finetuned", True) else " (not fine-tuned)"))
        rows.append(row)
    head = ["format", "setting", "storage bits", "vs dense", "index bits", "multiplies",
            "cycles", "crossbars", "xbar util", "xbar reads"] + (["accuracy"] if has_acc else [])
    lines += ["", f"total over {n_layers} layer(s), per inference",
              table(head, rows, "ll" + "r" * (len(head) - 2))]
    if has_acc:
        lines.append(_accuracy_note(fmts, res["settings"]["finetune_epochs"] > 0))
    lines += _energy(res)
    lines += ["", "how each figure is counted:"]
    lines += [f"- {f['label']}: {f['rule']}" for f in fmts]
    lines += [f"- {res['crossbar_rule']}", "", f"({res['seconds']:.1f} s)"]
    return "\n".join(lines) + "\n"


def _energy(res: dict[str, Any]) -> list[str]:
    """The energy table (counted model, by part), the measured hardware beside it, and the
    papers' claims beside our ratios."""
    fmts = [f for f in res["formats"] if f["total"].get("energy_pj") is not None]
    if not fmts:
        return []
    where = res["settings"]["weight_memory"]
    ref = next((f["total"]["energy_pj"] for f in fmts if f["format"] == "permdiag"), None)
    parts = list(fmts[0]["total"]["energy"])
    rows = [[f["label"], f"{f['total']['energy_pj'] / 1e3:.3f}",
             *[f"{f['total']['energy'][k] / 1e3:.3f}" for k in parts],
             f"{f['total']['energy_pj'] / ref:.2f}x" if ref else "-"] for f in fmts]
    lines = ["", f"energy per inference, counted model (nJ at 45 nm, stored weights in "
                 f"{where.upper()})",
             table(["format", "total", *parts, "vs PD"], rows, "l" + "r" * (len(parts) + 2))]
    for f in res["formats"]:
        me = f.get("measured_energy")
        if me:
            lines.append(
                f"measured, {f['label']} hardware ({me['design']}; permdeal power, first "
                f"{me['inputs']} input(s), {me['cycles_per_inference']:,.0f} cycles each at "
                f"{me['clock_mhz']:g} MHz): {me['energy_per_inference_pj_180nm'] / 1e3:.3f}"
                f" nJ at 0.18 um = {me['energy_pj'] / 1e3:.3f} nJ at 45 nm (/ {me['scale']:g}); "
                f"counted model on the same inputs {me['counted_same_inputs_pj'] / 1e3:.3f} nJ "
                f"(measured / counted {me['measured_over_counted']:.2f}); outputs equal to the "
                f"golden model: {me['golden_match']}")
    for c in res.get("claims", []):
        if c["ours"] is None:
            continue
        lo, hi = c["claim"]
        claim = f"{hi:g}x" if lo == hi else (f"up to {hi:g}x" if lo <= 1 else f"{lo:g}-{hi:g}x")
        lines.append(f"claim ({c['paper']}): {c['text']}; ours (counted): {c['ours']:.2f}x, "
                     f"{c['verdict']} the claimed {claim}")
    lines.append(f"energy: {res['energy_model']}")
    return lines


def _accuracy_note(fmts, finetuned):
    """One line on what each accuracy is: each method's own phrase."""
    parts = []
    for f in fmts:
        note = methods.get(f["format"]).accuracy_note(f["accuracy"], f["setting"]) \
            if f["accuracy"] else None
        if note:
            parts.append(note)
    if not finetuned:
        parts.append("--finetune-epochs 0: nothing fine-tuned")
    return "accuracy (float, test set): " + "; ".join(parts)


def plot(res: dict[str, Any]) -> bytes:
    """PNG bytes: storage against accuracy (or storage alone), multiplies and cycles, crossbars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fmts = res["formats"]
    labels = [f["label"] for f in fmts]
    tot = [f["total"] for f in fmts]
    with matplotlib.rc_context({"font.size": 9}):
        fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(15, 4.4))
        if all(f["accuracy"] for f in fmts):
            for i, (f, t) in enumerate(zip(fmts, tot)):
                a0.scatter(t["storage_bits"], 100 * f["accuracy"]["float"], s=40)
                a0.annotate(f["label"], (t["storage_bits"], 100 * f["accuracy"]["float"]),
                            textcoords="offset points", xytext=(5, 4 if i % 2 else -11))
            a0.set_xscale("log")
            a0.set_xlabel("storage (bits, log)")
            a0.set_ylabel("test accuracy (%)")
            a0.set_title("storage against accuracy")
        else:
            a0.bar(labels, [t["storage_bits"] for t in tot], color="tab:blue")
            a0.set_yscale("log")
            a0.set_ylabel("storage (bits, log)")
            a0.set_title("storage")
            a0.tick_params(axis="x", rotation=30)
        xs = np.arange(len(fmts))
        for off, key, color in ((-0.2, "multiplies", "tab:orange"), (0.2, "cycles", "tab:green")):
            a1.bar(xs + off, [t[key] or 0 for t in tot], 0.4, label=key, color=color)
        a1.set_xticks(xs, labels, rotation=30)
        a1.set_yscale("log")
        a1.set_title(f"per inference, {res['settings']['multipliers']} multipliers")
        a1.legend(loc="upper center")
        xb = [(f["label"], f["total"]["crossbars"]) for f in fmts
              if f["total"]["crossbars"] is not None]
        a2.bar([l for l, _ in xb], [v for _, v in xb], color="tab:purple")
        x = res["settings"]["xbar"]
        a2.set_title(f"crossbars ({x['rows']}x{x['cols']}, {x['cell_bits']}-bit cells)")
        a2.tick_params(axis="x", rotation=30)
        for ax in (a0, a1, a2):
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)
    return buf.getvalue()
