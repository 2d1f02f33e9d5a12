"""``permdeal demo --cnn``: the digits CNN from training to the engine's RTL (issue 18).

Trains the digits CNN of ``golden.conv_train.init_cnn`` dense (conv 3x3 1->8, conv 3x3 8->16,
max pool 2x2, FC 256->10), writes it as the ONNX file ``torch.onnx.export`` would and imports it
back as a user's model, fine-tunes it permuted-diagonal (``p`` = 1, 4, 4: the one-channel first
layer dense) and SmartDeal with their structure kept (``golden.conv_train.compare_formats``),
writes both compressed-model folders, generates the PermDNN engine for the PD network (its conv
dataflow, docs/design.md 15) and the SmartDeal engine for the SmartDeal network (its conv dataflow,
docs/design.md 16) with as many MAC lanes, and runs the test images through both, output for
output against the golden model and cycle for cycle against the cycle models.
"""

import json
import time
from pathlib import Path

import numpy as np

from permdeal import __version__, atomic
from permdeal.gen.design import write_design
from permdeal.gen.smartdeal_engine_design import write_engine_design
from permdeal.golden import conv_train, onnx_export, onnx_import
from permdeal.golden.conv_walk import engine_cycles, engine_pools, engine_walks
from permdeal.golden import smartdeal_engine_cycles as sec
from permdeal.golden.cycles import EngineConfig
from permdeal.golden.train import load_digits_split
from permdeal.tables import table
from permdeal.verif.sim import simulate
from permdeal.verif.smartdeal_engine_sim import simulate_design as simulate_sd

from .demo import _rtl_status, _run_rtl, _step

#: Block sizes of the PD network, per layer (the one-channel first layer dense).
P = (1, 4, 4)


def run(output: str | Path, seed: int = 0, pes: int = 4, lanes: int = 2,
        sim: str = "verilator", epochs: int = 15, finetune_epochs: int = 20,
        images: int | None = None) -> int:
    """Run the CNN demo into the new folder ``output``; ``images`` limits the test images run
    through the RTL (default all 450). Returns the exit status."""
    t0 = time.perf_counter()
    cfg = EngineConfig(n_pe=pes, lanes=lanes)
    X_tr, y_tr, X_te, y_te = data = load_digits_split(seed)
    figures = {"seed": seed, "p": list(P), "engine": cfg.to_json()}
    with atomic.output_dir(output) as tmp:
        _step(f"training the digits CNN dense ({epochs} epochs on {len(y_tr)} images)")
        dense = conv_train.train_cnn(seed, epochs)
        _step("writing it as ONNX (what torch.onnx.export writes) and importing it back")
        onnx_export.export(dense, tmp / "cnn.onnx")
        layers = onnx_import.import_model(tmp / "cnn.onnx")
        _step(f"dense, permuted-diagonal (p = {', '.join(map(str, P))}) and SmartDeal, fine-tuned "
              f"{finetune_epochs} epochs with the structure kept, 16-bit fixed point")
        res = conv_train.compare_formats(layers, X_tr, P, data=data,
                                         finetune_epochs=finetune_epochs, seed=seed)
        figures["accuracy"] = {k: {"float": v["float"], "fixed": v["fixed"],
                                   "projected": v["projected"]} for k, v in res.items()}
        pd, sd = res["permdiag"]["net"], res["smartdeal"]["net"]
        for name, net in (("permdiag", pd), ("smartdeal", sd)):
            (tmp / name).mkdir()
            net.write(tmp / name)
        print(pd.table())

        codes, _ = pd.quantize_input(X_te)
        n = len(codes) if images is None else min(images, len(codes))
        codes, labels = codes[:n], y_te[:n]
        golden = pd.forward(codes)
        runs = [engine_cycles(pd, x, cfg) for x in codes]
        figures["cycles_per_image"] = float(np.mean([r.total for r in runs]))
        figures["lane_utilization"] = float(np.mean([r.utilization for r in runs]))
        figures["layer_cycles"] = {l.name: float(np.mean([r.layers[i].total for r in runs]))
                                   for i, l in enumerate(pd.layers)}
        _step(f"generating the PermDNN engine ({pes} PE x {lanes} lanes, its conv dataflow) and "
              f"running {n} test images through it on {sim}")
        write_design(tmp / "design", cfg, pd.matrix_layers(), model=pd, walks=engine_walks(pd),
                     pools=engine_pools(pd))
        figures["rtl"] = _run_rtl("PD engine RTL", simulate, tmp / "design", tmp / "rtl", sim,
                                  codes, golden, labels)
        sd_codes, _ = sd.quantize_input(X_te[:n])
        macs = pes * lanes
        sd_runs = sec.model_cycles(sd, sd_codes, macs)
        figures["smartdeal"] = {
            "lanes": macs, "cycles_per_image": float(np.mean([r.total for r in sd_runs])),
            "lane_utilization": float(np.mean([r.utilization for r in sd_runs])),
            "layer_cycles": {l.name: float(np.mean([r.layers[i].compute for r in sd_runs]))
                             for i, l in enumerate(sd.layers)}}
        _step(f"generating the SmartDeal engine ({macs} MAC lanes, its conv dataflow) and "
              f"running {n} test images through it on {sim}")
        write_engine_design(tmp / "smartdeal_design", sd, macs, pes=pes)
        figures["smartdeal"]["rtl"] = _run_rtl(
            "SmartDeal engine RTL", simulate_sd, tmp / "smartdeal_design", tmp / "smartdeal_rtl",
            sim, sd_codes, sd.forward(sd_codes), labels)
        figures["seconds"] = round(time.perf_counter() - t0, 1)
        atomic.write_text(tmp / "figures.json", json.dumps(figures, indent=2) + "\n")
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(
            {"kind": "permdeal-demo-cnn", "generator": f"permdeal {__version__}",
             "contents": ["figures.json", "cnn.onnx", "permdiag/", "smartdeal/", "design/",
                          "rtl/", "smartdeal_design/", "smartdeal_rtl/"]}, indent=2) + "\n")

    print()
    print(table(["figure", "value"], summary_rows(figures), aligns="ll"))
    print(f"\nwrote {output}/ in {time.perf_counter() - t0:.1f} s")
    return _rtl_status(output, [("PD engine", figures["rtl"], "rtl"),
                                ("SmartDeal engine", figures["smartdeal"]["rtl"],
                                 "smartdeal_rtl")])


def summary_rows(f: dict) -> list[list[str]]:
    """The demo's figures as the rows it prints."""
    acc = f["accuracy"]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"
    rows = [[f"accuracy, {name} (float / 16-bit fixed point)",
             f"{pct(acc[key]['float'])} / {pct(acc[key]['fixed'])}"]
            for key, name in (("dense", "dense"), ("permdiag", "PD"),
                              ("smartdeal", "SmartDeal"))]
    e, s = f["engine"], f["smartdeal"]
    for what, rtl, cyc, util, layers in (
            (f"PD engine ({e['n_pe']} PE x {e['lanes']} lanes)", f["rtl"], f["cycles_per_image"],
             f["lane_utilization"], f["layer_cycles"]),
            (f"SmartDeal engine ({s['lanes']} MAC lanes)", s["rtl"], s["cycles_per_image"],
             s["lane_utilization"], s["layer_cycles"])):
        if "skipped" in rtl:
            rows.append([f"{what} RTL", f"skipped: {rtl['skipped']}"])
        else:
            rows.append([f"{what} RTL ({rtl['sim']})",
                         f"{pct(rtl['accuracy'])}; {rtl['images_equal_to_golden']} of "
                         f"{rtl['images']} images equal to golden, output for output; cycles "
                         f"equal to the cycle model: {'yes' if rtl['cycles_match_model'] else 'NO'}"])
        rows += [[f"{what}: cycles per image",
                  f"{cyc:.1f} (" + ", ".join(f"{k} {v:.0f}" for k, v in layers.items()) + ")"],
                 [f"{what}: lane utilization (compute phase)", pct(util)]]
    return rows
