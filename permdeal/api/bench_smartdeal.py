"""``permdeal bench-smartdeal``: SmartDeal's figures of record (issue 4), printed and as JSON.

Five parts, each optional:

- ``layer``: a random ``m x n`` layer (default 4096 x 4096, N(0, 1/n) weights) decomposed with the
  given S, E and b_B: wall time of :func:`golden.smartdeal.decompose`, relative error before and
  after quantizing B, Ce density, exponents used, storage against dense 16-bit and against the PD
  form at ``p``.
- ``digits``: :func:`golden.smartdeal_train.smartdeal_digits_study`: accuracy of the dense MLP, its
  SmartDeal form and the fine-tuned form, per-layer relative error, and the model's storage.
- ``unit``: the bit-serial shift-add unit's timing (:class:`golden.shift_add.ShiftAddTiming`),
  cycles per row and per rebuilt weight, and with ``--synth`` its size from Yosys (generic cells
  and OSU 0.18 um logic area, ``permdeal synth --block shift_add``).
- ``hardware`` (only when asked: minutes): ``bench_hardware.hardware_figures``, the PermDNN and
  the SmartDeal engine of one multiplier budget side by side, synthesized and power-measured.
- ``engine``: :func:`engine_figures`: the digits MLP (the demo's: dense 64-128-64-10, and its PD
  form at ``p = 4`` fine-tuned) compressed to 16 bits both ways, over the 450 test images at batch
  1: the SmartDeal engine's cycles and MAC-lane utilization on :data:`ENGINE_LANES` lanes
  (``golden.smartdeal_engine_cycles``, equal to the RTL's on every bench) against the PermDNN
  engine's on as many lanes (:data:`PD_ENGINE`, ``golden.cycles``), and the issue-17 targets.
"""

import json
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from permdeal import atomic, limits
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden import smartdeal as sd
from permdeal.golden.permdiag import check_block_fit
from permdeal.golden.shift_add import ShiftAddTiming

from permdeal.tables import table

PARTS = ("layer", "digits", "unit", "engine", "hardware")
#: The SmartDeal engine's MAC lanes in the ``engine`` part, and the PermDNN engine beside it
#: (``(PEs, lanes per PE, p)``, the demo's: as many lanes in all).
ENGINE_LANES = 8
PD_ENGINE = (4, 2, 4)
#: Issue 17's targets at batch 1 on ENGINE_LANES lanes: cycles at most this many times the PermDNN
#: engine's, MAC-lane utilization at least this.
TARGET_RATIO, TARGET_UTILIZATION = 1.5, 0.85
#: The batch of the engine part's batched run, and issue 17's utilization target there.
ENGINE_BATCH, TARGET_BATCH_UTILIZATION = 8, 0.95
#: Fractions of Ce rows pruned (in groups of ENGINE_LANES outputs) of the engine part's pruned
#: and fine-tuned variants.
PRUNES = (0.5, 0.55, 0.6)


def layer_figures(m: int, n: int, S: int, E: int, b_bits: int, p: int,
                  seed: int) -> dict[str, Any]:
    """Decompose a random ``m x n`` layer; its :func:`golden.smartdeal.report` plus the time."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n)) / np.sqrt(n)
    t0 = time.perf_counter()
    dec = sd.decompose(W, S=S, E=E)
    took = time.perf_counter() - t0
    rep = sd.report(dec, W, b_bits=b_bits, p=p, enc=sd.quantize(dec, b_bits))
    return {"seed": seed, "decompose_seconds": round(took, 2), **rep}


def digits_figures(S: int, E: int, b_bits: int, seed: int) -> dict[str, Any]:
    """The digits study (dense, SmartDeal, fine-tuned), trimmed to its figures."""
    from permdeal.golden.smartdeal_train import smartdeal_digits_study
    t0 = time.perf_counter()
    st = smartdeal_digits_study(seed=seed, S=S, E=E, b_bits=b_bits)
    layers = [{"name": l["name"],
               **({"rel_error": l["decomposed"]["rel_error"],
                   "rel_error_finetuned": l["finetuned"]["rel_error"],
                   "ce_density": l["finetuned"]["ce_density"]} if l["decomposed"] else {})}
              for l in st["layers"]]
    return {"seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            **{k: st[k] for k in ("dense", "smartdeal", "finetuned", "smartdeal_quantized",
                                  "finetuned_quantized")},
            "layers": layers, "storage": st["storage"]}


def unit_figures(S: int, E: int, b_bits: int, lanes: int | None,
                 synth: bool) -> dict[str, Any]:
    """The shift-add unit's timing, and its Yosys size with ``synth``."""
    t = ShiftAddTiming(S=S, E=E, b_bits=b_bits, lanes=S if lanes is None else lanes)
    out = {"S": S, "E": E, "b_bits": b_bits, "lanes": t.lanes, "acc_bits": t.acc_bits,
           "passes": t.passes, "cycles_per_row": t.cycles_per_row, "latency": t.latency,
           "cycles_per_weight": t.cycles_per_row / S, "weights_per_cycle": S / t.cycles_per_row}
    if synth:
        from permdeal.synth import block, flow
        opts = flow.SynthOptions()
        flow.check_tools(["generic", "asic"], opts)
        with tempfile.TemporaryDirectory(prefix="permdeal-bench-sd-") as tmp:
            rep = block.synthesize("shift_add", {"S": S, "E": E, "b_bits": b_bits,
                                                 "lanes": t.lanes},
                                   ["generic", "asic"], opts, Path(tmp) / "logs")
            par = block.synthesize("rebuild", {"S": S, "E": E, "b_bits": b_bits},
                                   ["asic"], opts, Path(tmp) / "logs-rebuild")
        out["generic_cells"] = rep["generic"]["cells_total"]
        out["transistors"] = rep["generic"]["transistors"]
        out["asic_logic_um2"] = rep["asic"]["logic_area_um2"]
        out["asic_cells"] = rep["asic"]["cells_total"]
        # the SmartDeal engine's bit-parallel rebuild engine beside it: area per weight a cycle
        out["parallel_asic_logic_um2"] = par["asic"]["logic_area_um2"]
        out["serial_um2_per_weight_per_cycle"] = out["asic_logic_um2"] / out["weights_per_cycle"]
        out["parallel_um2_per_weight_per_cycle"] = out["parallel_asic_logic_um2"]
    return out


def _sd_engine_run(model, codes, y_te, batch=1):
    """Mean figures of a SmartDeal model on the engine over ``codes`` (``ENGINE_LANES`` lanes,
    ``batch`` vectors at a time, whole batches): per image the cycles, multiplies and rebuilt
    weights, and the rebuild rate the lanes need (rebuilt weights per lane and compute cycle)."""
    from permdeal.golden import smartdeal_engine_cycles as ec
    runs = ec.model_cycles(model, codes, ENGINE_LANES, batch=batch)
    mean = lambda xs: float(np.mean(xs))
    rebuilt = [sum(l.rebuilt_weights for l in r.layers) for r in runs]
    return {"accuracy": float(np.mean(np.argmax(model.forward(codes), 1) == y_te)),
            "images": int(len(codes)), "batch": batch,
            "cycles": mean([r.per_vector for r in runs]),
            "cycles_min": min(r.per_vector for r in runs),
            "cycles_max": max(r.per_vector for r in runs),
            "compute_cycles": mean([r.compute / batch for r in runs]),
            "utilization": mean([r.utilization for r in runs]),
            "total_utilization": mean([r.total_utilization for r in runs]),
            "macs": mean([r.macs / batch for r in runs]),
            "rebuilt_weights": mean(rebuilt) / batch,
            "rebuild_rate": mean([w / (ENGINE_LANES * r.compute) for w, r in zip(rebuilt, runs)]),
            "layers": [{"name": l.name, "m": l.shape[0], "n": l.shape[1],
                        "nnz": mean([r.layers[i].nnz / batch for r in runs]),
                        "cycles": mean([r.layers[i].compute / batch for r in runs]),
                        "utilization": mean([r.layers[i].utilization for r in runs])}
                       for i, l in enumerate(model.layers)]}


def digits_models(S: int, E: int, b_bits: int, seed: int, hidden: tuple = (128, 64),
                  epochs: int = 40, finetune_epochs: int = 60) -> dict[str, Any]:
    """The digits MLP both ways, in 16-bit formats: the dense net (``epochs``), its PD form at
    :data:`PD_ENGINE`'s ``p`` fine-tuned ``finetune_epochs`` (``pd``), its SmartDeal form
    (``smartdeal``), the data split, and ``pruned(frac)``: the dense net decomposed with ``frac`` of
    its Ce rows pruned in groups of :data:`ENGINE_LANES` outputs (one tile: the engine skips them),
    fine-tuned with the structure kept (``golden.smartdeal_train.finetune``) and compressed."""
    from permdeal.golden import train as tr
    from permdeal.golden.compress import (QuantSpec, compress_permdiag, compress_smartdeal,
                                          finetuned_smartdeal)
    from permdeal.golden.model import FloatLayer

    X_tr, y_tr, X_te, y_te = tr.load_digits_split(seed)
    sizes = [X_tr.shape[1], *hidden, 10]
    ps = [PD_ENGINE[2]] * (len(sizes) - 1)
    dense = tr.train(tr.init_mlp(sizes, seed=seed), X_tr, y_tr, epochs=epochs, seed=seed)
    pd = tr.train(tr.project(dense, ps), X_tr, y_tr, epochs=finetune_epochs, seed=seed)
    spec = QuantSpec(act=16, weight=16, bias=16)
    layers = lambda net: [FloatLayer(n, W, b) for n, W, b in net.dense_weights()]

    def pruned(frac):
        return finetuned_smartdeal(dense, X_tr, y_tr, spec, prune=frac, prune_group=ENGINE_LANES,
                                   epochs=finetune_epochs, seed=seed, S=S, E=E, b_bits=b_bits)

    return {"split": (X_tr, y_tr, X_te, y_te), "sizes": sizes, "dense": dense,
            "pd": compress_permdiag(layers(pd), ps, spec, calibration=X_tr),
            "smartdeal": compress_smartdeal(layers(dense), spec, calibration=X_tr, S=S, E=E,
                                            b_bits=b_bits),
            "pruned": pruned}


def engine_figures(S: int, E: int, b_bits: int, seed: int, hidden: tuple = (128, 64),
                   epochs: int = 40, finetune_epochs: int = 60,
                   prunes: tuple = PRUNES) -> dict[str, Any]:
    """The ``engine`` part (module docstring): per-image mean cycles and utilization of both
    engines over the digits test split (:func:`digits_models`), per layer for SmartDeal, and the
    targets; for every fraction of ``prunes`` also the pruned and fine-tuned SmartDeal model."""
    from permdeal.golden.cycles import EngineConfig
    from permdeal.golden.cycles import model_cycles as pd_cycles

    t0 = time.perf_counter()
    dm = digits_models(S, E, b_bits, seed, hidden, epochs, finetune_epochs)
    X_tr, y_tr, X_te, y_te = dm["split"]
    sizes, sdm, pdm = dm["sizes"], dm["smartdeal"], dm["pd"]
    pes, pd_lanes, p = PD_ENGINE
    sd_codes, _ = sdm.quantize_input(X_te)
    pd_codes, _ = pdm.quantize_input(X_te)
    cfg = EngineConfig(n_pe=pes, lanes=pd_lanes)
    pd_runs = [pd_cycles(pdm, x, cfg) for x in pd_codes]
    pd_total = float(np.mean([r.total for r in pd_runs]))
    sdr = _sd_engine_run(sdm, sd_codes, y_te)
    whole = len(sd_codes) - len(sd_codes) % ENGINE_BATCH     # whole batches of the test images
    sdb = _sd_engine_run(sdm, sd_codes[:whole], y_te[:whole], ENGINE_BATCH)
    pruned = []
    for frac in prunes:
        pm = dm["pruned"](frac)
        codes, _ = pm.quantize_input(X_te)
        run = _sd_engine_run(pm, codes, y_te)
        pruned.append({"prune": frac, "prune_group": ENGINE_LANES, **run,
                       "ratio": run["cycles"] / pd_total})
    return {
        "seed": seed, "images": int(len(X_te)), "sizes": sizes, "lanes": ENGINE_LANES,
        "smartdeal": sdr, "smartdeal_batch": sdb,
        "serial_rate": S / ShiftAddTiming(S=S, E=E, b_bits=b_bits, lanes=S).cycles_per_row,
        "permdiag": {"pes": pes, "lanes_per_pe": pd_lanes, "p": p,
                     "accuracy": float(np.mean(np.argmax(pdm.forward(pd_codes), 1) == y_te)),
                     "cycles": pd_total,
                     "utilization": float(np.mean([r.utilization for r in pd_runs]))},
        "ratio": sdr["cycles"] / pd_total,
        "pruned": pruned,
        "targets": {"ratio": TARGET_RATIO, "utilization": TARGET_UTILIZATION,
                    "ratio_met": sdr["cycles"] / pd_total <= TARGET_RATIO,
                    "utilization_met": sdr["utilization"] >= TARGET_UTILIZATION,
                    "batch": ENGINE_BATCH, "batch_utilization": TARGET_BATCH_UTILIZATION,
                    "batch_utilization_met": sdb["utilization"] >= TARGET_BATCH_UTILIZATION},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def tables(res: dict[str, Any]) -> str:
    """The figures as text tables."""
    out = []
    if "layer" in res:
        r = res["layer"]
        ratio = r["storage_ratio"]
        out.append(f"random {r['shape'][0]} x {r['shape'][1]} layer, S={r['S']} E={r['E']} "
                   f"b_B={r['b_bits']} (seed {r['seed']})")
        out.append(table(["figure", "value"], [
            ["decomposition time", f"{r['decompose_seconds']:.1f} s"],
            ["relative error (float B)", f"{r['rel_error']:.4f}"],
            ["relative error (quantized B)", f"{r['rel_error_quantized']:.4f}"],
            ["Ce density", f"{100 * r['ce_density']:.1f}%"],
            ["exponents used", f"{r['exponents']['min']}..{r['exponents']['max']} "
                               f"(range {r['e_min']}..{r['e_max']})"],
            ["storage, dense 16-bit / SmartDeal (fixed codes)",
             f"{ratio['dense/fixed']:.2f}x"],
            ["storage, dense 16-bit / SmartDeal (authors' accounting)",
             f"{ratio['dense/authors']:.2f}x"],
            [f"storage, PD p={r['permdiag_p']} / SmartDeal (fixed codes)",
             f"{ratio['permdiag/fixed']:.2f}x"],
        ], "ll"))
    if "digits" in res:
        d = res["digits"]
        pct = lambda v: f"{100 * v:.1f}%"
        out.append(f"\ndigits MLP (seed {d['seed']}, {d['seconds']:.0f} s)")
        out.append(table(["model", "accuracy"], [
            ["dense (float)", pct(d["dense"])], ["SmartDeal (float B)", pct(d["smartdeal"])],
            ["SmartDeal fine-tuned (float B)", pct(d["finetuned"])],
            ["SmartDeal, 8-bit B", pct(d["smartdeal_quantized"])],
            ["SmartDeal fine-tuned, 8-bit B", pct(d["finetuned_quantized"])]], "lr"))
        out.append(table(["layer", "rel error", "rel error fine-tuned", "Ce density"], [
            [l["name"], f"{l['rel_error']:.4f}", f"{l['rel_error_finetuned']:.4f}",
             f"{100 * l['ce_density']:.1f}%"] if "rel_error" in l else [l["name"], "dense", "",
                                                                        ""]
            for l in d["layers"]]))
        s = d["storage"]
        out.append(f"storage: dense 16-bit {s['dense']} bits, SmartDeal {s['smartdeal_fixed']} "
                   f"bits (fixed codes, {s['ratio']['dense/fixed']:.2f}x less), "
                   f"{s['smartdeal_authors']} bits (authors' accounting, "
                   f"{s['ratio']['dense/authors']:.2f}x less)")
    if "unit" in res:
        u = res["unit"]
        rows = [["acc bits T (b_B + 2^E + floor(log2 S))", u["acc_bits"]],
                ["passes P = ceil(S / lanes)", u["passes"]],
                ["cycles per row P*T", u["cycles_per_row"]],
                ["cycles per rebuilt weight", f"{u['cycles_per_weight']:.2f}"],
                ["latency", u["latency"]]]
        if "generic_cells" in u:
            rows += [["Yosys generic cells", f"{u['generic_cells']:,}"],
                     ["transistors (stat -tech cmos)", f"{u['transistors']:,}"],
                     ["OSU 0.18 um logic area", f"{u['asic_logic_um2']:,.0f} um^2"],
                     ["OSU 0.18 um logic per rebuilt weight a cycle",
                      f"{u['serial_um2_per_weight_per_cycle']:,.0f} um^2"],
                     ["the engine's bit-parallel rebuild engine (one weight a cycle): logic",
                      f"{u['parallel_asic_logic_um2']:,.0f} um^2 "
                      f"({u['serial_um2_per_weight_per_cycle'] / u['parallel_um2_per_weight_per_cycle']:.1f}x "
                      "less per weight a cycle)"]]
        out.append(f"\nshift-add unit S={u['S']} E={u['E']} b_B={u['b_bits']} "
                   f"lanes={u['lanes']}")
        out.append(table(["figure", "value"], rows, "ll"))
    if "engine" in res:
        e = res["engine"]
        s, d, t = e["smartdeal"], e["permdiag"], e["targets"]
        pct = lambda v: f"{100 * v:.1f}%"
        yes = lambda ok: "met" if ok else "NOT met"
        out.append(f"\nSmartDeal engine, digits MLP {'-'.join(map(str, e['sizes']))}, batch 1, "
                   f"{e['images']} test images (cycle models; seed {e['seed']}, "
                   f"{e['seconds']:.0f} s)")
        out.append(table(["engine", "lanes", "accuracy", "cycles per image", "MAC utilization"], [
            [f"SmartDeal engine ({e['lanes']} lanes, one rebuild engine each)", e["lanes"],
             pct(s["accuracy"]), f"{s['cycles']:.1f} ({s['cycles_min']}..{s['cycles_max']})",
             pct(s["utilization"])],
            *[[f"SmartDeal engine, {100 * v['prune']:.0f}% of Ce rows pruned in groups of "
               f"{v['prune_group']}, fine-tuned", e["lanes"], pct(v["accuracy"]),
               f"{v['cycles']:.1f} ({v['cycles_min']}..{v['cycles_max']})",
               pct(v["utilization"])] for v in e["pruned"]],
            [f"PermDNN engine ({d['pes']} PE x {d['lanes_per_pe']} lanes, p={d['p']})",
             d["pes"] * d["lanes_per_pe"], pct(d["accuracy"]), f"{d['cycles']:.1f}",
             pct(d["utilization"])]], "lrrrr"))
        b = e["smartdeal_batch"]
        out.append(f"batch {b['batch']} ({b['images']} images, whole batches): "
                   f"{b['cycles']:.1f} cycles per image, MAC-lane utilization "
                   f"{pct(b['utilization'])} (target >= {pct(t['batch_utilization'])}: "
                   f"{yes(t['batch_utilization_met'])}); rebuilt weights per image "
                   f"{s['rebuilt_weights']:.0f} at batch 1, {b['rebuilt_weights']:.0f} at batch "
                   f"{b['batch']} ({s['rebuilt_weights'] / b['rebuilt_weights']:.1f}x fewer: "
                   f"reused across the batch); rebuild rate a lane needs "
                   f"{s['rebuild_rate']:.2f} and {b['rebuild_rate']:.2f} weights a cycle "
                   f"(a bit-serial unit of the design card gives {e['serial_rate']:.3f})")
        out.append(table(["SmartDeal layer", "n -> m", "non-zero inputs", "cycles",
                          "utilization"],
                         [[l["name"], f"{l['n']} -> {l['m']}", f"{l['nnz']:.1f}",
                           f"{l['cycles']:.1f}", pct(l["utilization"])] for l in s["layers"]],
                         "lrrrr"))
        out.append(f"cycles SmartDeal / PermDNN: {e['ratio']:.2f}x (target <= {t['ratio']}x: "
                   f"{yes(t['ratio_met'])}); MAC-lane utilization {pct(s['utilization'])} "
                   f"(target >= {pct(t['utilization'])}: {yes(t['utilization_met'])}); "
                   f"{s['macs']:.0f} multiplies per image against the PermDNN engine's p-fold "
                   "fewer: the dense rebuilt rows bound SmartDeal at batch 1")
        for v in e["pruned"]:
            out.append(f"pruned {100 * v['prune']:.0f}% in groups of {v['prune_group']}: "
                       f"{v['ratio']:.2f}x the PermDNN engine's cycles (target "
                       f"{yes(v['ratio'] <= t['ratio'])}), utilization {pct(v['utilization'])} "
                       f"(target {yes(v['utilization'] >= t['utilization'])}), accuracy "
                       f"{pct(v['accuracy'])}")
    if "hardware" in res:
        from .bench_hardware import hardware_table
        out.append(hardware_table(res["hardware"]))
    return "\n".join(out)


def check_args(m: int, n: int, S: int, E: int, b_bits: int, p: int,
               lanes: int | None) -> None:
    """Refuse, naming the flag, a setting outside the golden model's ranges (before any part
    runs): S in [1, MAX_S], E in E_RANGE, b_bits in B_BITS_RANGE, lanes in [1, S], and a PD block
    size p no longer than the layer's longer side."""
    m, n = integer(m, "--m", 1), integer(n, "--n", 1)
    limits.check_array(m, n, f"--m {m} x --n {n}: the random layer")
    S = integer(S, "--S", 1, sd.MAX_S)
    integer(E, "--E", *sd.E_RANGE)
    integer(b_bits, "--b-bits", *sd.B_BITS_RANGE)
    if lanes is not None:
        try:
            integer(lanes, "--lanes", 1, S)
        except PermdealError as e:
            raise PermdealError(f"{e} (the shift-add unit has at most S = {S} lanes)") from None
    check_block_fit(m, n, integer(p, "--p", 1), "--p", f"the {m} x {n} layer")


def run(parts: Collection[str], *, m: int = 4096, n: int = 4096, S: int = 3, E: int = 3,
        b_bits: int = 8, p: int = 8, lanes: int | None = None, seed: int = 0,
        synth: bool = False, json_path: str | Path | None = None, force: bool = False) -> int:
    """Compute the ``parts`` (of :data:`PARTS`), print them, write ``json_path``; exit code."""
    check_args(m, n, S, E, b_bits, p, lanes)
    for flag, given, part in (("--synth", synth, "unit"), ("--lanes", lanes is not None, "unit"),
                              ("--m", m != 4096, "layer"), ("--n", n != 4096, "layer"),
                              ("--p", p != 8, "layer")):
        if given and part not in parts:
            raise PermdealError(f"{flag} applies to the {part} part, which --parts "
                                f"{','.join(parts)} does not run")
    if json_path:
        atomic.check_new_file(json_path, force)
    res = {}
    if "unit" in parts:
        res["unit"] = unit_figures(S, E, b_bits, lanes, synth)
    if "layer" in parts:
        res["layer"] = layer_figures(m, n, S, E, b_bits, p, seed)
    if "digits" in parts:
        res["digits"] = digits_figures(S, E, b_bits, seed)
    if "engine" in parts:
        res["engine"] = engine_figures(S, E, b_bits, seed)
    if "hardware" in parts:
        from .bench_hardware import hardware_figures
        res["hardware"] = hardware_figures(S, E, b_bits, seed,
                                           progress=lambda text: print(f"... {text}", flush=True))
    print(tables(res))
    if json_path:
        atomic.write_text(json_path, json.dumps(res, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
