"""``permdeal demo``: a digits network from training to the engine's RTL.

Trains a dense MLP on scikit-learn's handwritten digits, projects it to permuted-diagonal form and
fine-tunes it, compresses it to 16-bit fixed point, lays it out as ROM images for an engine, reads
the images back to prove they encode the model, runs the test set through the golden model and
the cycle model, generates the engine's Verilog and runs the test set through it on Verilator,
output for output against the golden model, then synthesizes the engine (OSU 0.18 um area, ECP5
resources and Fmax; ``synth=False`` skips it). Everything lands in one output folder.
"""

import json
import time

import numpy as np

from permdeal import __version__, atomic
from permdeal.golden import rom
from permdeal.golden import train as tr
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig, model_cycles
from permdeal.errors import PermdealError
from permdeal.golden.model import FloatLayer, sha256_file
from permdeal.verif.runner import ToolMissing

from . import report
from .design import write_design
from .sim import simulate

HIDDEN = (128, 64)


def _step(text):
    print(f"-- {text}", flush=True)


def _rtl(tmp, sim, codes, golden, labels, figures):
    """Simulate the test set on the generated design; a missing simulator is reported, not
    fatal (the rest of the demo stands without it)."""
    try:
        rep = simulate(tmp / "design", codes, sim, tmp / "rtl", seed=0)
    except ToolMissing as e:
        print(f"skipped the RTL simulation: {e}")
        return {"skipped": str(e)}
    y = np.load(tmp / "rtl" / "outputs.npy")
    same = np.all(y == golden, axis=1)
    rtl = {"sim": sim, "golden_match": rep["golden_match"],
           "images_equal_to_golden": int(same.sum()), "images": int(len(same)),
           "accuracy": float(np.mean(np.argmax(y, axis=1) == labels)),
           "cycles_match_model": rep["cycles_match_model"],
           "mean_cycles": float(np.mean(rep["cycles"])),
           "build_seconds": rep["build_seconds"], "run_seconds": rep["run_seconds"]}
    print(f"RTL on {sim}: {rtl['images_equal_to_golden']} of {rtl['images']} images equal to "
          f"the golden model, output for output; cycles equal to the cycle model: "
          f"{'yes' if rtl['cycles_match_model'] else 'NO'} (build {rep['build_seconds']:.0f} s, "
          f"run {rep['run_seconds']:.0f} s)")
    if not (rtl["golden_match"] and rtl["cycles_match_model"]):
        raise PermdealError(f"the RTL differs from the golden model; see {tmp / 'rtl'}")
    return rtl


def _synth(tmp):
    """Synthesize the generated design (asic and ecp5); a missing tool or a failing run is
    reported and skipped, not fatal."""
    from permdeal.synth import flow
    try:
        rep = flow.synthesize(tmp / "design", ["asic", "ecp5"], flow.SynthOptions(),
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


def _synth_rows(syn):
    if syn is None:
        return []
    if "skipped" in syn:
        return [["synthesis", f"skipped: {syn['skipped']}"]]
    r = syn["ecp5_resources"]
    return [["ASIC logic area (OSU 0.18 um)", f"{syn['asic_logic_mm2']:.3f} mm^2 (+ "
             f"{syn['asic_weight_memory_mm2']:.3f} mm^2 of weight SRAM, modelled)"],
            [f"ECP5 {syn['ecp5_device']}", f"{r['LUT4']} LUT4, {r['FF']} FF, {r['MULT18X18D']} "
             f"MULT18X18D, {r['DP16KD']} DP16KD"],
            ["ECP5 Fmax (nextpnr)", f"{syn['ecp5_fmax_mhz']:.1f} MHz, peak "
             f"{syn['ecp5_peak_gops']:.2f} GOPS"]]


def run(output, seed=0, p=4, pes=4, lanes=2, sim="verilator", synth=True):
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
        pd = tr.train(tr.project(dense, ps), X_tr, y_tr, epochs=30, seed=seed)
        figures["float_pd_accuracy"] = tr.accuracy(pd, X_te, y_te)
        tr.save_npz(pd, tmp / "model.npz")
        source = {"file": "model.npz", "sha256": sha256_file(tmp / "model.npz")}

        _step("compressing to 16-bit fixed point (activation formats fitted to the training set)")
        layers = [FloatLayer(n, W, b) for n, W, b in pd.dense_weights()]
        model = compress_permdiag(layers, ps, QuantSpec(act=16), calibration=X_tr)
        (tmp / "compressed").mkdir()
        model.write(tmp / "compressed", source=source)
        print(report.model_table(model))

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
        _step(f"generating the engine's Verilog ({pes} PE x {lanes} lanes) and running the "
              f"{len(y_te)} test images through it on {sim}")
        write_design(tmp / "design", cfg, model.layers, model=model)
        figures["rtl"] = _rtl(tmp, sim, codes, out, y_te, figures)
        if synth:
            _step("synthesizing the engine: OSU 0.18 um cells (Yosys) and a Lattice ECP5 "
                  "(Yosys, nextpnr)")
            figures["synth"] = _synth(tmp)
        dense_w = sum(l.shape[0] * l.shape[1] for l in model.layers)
        stored = sum(l.matrix.n_weights for l in model.layers)
        figures["compression_ratio"] = dense_w / stored
        bits_dense = sum(l.fmts.weight.bits * l.shape[0] * l.shape[1] for l in model.layers)
        bits_pd = sum(l.fmts.weight.bits * l.matrix.n_weights + l.matrix.index_bits_total
                      for l in model.layers)
        figures["weight_storage_bits"] = {"dense_16bit": bits_dense, "permdiag": bits_pd}
        atomic.write_text(tmp / "figures.json", json.dumps(figures, indent=2) + "\n")
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(
            {"kind": "permdeal-demo", "generator": f"permdeal {__version__}",
             "contents": ["model.npz", "compressed/", "rom/", "design/", "rtl/",
                          *(["synth/"] if (tmp / "synth" / "report.json").is_file() else []),
                          "figures.json"]},
            indent=2) + "\n")

    f = figures
    print()
    print(report.table(["figure", "value"], [
        ["float accuracy, dense", f"{100 * f['float_dense_accuracy']:.1f}%"],
        [f"float accuracy, permuted-diagonal p={p}", f"{100 * f['float_pd_accuracy']:.1f}%"],
        ["golden fixed-point accuracy (16-bit)", f"{100 * f['golden_fixed_accuracy']:.1f}%"],
        ["compression ratio (weights)", f"{f['compression_ratio']:.2f}x"],
        ["weight storage, dense 16-bit -> PD", f"{bits_dense} -> {bits_pd} bits"],
        [f"cycles per image ({pes} PE x {lanes} lanes)", f"{f['cycles_per_image']:.1f}"],
        ["lane utilization (compute phase)", f"{100 * f['lane_utilization']:.1f}%"],
        ["ROM images", f"{f['rom_images']} (read back and verified)"],
        ["RTL accuracy" + (f" ({f['rtl']['sim']})" if "sim" in f["rtl"] else ""),
         f"{100 * f['rtl']['accuracy']:.1f}%, {f['rtl']['images_equal_to_golden']} of "
         f"{f['rtl']['images']} images equal to golden" if "accuracy" in f["rtl"]
         else "skipped (no simulator)"],
        *_synth_rows(f.get("synth")),
    ], aligns="ll"))
    print(f"\nwrote {output}/ in {time.perf_counter() - t0:.1f} s")
    return 0
