"""``permdeal compare --model CNN``: a conv network dense, permuted-diagonal and SmartDeal
(docs/design.md 14.7).

The float network (``.npz`` or ``.onnx``) is compressed three ways by
:func:`permdeal.golden.conv_train.compare_formats`: dense (16-bit), PD at ``--p`` (every layer
with at least ``p`` inputs per kernel position; narrower ones dense,
:func:`~permdeal.golden.conv_model.block_sizes`) and SmartDeal (``--S``, ``--E``, ``--b-bits``),
each network's FC layer after a convolution taking the feature map in its engine's order (PD
and dense ``(H, W, C)``, SmartDeal ``(C, H, W)``), its structure over those columns
(docs/design.md 14.3; ``settings.flatten`` in the JSON, per format).
With ``--data digits`` PD and SmartDeal are fine-tuned ``--finetune-epochs`` on the digits
training split with their structure kept, and accuracies are measured on the 450 test images,
float and bit-exact fixed point; without it, formats are fitted to ``--vectors`` random inputs
and there is no accuracy. Per layer and format: weights (dense and stored), weight storage in
bits and MACs per image (:meth:`~permdeal.golden.conv_model.ConvNet.report`: a conv layer's
weights times its output pixels). ``-o DIR`` writes ``compare.json``, ``compare.txt`` and the
compressed-model folders ``permdiag/`` and ``smartdeal/`` of the compared networks, each read
back and run against the network in memory on every test (or random) input.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from permdeal import atomic, checks
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden import smartdeal as sd
from permdeal.golden.conv_model import block_sizes
from permdeal.golden.conv_train import compare_formats
from permdeal.golden.model import sha256_file
from permdeal.golden.train import load_digits_split
from permdeal.tables import pct, table

#: The options of ``compare`` a conv network takes (the others are the FC comparison's).
CONV_OPTIONS = ("model", "data", "finetune_epochs", "vectors", "input_density", "seed", "p", "S",
                "E", "b_bits", "json", "output", "force", "jobs", "dask")
FORMATS = {"dense": "dense", "permdiag": "PD", "smartdeal": "SmartDeal"}
FOLDERS = ("permdiag", "smartdeal")
FLATTEN_TEXT = {"hwc": "(H, W, C)", "chw": "(C, H, W)"}
RULE = ("weights: dense O*C*KH*KW (conv) or out*in (FC); stored: PD the weights inside the "
        "matrices of its blocks, SmartDeal and dense every weight (SmartDeal rebuilds them). "
        "Storage: dense 16 bits a weight; PD p 16-bit weights and ceil(log2 p) index bits per "
        "p x p block, padding included; SmartDeal E + 2 bits per Ce code and b_bits per B code. "
        "MACs per image: the stored weights times the output pixels OH*OW of a conv layer (once "
        "for an FC layer), zero inputs not skipped.")


def is_conv_network(layers: list) -> bool:
    return any(l.is_conv for l in layers)


def _check_options(opts: Any, defaults: Any) -> None:
    for f in dataclasses.fields(opts):
        if f.name not in CONV_OPTIONS and getattr(opts, f.name) != getattr(defaults, f.name):
            flag = "--" + f.name.replace("_", "-")
            if f.name == "output":
                flag = "-o"
            raise PermdealError(f"{flag} does not apply to a conv network (compare runs it "
                                "dense, PD and SmartDeal, in the golden model)")


def _inputs(opts, layers, seed):
    """``(calibration inputs, data or None, what the inputs are)``."""
    n_in = layers[0].n_in
    if opts.data not in (None, "digits", "none"):
        raise PermdealError(f"--data must be digits or none, not {opts.data!r}")
    if opts.data == "digits":
        for flag, v in (("--vectors", opts.vectors), ("--input-density", opts.input_density)):
            if v is not None:
                raise PermdealError(f"{flag} sets random inputs, but the inputs are the digits "
                                    "images with --data digits")
        data = load_digits_split(seed)
        if n_in != data[0].shape[1] or layers[-1].n_out != 10:
            raise PermdealError(f"--data digits needs a model of {data[0].shape[1]} inputs and "
                                f"10 outputs; {opts.model} takes {n_in} and gives "
                                f"{layers[-1].n_out}")
        return data[0], data, f"digits, {len(data[2])} test images"
    vectors = 4 if opts.vectors is None else integer(opts.vectors, "--vectors", 1)
    from .compare import _fraction, random_inputs
    dens = 0.5 if opts.input_density is None else _fraction(opts.input_density,
                                                            "--input-density")
    x = random_inputs(n_in, dens, vectors, np.random.default_rng(seed))
    return x, None, f"no data set; {vectors} random input(s) at density {dens:g} (seed {seed})"


def compare_conv(opts: Any, layers: list, defaults: Any) -> tuple[dict, dict, np.ndarray]:
    """``(results (the JSON), compare_formats' dict, the inputs the networks are checked on)`` of
    comparing the conv network ``layers`` with the options ``opts``
    (``api.compare.CompareOptions``; ``defaults`` its defaults)."""
    _check_options(opts, defaults)
    seed = checks.seed(opts.seed, "--seed")
    p = integer(opts.p, "--p", 1)
    S, E = integer(opts.S, "--S", 1, sd.MAX_S), integer(opts.E, "--E", *sd.E_RANGE)
    b_bits = integer(opts.b_bits, "--b-bits", *sd.B_BITS_RANGE)
    ft = integer(opts.finetune_epochs, "--finetune-epochs", 0)
    X, data, what = _inputs(opts, layers, seed)
    ps = block_sizes(layers, p)
    t0 = time.perf_counter()
    res = compare_formats(layers, X, ps, data=data, finetune_epochs=ft, seed=seed, S=S, E=E,
                          b_bits=b_bits)
    settings = {"dense": "16-bit", "permdiag": f"p={','.join(map(str, ps))}",
                "smartdeal": f"S={S} E={E} B {b_bits}-bit"}
    formats = []
    for key, r in res.items():
        rows = r["net"].report()
        formats.append({
            "format": key, "label": FORMATS[key], "setting": settings[key], "layers": rows,
            "total": {k: sum(l[k] for l in rows) for k in ("weights_dense", "weights_stored",
                                                             "macs_dense", "macs", "bits")},
            "accuracy": None if data is None else {
                "projected": r["projected"], "float": r["float"], "fixed": r["fixed"],
                "finetuned": key != "dense" and ft > 0}})
    shape = "x".join(map(str, layers[0].conv.in_shape)) if layers[0].is_conv else layers[0].n_in
    title = (f"{opts.model} (conv network, {len(layers)} layers, input {shape}); {what}"
             + (f"; PD and SmartDeal fine-tuned {ft} epoch(s), seed {seed}"
                if data is not None and ft else ""))
    return {"workload": {"kind": "conv", "title": title,
                         "layers": [{"name": l.name, "kind": "conv" if l.is_conv else "fc",
                                     "weight_shape": list(l.weight.shape)} for l in layers]},
            "settings": {"p": ps, "S": S, "E": E, "b_bits": b_bits, "finetune_epochs": ft,
                         "seed": seed, "fixed_point": "16-bit weights and biases, 16-bit "
                         "activations fitted to the calibration inputs",
                         "flatten": {k: v["net"].flatten for k, v in res.items()}},
            "rule": RULE, "formats": formats,
            "seconds": round(time.perf_counter() - t0, 1)}, res, X if data is None else data[2]


def text(out: dict[str, Any]) -> str:
    """The printed report: per layer and format the counts, then the totals and accuracies."""
    fmts = out["formats"]
    rows = []
    for i, l in enumerate(fmts[0]["layers"]):
        for f in fmts:
            c = f["layers"][i]
            rows.append([l["name"], l["kind"], "x".join(map(str, l["weight_shape"])), f["label"],
                         f"{c['weights_stored']:,}", f"{c['bits']:,}", f"{c['macs']:,}"])
    lines = [f"permdeal compare: {out['workload']['title']}", "", "per layer",
             table(["layer", "kind", "weights", "format", "stored", "storage bits",
                    "MACs/image"], rows, "llllrrr")]
    dense = fmts[0]["total"]
    has_acc = fmts[0]["accuracy"] is not None
    rows = []
    for f in fmts:
        t, a = f["total"], f["accuracy"]
        row = [f["label"], f["setting"], f"{t['bits']:,}", f"{dense['bits'] / t['bits']:.2f}x",
               f"{t['macs']:,}", f"{dense['macs'] / t['macs']:.2f}x"]
        if has_acc:
            row += [pct(a["projected"]), pct(a["float"]), pct(a["fixed"])]
        rows.append(row)
    head = ["format", "setting", "storage bits", "vs dense", "MACs/image", "vs dense"]
    if has_acc:
        head += ["before fine-tuning", "float", "fixed point"]
    lines += ["", "total", table(head, rows, "ll" + "r" * (len(head) - 2)),
              f"fixed point: {out['settings']['fixed_point']}, bit-exact",
              "the FC layer after a convolution takes the feature map in "
              + ", ".join(f"{FLATTEN_TEXT[o]} order ({k})"
                          for k, o in out["settings"]["flatten"].items()), "",
              f"counted: {out['rule']}"]
    if "folders" in out:
        lines.append("")
        lines += [f"{k}/: read back, {v['equal']}/{v['inputs']} outputs equal to the network in "
                  "memory" for k, v in out["folders"].items()]
    return "\n".join(lines) + "\n"


def _write_folders(tmp: Path, res: dict, X: np.ndarray, source: dict) -> dict:
    """Write each compressed network's folder and read it back: per folder how many of the
    inputs ``X`` give outputs equal, bit for bit, to the network in memory's."""
    from permdeal.api.models import load
    out = {}
    for key in FOLDERS:
        net = res[key]["net"]
        folder = tmp / key
        folder.mkdir()
        net.write(folder, source)
        back = load(folder)
        codes, _ = net.quantize_input(X)
        equal = np.all(back.forward(codes) == net.forward(codes), axis=1)
        out[key] = {"equal": int(equal.sum()), "inputs": len(X)}
    return out


def run(opts: Any, layers: list, defaults: Any) -> int:
    """``permdeal compare`` of a conv network: compute, print, write; the exit code."""
    inputs = [opts.model]
    if opts.plot is not None:
        raise PermdealError("--plot draws the FC comparison; a conv network's comparison has "
                            "no plot (use --json or -o)")
    if opts.json:
        atomic.check_new_file(opts.json, opts.force, inputs)
    source = {"file": Path(opts.model).name, "sha256": sha256_file(opts.model)}
    if opts.output is not None:
        with atomic.output_dir(opts.output, inputs=inputs) as tmp:
            out, res, X = compare_conv(opts, layers, defaults)
            out["folders"] = _write_folders(Path(tmp), res, X, source)
            txt = text(out)
            atomic.write_text(Path(tmp) / "compare.json", json.dumps(out, indent=1) + "\n")
            atomic.write_text(Path(tmp) / "compare.txt", txt)
        print(txt, end="")
        print(f"wrote {opts.output}/ (compare.json, compare.txt, "
              f"{', '.join(f + '/' for f in FOLDERS)})")
        return 0
    out, _, _ = compare_conv(opts, layers, defaults)
    txt = text(out)
    print(txt, end="")
    if opts.json:
        atomic.write_text(opts.json, json.dumps(out, indent=1) + "\n")
        print(f"wrote {opts.json}")
    return 0
