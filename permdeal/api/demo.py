"""``permdeal demo``: a digits network from training to the engine's RTL.

Trains a dense MLP on scikit-learn's handwritten digits, projects it to permuted-diagonal form and
fine-tunes it, compresses it to 16-bit fixed point, lays it out as ROM images for an engine, reads
the images back to prove they encode the model, runs the test set through the golden model and
the cycle model, generates the engine's Verilog and runs the test set through it on Verilator,
output for output against the golden model, then synthesizes the engine (OSU 0.18 um area, ECP5
resources and Fmax; ``synth=False`` skips it). Beside it: the accuracy of other block sizes
(:data:`P_SWEEP`), the same dense model compressed with SmartDeal (:data:`SD_PRUNE` of its Ce rows
pruned in groups of the engine's lanes and fine-tuned; golden model, storage, and the SmartDeal
engine at the PD engine's multiplier budget running the test set in RTL), and the
cycle model for other PE counts (:data:`PE_SWEEP`). Everything lands in one output folder,
with a report (``REPORT.md``, ``report.html`` and plots, ``permdeal/api/demo_report.py``).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from permdeal import __version__, atomic
from permdeal.golden import rom
from permdeal.golden import train as tr
from permdeal.golden.compress import QuantSpec, compress_permdiag, finetuned_smartdeal
from permdeal.golden.cycles import EngineConfig, model_cycles
from permdeal.errors import PermdealError
from permdeal.golden.model import FloatLayer, sha256_file
from permdeal.verif.runner import ToolMissing

from permdeal.gen import report
from permdeal.gen.design import write_design
from permdeal.tables import table
from permdeal.verif.sim import simulate

from . import demo_report

HIDDEN = (128, 64)
#: Block sizes of the accuracy-against-p study (besides the demo's own p).
P_SWEEP = (2, 4, 8, 16)
#: PE counts of the cycles-against-PE-count study (at the demo's lanes per PE).
PE_SWEEP = (1, 2, 4, 8, 16, 32)
#: Epochs of fine-tuning after the projection to permuted-diagonal form.
FINETUNE_EPOCHS = 30
#: The activation, weight and bias width of every compressed model of the demo.
BITS = 16
#: The SmartDeal model: this fraction of its Ce rows pruned in groups of the engine's MAC lanes
#: (whole tiles, which the engine skips), fine-tuned so many epochs with the structure kept.
SD_PRUNE, SD_FINETUNE_EPOCHS = 0.55, 60
#: The SmartDeal engine's batch whose cycle-model figures the demo adds (its RTL runs batch 1).
SD_BATCH = 8


def _step(text):
    print(f"-- {text}", flush=True)


def _run_rtl(what, simulate_fn, design, out, sim, codes, golden, labels):
    """Simulate input ``codes`` on ``design`` with ``simulate_fn`` (``verif.sim`` or
    ``verif.smartdeal_engine_sim``'s ``simulate_design``) into ``out`` and compare the RTL's outputs with the
    golden model's ``golden`` image by image; prints a line, returns the figures. A missing
    simulator is reported, not fatal (the rest of the demo stands without it); a mismatch is
    kept in the figures, not raised, so that the demo still writes its folder to look at."""
    try:
        rep = simulate_fn(design, codes, sim, out, seed=0)
    except ToolMissing as e:
        print(f"skipped the {what} simulation: {e}")
        return {"skipped": str(e)}
    y = np.load(out / "outputs.npy")
    same = np.all(y == golden, axis=1)
    rtl = {"sim": sim, "golden_match": rep["golden_match"],
           "images_equal_to_golden": int(same.sum()), "images": int(len(same)),
           "accuracy": float(np.mean(np.argmax(y, axis=1) == labels)),
           "cycles_match_model": rep["cycles_match_model"],
           "mean_cycles": float(np.mean(rep["cycles"])),
           "build_seconds": rep["build_seconds"], "run_seconds": rep["run_seconds"]}
    print(f"{what} on {sim}: {rtl['images_equal_to_golden']} of {rtl['images']} images equal to "
          f"the golden model, output for output; cycles equal to the cycle model: "
          f"{'yes' if rtl['cycles_match_model'] else 'NO'} ({rtl['mean_cycles']:.0f} cycles per "
          f"image; build {rep['build_seconds']:.0f} s, run {rep['run_seconds']:.0f} s)")
    if not (rtl["golden_match"] and rtl["cycles_match_model"]):
        rtl["first_mismatches"] = rep.get("first_mismatches", [])[:1]
    return rtl


def _synth(tmp):
    """Synthesize the generated design (asic and ecp5); a missing tool or a failing run is
    reported and skipped, not fatal."""
    from permdeal.synth import designs, flow
    try:
        rep = designs.synthesize(tmp / "design", ["asic", "ecp5"], flow.SynthOptions(),
                              tmp / "synth" / "logs",
                              progress=lambda msg: print(f"   ... {msg}", flush=True))
    except PermdealError as e:  # a missing tool, a failing run: the rest of the demo stands
        print(f"skipped synthesis: {str(e).splitlines()[0]}")
        return {"skipped": str(e).splitlines()[0]}
    atomic.write_text(tmp / "synth" / "report.json", json.dumps(rep, indent=2) + "\n")
    a, e = rep["asic"], rep["ecp5"]
    return {"asic_logic_mm2": a["logic_area_um2"] / 1e6,
            "asic_weight_memory_mm2": a["weight_memory"]["total"]["area_um2"] / 1e6,
            "ecp5_device": e["device"], "ecp5_resources": e["resources"],
            "ecp5_fmax_mhz": e["fmax_mhz"],
            "ecp5_peak_gops": rep["throughput"]["ecp5_peak_gops"], "seconds": rep["seconds"]}


def _pd_storage_bits(weights, bits=BITS):
    """Weight storage of permuted-diagonal matrices: ``bits`` per stored weight plus the
    ``ceil(log2 p)``-bit index of every block (docs/design.md 4.1)."""
    return sum(bits * w.n_weights + w.index_bits_total for w in weights)


def _accuracy_vs_p(dense, pd, p, X_tr, y_tr, X_te, y_te, seed, figures):
    """Float and golden fixed-point accuracy of the dense model and of its PD projection,
    fine-tuned, for every block size of :data:`P_SWEEP` (the demo's own ``p`` reuses ``pd``)."""
    rows = [{"p": 1, "weights": dense.n_weights, "storage_bits": _pd_storage_bits(dense.weights),
             "float": figures["float_dense_accuracy"],
             "fixed": tr.fixed_accuracy(dense, X_tr, X_te, y_te, bits=BITS)}]
    for q in sorted(set(P_SWEEP) | {p}):
        if q == 1:
            continue
        tuned = pd if q == p else tr.train(tr.project(dense, q), X_tr, y_tr,
                                           epochs=FINETUNE_EPOCHS, seed=seed)
        rows.append({"p": q, "weights": tuned.n_weights,
                     "storage_bits": _pd_storage_bits(tuned.weights),
                     "float": tr.accuracy(tuned, X_te, y_te),
                     "fixed": tr.fixed_accuracy(tuned, X_tr, X_te, y_te, bits=BITS)})
    return rows


def _smartdeal_rtl(tmp, model, codes, golden, labels, sim, cfg, pd_cycles):
    """Generate the SmartDeal engine (``gen.smartdeal_engine_design``) at the PD engine's
    multiplier budget (``cfg``: its PEs x lanes MAC lanes) into ``tmp/smartdeal_design`` and run
    every test image through it on ``sim`` (``tmp/smartdeal_rtl``): outputs against the golden
    model's ``golden`` image by image, cycles against ``golden.smartdeal_engine_cycles``. Beside
    it the cycle model's figures, against the PD engine's ``pd_cycles`` per image, and the
    layer-unit chain's count (its cycle model only: about 100k cycles per image, too slow to
    simulate the test set). A missing simulator is reported, not fatal."""
    from permdeal.gen.smartdeal_engine_design import write_engine_design
    from permdeal.golden import smartdeal_cycles
    from permdeal.golden.smartdeal_engine_cycles import model_cycles as engine_cycles
    from permdeal.verif.smartdeal_engine_sim import simulate_design
    lanes = cfg.n_pe * cfg.lanes
    runs = engine_cycles(model, codes, lanes)
    cycles = float(np.mean([r.total for r in runs]))
    whole = len(codes) - len(codes) % SD_BATCH
    batched = engine_cycles(model, codes[:whole], lanes, batch=SD_BATCH)
    engine = {"pes": cfg.n_pe, "lanes_per_pe": cfg.lanes, "lanes": lanes,
              "cycles_per_image": cycles,
              "utilization": float(np.mean([r.utilization for r in runs])),
              "pd_cycles_per_image": pd_cycles, "vs_pd": cycles / pd_cycles,
              "batch": {"batch": SD_BATCH, "images": whole,
                        "cycles_per_image": float(np.mean([r.per_vector for r in batched])),
                        "utilization": float(np.mean([r.utilization for r in batched]))}}
    b = engine["batch"]
    print(f"SmartDeal engine ({cfg.n_pe} PE x {cfg.lanes} lanes = {lanes} MAC lanes), cycle "
          f"model: {cycles:.1f} cycles per image ({engine['vs_pd']:.2f}x the PD engine's "
          f"{pd_cycles:.1f}), MAC-lane utilization {100 * engine['utilization']:.1f}%; at batch "
          f"{SD_BATCH} ({whole} images): {b['cycles_per_image']:.1f} cycles per image, "
          f"{100 * b['utilization']:.1f}%")
    write_engine_design(tmp / "smartdeal_design", model, lanes, pes=cfg.n_pe)
    rtl = _run_rtl("SmartDeal engine RTL", simulate_design, tmp / "smartdeal_design",
                   tmp / "smartdeal_rtl", sim, codes, golden, labels)
    return {"engine": engine, "rtl": rtl,
            "units_cycles_per_image": smartdeal_cycles.model_cycles(model).total}


def _smartdeal(dense, X_tr, y_tr, X_te, y_te, pd_bits, tmp, sim, cfg, pd_cycles, seed):
    """The same dense model compressed with SmartDeal (default S, E, b_bits) at the demo's
    widths, :data:`SD_PRUNE` of its Ce rows pruned in groups of the engine's MAC lanes and
    fine-tuned :data:`SD_FINETUNE_EPOCHS` epochs with the structure kept
    (``golden.smartdeal_train``): golden fixed-point accuracy, weight storage, per-layer error,
    and the SmartDeal engine at the PD engine's multiplier budget in RTL
    (:func:`_smartdeal_rtl`); the model and its ROM images are written to ``tmp/smartdeal``."""
    group = cfg.n_pe * cfg.lanes
    try:
        model = finetuned_smartdeal(dense, X_tr, y_tr, QuantSpec(act=BITS, weight=BITS, bias=BITS),
                                    prune=SD_PRUNE, prune_group=group,
                                    epochs=SD_FINETUNE_EPOCHS, seed=seed)
    except PermdealError as e:
        print(f"skipped SmartDeal: {e}")
        return {"skipped": str(e)}
    (tmp / "smartdeal").mkdir()
    model.write_folder(tmp / "smartdeal")
    codes, _ = model.quantize_input(X_te)
    out = model.forward(codes)
    bits = [l.report["storage_bits"] for l in model.layers]
    return {"config": model.config, "prune": SD_PRUNE, "prune_group": group,
            "finetune_epochs": SD_FINETUNE_EPOCHS,
            "golden_fixed_accuracy": float(np.mean(np.argmax(out, axis=1) == y_te)),
            "storage_bits": {"smartdeal": sum(b["smartdeal_fixed"] for b in bits),
                             "dense_16bit": sum(b["dense"] for b in bits), "permdiag": pd_bits},
            "layers": [{"layer": l.name, "rel_error_quantized": l.report["rel_error_quantized"],
                        "ce_density": l.report["ce_density"]} for l in model.layers],
            **_smartdeal_rtl(tmp, model, codes, out, y_te, sim, cfg, pd_cycles)}


def _cycles_vs_pes(model, codes, lanes, pes, runs):
    """The cycle model over the test set for every PE count of :data:`PE_SWEEP` (and the
    demo's own, whose ``runs`` are given) at ``lanes`` lanes per PE."""
    rows = []
    for n in sorted(set(PE_SWEEP) | {pes}):
        rs = runs if n == pes else [model_cycles(model, x, EngineConfig(n_pe=n, lanes=lanes))
                                    for x in codes]
        rows.append({"pes": n, "lanes": lanes, "cycles": float(np.mean([r.total for r in rs])),
                     "compute_cycles": float(np.mean([r.compute for r in rs])),
                     "utilization": float(np.mean([r.utilization for r in rs]))})
    return rows


def _layer_utilization(model, runs):
    return [{"layer": l.name, "shape": f"{l.shape[1]} -> {l.shape[0]}", "p": l.matrix.p,
             "slots": runs[0].layers[i].slots,
             "nnz": float(np.mean([r.layers[i].nnz for r in runs])),
             "utilization": float(np.mean([r.layers[i].utilization for r in runs]))}
            for i, l in enumerate(model.layers)]


def run(output: str | Path, seed: int = 0, p: int = 4, pes: int = 4, lanes: int = 2,
        sim: str = "verilator", synth: bool = True) -> int:
    """Run the demo into the new folder ``output``; prints progress, the figures and where the
    report is. Returns the exit status (0)."""
    t0 = time.perf_counter()
    cfg = EngineConfig(n_pe=pes, lanes=lanes)
    X_tr, y_tr, X_te, y_te = tr.load_digits_split(seed)
    sizes = [X_tr.shape[1], *HIDDEN, 10]
    ps = [p] * (len(sizes) - 1)
    figures = {"seed": seed, "p": p, "engine": cfg.to_json(), "sizes": sizes}

    with atomic.output_dir(output) as tmp:
        _step(f"training a dense {'-'.join(map(str, sizes))} MLP on {len(y_tr)} digit images")
        dense = tr.train(tr.init_mlp(sizes, seed=seed), X_tr, y_tr, seed=seed)
        figures["float_dense_accuracy"] = tr.accuracy(dense, X_te, y_te)

        _step(f"projecting every layer to permuted-diagonal form (p={p}) and fine-tuning")
        pd = tr.train(tr.project(dense, ps), X_tr, y_tr, epochs=FINETUNE_EPOCHS, seed=seed)
        figures["float_pd_accuracy"] = tr.accuracy(pd, X_te, y_te)
        tr.save_npz(pd, tmp / "model.npz")
        source = {"file": "model.npz", "sha256": sha256_file(tmp / "model.npz")}

        others = ", ".join(str(q) for q in sorted(set(P_SWEEP) - {p, 1}))
        _step(f"accuracy against p: the dense model projected and fine-tuned for p = {others} "
              f"too, float and {BITS}-bit golden fixed point")
        figures["accuracy_vs_p"] = _accuracy_vs_p(dense, pd, p, X_tr, y_tr, X_te, y_te, seed,
                                                  figures)

        _step(f"compressing to {BITS}-bit fixed point (activation formats fitted to the "
              "training set)")
        layers = [FloatLayer(n, W, b) for n, W, b in pd.dense_weights()]
        model = compress_permdiag(layers, ps, QuantSpec(act=BITS, weight=BITS, bias=BITS),
                                  calibration=X_tr)
        (tmp / "compressed").mkdir()
        model.write(tmp / "compressed", source=source)
        print(report.model_table(model))
        dense_w = sum(l.shape[0] * l.shape[1] for l in model.layers)
        stored = sum(l.matrix.n_weights for l in model.layers)
        figures["compression_ratio"] = dense_w / stored
        bits_dense = sum(l.fmts.weight.bits * l.shape[0] * l.shape[1] for l in model.layers)
        bits_pd = sum(l.fmts.weight.bits * l.matrix.n_weights + l.matrix.index_bits_total
                      for l in model.layers)
        figures["weight_storage_bits"] = {"dense_16bit": bits_dense, "permdiag": bits_pd}

        _step(f"writing ROM images for {pes} PE x {lanes} lanes and reading them back")
        (tmp / "rom").mkdir()
        man = rom.write_images(tmp / "rom", model, cfg)
        back = rom.model_from_images(tmp / "rom")
        codes, _ = model.quantize_input(X_te)
        out = model.forward(codes)
        if not np.array_equal(back.forward(codes), out):
            raise AssertionError("ROM images do not reproduce the compressed model")
        figures["rom_images"] = len(man["images"])

        _step(f"golden model and cycle model on the {len(y_te)} test images")
        figures["golden_fixed_accuracy"] = float(np.mean(np.argmax(out, axis=1) == y_te))
        runs = [model_cycles(model, x, cfg) for x in codes]
        print(report.cycles_table(model, cfg, runs))
        figures["cycles_per_image"] = float(np.mean([r.total for r in runs]))
        figures["compute_cycles_per_image"] = float(np.mean([r.compute for r in runs]))
        figures["lane_utilization"] = float(np.mean([r.utilization for r in runs]))
        figures["layer_utilization"] = _layer_utilization(model, runs)
        figures["cycles_vs_pes"] = _cycles_vs_pes(model, codes, lanes, pes, runs)

        _step(f"SmartDeal: the dense model as Ce @ B (power-of-two Ce, quantized B), golden model "
              f"on the test images, and the SmartDeal engine at the same multiplier budget "
              f"({pes * lanes} MAC lanes) running the {len(y_te)} test images on {sim}")
        figures["smartdeal"] = _smartdeal(dense, X_tr, y_tr, X_te, y_te, bits_pd, tmp, sim, cfg,
                                          figures["cycles_per_image"], seed)

        _step(f"generating the engine's Verilog ({pes} PE x {lanes} lanes) and running the "
              f"{len(y_te)} test images through it on {sim}")
        write_design(tmp / "design", cfg, model.layers, model=model)
        figures["rtl"] = _run_rtl("RTL", simulate, tmp / "design", tmp / "rtl", sim, codes, out,
                                  y_te)
        if synth:
            _step("synthesizing the engine: OSU 0.18 um cells (Yosys) and a Lattice ECP5 "
                  "(Yosys, nextpnr)")
            figures["synth"] = _synth(tmp)
        figures["seconds"] = round(time.perf_counter() - t0, 1)
        atomic.write_text(tmp / "figures.json", json.dumps(figures, indent=2) + "\n")
        written = demo_report.write_report(tmp, figures)
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(
            {"kind": "permdeal-demo", "generator": f"permdeal {__version__}",
             "contents": [*written, "figures.json", "model.npz", "compressed/", "rom/",
                          *[f"{d}/" for d in ("smartdeal", "smartdeal_design", "smartdeal_rtl")
                            if (tmp / d).is_dir()],
                          "design/", "rtl/",
                          *(["synth/"] if (tmp / "synth" / "report.json").is_file() else [])]},
            indent=2) + "\n")

    print()
    print(table(["figure", "value"], demo_report.summary_rows(figures), aligns="ll"))
    print(f"\nwrote {output}/ in {time.perf_counter() - t0:.1f} s")
    print(f"report: {Path(output) / demo_report.REPORT_MD} (and {demo_report.REPORT_HTML}, "
          "with plots beside it)")
    return _rtl_status(output, [("PD engine", figures["rtl"], "rtl"),
                                ("SmartDeal engine", figures["smartdeal"].get("rtl", {}),
                                 "smartdeal_rtl")])


def _rtl_status(output, runs) -> int:
    """The demo's exit status from its RTL runs ``(what, figures of _run_rtl, folder)``: 1, with
    a line on stderr for each, when one differs from the golden or the cycle model."""
    status = 0
    for what, rtl, folder in runs:
        if "golden_match" in rtl and not (rtl["golden_match"] and rtl["cycles_match_model"]):
            print(f"permdeal demo: error: the {what}'s RTL differs from the golden model (first "
                  f"mismatch: {rtl.get('first_mismatches')}); see "
                  f"{Path(output) / folder / 'report.json'}", file=sys.stderr)
            status = 1
    return status
