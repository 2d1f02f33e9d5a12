"""The ``permdeal`` command line: the parser of every sub-command (:func:`build_parser`) and
:func:`main`. The commands (:mod:`.commands`) only parse, call the API and print; user errors are
:class:`~permdeal.errors.PermdealError`, printed as one line with exit status 2. Nothing imports
this package."""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import threading
import time
import warnings

from permdeal import __version__, limits, methods
from permdeal import executor as _executor
from permdeal.api import bench as bench_api
from permdeal.api import compare as compare_api
from permdeal.api.settings import ARCHS, GEN_SETTINGS, VERIFY_SHAPE
from permdeal.errors import PermdealError, Terminated
from permdeal.golden.crossbar import CrossbarConfig
from permdeal.golden.cycles import DEFAULT_SCAN_WIDTH, MULTIPLIERS
from permdeal.golden.workloads import EIE, EIE_LAYERS
from permdeal.methods.energy import WEIGHT_MEMORIES
from permdeal.synth import block as _block
from permdeal.synth import ecp5 as _ecp5
from permdeal.synth import flow as _flow
from permdeal.synth import scripts as _scripts
from permdeal.verif.runner import SIMULATORS
from permdeal.verif.verify import BENCHES

from . import args, commands

DESCRIPTION = "RTL generator and verification flow for PermDNN and SmartDeal accelerators"


class Parser(argparse.ArgumentParser):
    """argparse's parser, with its errors as one line (``PROG: error: MESSAGE (see PROG
    --help)``, exit status 2) like every other error of the command line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def large_flag(p):
    """``--allow-large``: lift the limits of :mod:`permdeal.limits` on the work a command
    starts."""
    p.add_argument(limits.FLAG, dest="allow_large", action="store_true",
                   help=f"lift the limits on the work a run may start (by default at most "
                   f"{limits.MAX_LANES} lanes, a scan width of {limits.MAX_SCAN_WIDTH}, arrays "
                   f"of {limits.MAX_ARRAY_BYTES >> 30} GiB, simulations of an estimated "
                   f"{limits.MAX_SIM_SECONDS // 3600} h)")


def executor_flags(p, what, jobs=True):
    """``-j N`` (local processes) and ``--dask ADDRESS`` (a Dask cluster instead) of a command
    whose ``what`` run as independent tasks (:mod:`permdeal.executor`)."""
    if jobs:
        p.add_argument("-j", "--jobs", type=args.positive, default=1,
                       help=f"{what} run in parallel on this machine (default 1)")
    p.add_argument("--dask", metavar="tcp://HOST:PORT", help=f"run the {what} on the Dask "
                   f"cluster of this scheduler instead (default: ${_executor.ENV} when set)")


def method_flags(p):
    """The compression settings of every registered method, as flags (``--p``, ``--S``, ...);
    one flag per setting name, whatever methods share it."""
    seen = set()
    for m in methods.methods():
        for o in m.options:
            if o.name in seen:
                continue
            seen.add(o.name)
            p.add_argument(o.flag, dest=o.name, type=args.arg(o.parse), help=o.help)


def design_flags(p, shape_default="1024x1024",
                 model_help="compressed-model folder: its layers, and ROM images in rom/"):
    """The settings of a design (:data:`GEN_SETTINGS` but ``name`` and ``output``) as flags:
    gen's, shared by verify and synth."""
    p.add_argument("--config", metavar="FILE", help="settings from a TOML or JSON file (the flags' "
                   "names); flags override them")
    p.add_argument("--pes", type=args.positive, help="number of PEs")
    p.add_argument("--lanes", type=args.positive, help="multiplier lanes per PE")
    p.add_argument("--scan-width", type=args.positive, help="activations the detector scans per "
                   f"cycle (default {DEFAULT_SCAN_WIDTH})")
    p.add_argument("--multiplier", choices=MULTIPLIERS,
                   help="the lanes' multipliers: native (the Verilog '*' in two half products; "
                   "default), booth (radix-4 Booth rows and a Dadda tree in gates: smaller and "
                   "faster as standard cells) or dsp (registered operands and the whole '*' into "
                   "a registered product: an FPGA's DSP block with its own registers, for "
                   "--target ecp5)")
    p.add_argument("--groups", type=args.groups, help="lane groups K: 1 (default), a power of two that divides "
                   "--pes, one per layer separated by commas (e.g. 2,4,16: the engine has the "
                   "largest, a layer with fewer merges groups), or auto (per layer, the counts "
                   "with the fewest cycles of the cycle model). Each group of pes/K PEs takes "
                   "every K-th input block of a layer with an issue path of its own, K non-zero "
                   "inputs issued per cycle (docs/design.md 4.2); a layer with more than one "
                   "group needs the block size p of the layer before it")
    p.add_argument("--model", help=model_help)
    p.add_argument("--shape", help="without --model: layer shape(s) OUTxIN[,OUTxIN...] "
                   f"(default {shape_default})")
    p.add_argument("--p", help="without --model: block size, or one per layer (default 8)")
    for fmt in ("act", "weight", "bias", "out"):
        p.add_argument(f"--{fmt}-format", help=f"without --model: {fmt} format BITS:FRAC "
                       f"(default {GEN_SETTINGS[fmt + '_format'][1]})")
    p.add_argument("--relu", action="store_true", default=None,
                   help="without --model: ReLU after the last layer too")
    smartdeal_flags(p)


def smartdeal_flags(p):
    """``--arch`` and ``--batch``: a SmartDeal model's hardware (gen, synth, cycles)."""
    p.add_argument("--arch", choices=ARCHS, help="a SmartDeal --model's hardware: engine "
                   "(default: the SmartDeal engine, --pes x --lanes MAC lanes, the multipliers "
                   "of a PermDNN engine of that size) or units (the chain of layer units, one "
                   "per layer; --lanes then each shift-add unit's lanes, default S)")
    p.add_argument("--batch", type=args.positive, help="SmartDeal engine: input vectors in "
                   "flight (default 1; only 1 so far)")


def build_parser():
    ap = Parser(prog="permdeal", description=DESCRIPTION)
    ap.add_argument("--version", action="version", version=f"permdeal {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("import", help="import an ONNX model as a float model (.npz): Conv, Gemm, "
                       "MatMul + Add, Relu, pooling, Flatten, BatchNormalization folded")
    p.add_argument("model", help="the ONNX file")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz",
                   help="the float model to write")
    p.add_argument("--force", action="store_true", help="overwrite MODEL.npz if it exists")
    p.set_defaults(func=commands.cmd_import)

    p = sub.add_parser("compress", help="compress a float model (.npz or .onnx) with a "
                       "registered method (permuted-diagonal, SmartDeal, ...)")
    p.add_argument("model", help="float model .npz (NAME.weight (out x in) and NAME.bias "
                   "arrays), or an ONNX file (.onnx, imported as permdeal import does)")
    names = methods.names(compressing=True)
    p.add_argument("--method", choices=names, default="permdiag",
                   help=f"compression method, one of {', '.join(names)} (default permdiag); "
                   "each takes its own settings below")
    method_flags(p)
    p.add_argument("-o", "--output", required=True, help="output folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--act-format", type=args.number_format, help="activation format BITS:FRAC for every layer")
    p.add_argument("--act-bits", type=args.bits,
                   help="activation width; its fraction bits are 8, or fitted with --calibrate")
    g.add_argument("--calibrate", metavar="X.npy",
                   help="float inputs (batch x in) to fit every layer's activation format to")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weight-format", type=args.number_format, help="fixed weight format BITS:FRAC")
    g.add_argument("--weight-bits", type=args.bits, default=16,
                   help="weight width, fraction bits fitted per layer (default 16)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bias-format", type=args.number_format, help="fixed bias format BITS:FRAC")
    g.add_argument("--bias-bits", type=args.bits, default=16,
                   help="bias width, fraction bits fitted per layer (default 16)")
    p.add_argument("--relu-last", action="store_true", help="apply ReLU after the last layer too")
    p.add_argument("--allow-saturation", action="store_true",
                   help="accept weights or biases that saturate in a fixed format")
    p.set_defaults(func=commands.cmd_compress)

    p = sub.add_parser("rom", help="write the ROM images of a compressed model (per PE and lane "
                       "for permuted-diagonal, per layer for SmartDeal)")
    p.add_argument("model", help="compressed-model folder (from permdeal compress)")
    p.add_argument("--pes", type=args.positive, help="permdiag: number of PEs (required there)")
    p.add_argument("--lanes", type=args.positive, help="permdiag: multiplier lanes per PE (required "
                   "there)")
    p.add_argument("--scan-width", type=args.positive,
                   help=f"permdiag: activations the detector scans per cycle (default "
                   f"{DEFAULT_SCAN_WIDTH})")
    p.add_argument("--groups", type=args.groups,
                   help="permdiag: lane groups, a power of two that divides --pes, one per "
                   "layer separated by commas, or auto (per layer; as gen; default 1)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    large_flag(p)
    p.set_defaults(func=commands.cmd_rom)

    p = sub.add_parser("cycles", help="cycle model: exact engine cycles for given inputs (a "
                       "SmartDeal model: the SmartDeal engine's, or with --arch units its layer "
                       "units' cycles per layer and per input)")
    p.add_argument("model", help="compressed-model folder")
    p.add_argument("--pes", type=args.positive, help="permdiag: number of PEs (required there); "
                   "smartdeal engine: PEs (default 1)")
    p.add_argument("--lanes", type=args.positive, help="permdiag: multiplier lanes per PE (required "
                   "there); smartdeal engine: MAC lanes per PE (required); smartdeal --arch "
                   "units: the shift-add unit's lanes, 1 to S (default S, as gen)")
    p.add_argument("--scan-width", type=args.positive, help="permdiag: activations the detector "
                   f"scans per cycle (default {DEFAULT_SCAN_WIDTH})")
    p.add_argument("--groups", type=args.groups,
                   help="permdiag: lane groups, a power of two that divides --pes, one per "
                   "layer separated by commas, or auto (per layer; as gen; default 1)")
    p.add_argument("--inputs", metavar="X.npy", help="inputs (batch x in): float values, or "
                   "integer codes of the input format (required for permdiag and the SmartDeal "
                   "engine; smartdeal --arch units: optional, the count does not depend on them)")
    smartdeal_flags(p)
    large_flag(p)
    p.set_defaults(func=commands.cmd_cycles)

    p = sub.add_parser("gen", help="generate the engine's Verilog, ROM images and manifest (for "
                       "a SmartDeal --model: the SmartDeal engine, or its chain of layer units "
                       "with --arch units)")
    design_flags(p, model_help="compressed-model folder: its layers, and ROM images in rom/; a "
                 "SmartDeal model gives the SmartDeal engine of --pes x --lanes MAC lanes, or "
                 "with --arch units its chain of layer units (then --lanes is each shift-add "
                 "unit's lanes, default S, and --pes does not apply)")
    p.add_argument("--name", help="Verilog module name of the engine (default permdeal_engine)")
    p.add_argument("-o", "--output", help="output folder")
    large_flag(p)
    p.set_defaults(func=commands.cmd_gen)

    p = sub.add_parser("sim", help="run a generated design on inputs in a simulator, against "
                       "the golden model")
    p.add_argument("--design", required=True, help="design folder (from permdeal gen)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="inputs (batch x in): float values, or integer codes of the input format")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--images", metavar="DIR", help="ROM images (default: the design's rom/; a "
                   "SmartDeal engine design takes none, its codes are in its Verilog)")
    p.add_argument("--seed", type=args.seed, help="cocotb random seed (default: a fresh one, logged)")
    p.add_argument("--waves", action="store_true", help="record a waveform in the build folder")
    p.add_argument("-o", "--output", required=True, help="results folder")
    large_flag(p)
    p.set_defaults(func=commands.cmd_sim)

    p = sub.add_parser("power", help="energy of a generated design (PermDNN engine or SmartDeal "
                       "design) on real inputs: "
                       "activity from simulation, logic power by OpenSTA, memories by a model")
    p.add_argument("--design", required=True, help="design folder (from permdeal gen)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="inputs (batch x in): float values, or integer codes of the input format")
    p.add_argument("--clock-mhz", type=float, metavar="MHZ",
                   help="clock of the figures (default: the ASIC Fmax OpenSTA measures)")
    p.add_argument("--gate-check", type=int, default=0, metavar="N",
                   help="also simulate the gate-level netlist on the first N inputs and compare "
                        "its logic energy with the RTL-activity figure (slow to build; default 0)")
    p.add_argument("--seed", type=args.seed, help="cocotb random seed (default: a fresh one, logged)")
    p.add_argument("-o", "--output", required=True, help="report folder")
    p.set_defaults(func=commands.cmd_power)

    p = sub.add_parser("bench-engine", help="RTL flow benchmark: generation, simulator build and "
                       "speed, RTL against the cycle model, utilization, for several PE counts")
    p.add_argument("--pes", type=args.int_list, default=[1, 8, 32], help="PE counts (default 1,8,32)")
    p.add_argument("--lanes", type=args.positive, default=8, help="lanes per PE (default 8)")
    p.add_argument("--shape", default="1024x1024", help="the layer OUTxIN (default 1024x1024)")
    p.add_argument("--p", type=args.positive, default=8, help="block size (default 8)")
    p.add_argument("--density", type=float, default=0.35, help="input density (default 0.35)")
    p.add_argument("--batch", type=args.positive, default=4, help="inputs per run (default 4)")
    p.add_argument("--sim", choices=["verilator", "icarus", "both"], default="both")
    p.add_argument("--workdir", default="build/bench-engine", help="designs and results folder")
    p.add_argument("--seed", type=args.seed, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    executor_flags(p, "engines (one per PE count)")
    p.set_defaults(func=commands.cmd_bench_engine)

    p = sub.add_parser("verify", help="run the cocotb regression for one configuration "
                       "(JUnit XML and a JSON summary)")
    design_flags(p, shape_default=VERIFY_SHAPE,
                 model_help="compressed-model folder (default: random weights for --shape)")
    p.add_argument("--sim", choices=["verilator", "icarus", "both"],
                   help="simulator(s) (default both; icarus with --random-configs)")
    p.add_argument("--tests", help="comma-separated subset of: " + ", ".join(BENCHES)
                   + " (default all)")
    p.add_argument("--seed", type=args.seed, help="random seed (default: a fresh one, printed)")
    p.add_argument("--waves", action="store_true", help="record waveforms in the build folders")
    executor_flags(p, "benches (or random configurations)")
    p.add_argument("--random-configs", type=args.positive, metavar="N",
                   help="instead: N legal configurations drawn from the seed, each run on the "
                   "engine bench (default simulator there: icarus)")
    p.add_argument("-o", "--output", help="results folder")
    large_flag(p)
    p.set_defaults(func=commands.cmd_verify, name=None)

    p = sub.add_parser("synth", help="synthesize a design: generic gates, OSU 0.18 um ASIC area, "
                       "ECP5 resources and Fmax; or sweep a parameter")
    p.add_argument("--design", help="design folder (from permdeal gen: a PermDNN engine or a "
                   "SmartDeal design); without it, the design is generated from the gen settings "
                   "below into OUT/design")
    p.add_argument("--target", default="generic",
                   help="; ".join(f"{k}: {v}" for k, v in _scripts.TARGETS.items())
                   + " (a comma-separated list runs several; default generic)")
    p.add_argument("--sweep", metavar="PARAM=V1,V2,...", help="one design per value of pes, "
                   "lanes or p (sweep.csv, sweep.json, sweep.png)")
    executor_flags(p, "--sweep's points")
    p.add_argument("--block", choices=list(_block.BLOCKS), help="synthesize one generated "
                   "block on its own instead of a design: shift_add, the SmartDeal shift-add "
                   "unit (bit-serial); rebuild, the SmartDeal engine's bit-parallel rebuild "
                   "engine")
    p.add_argument("--block-params", metavar="KEY=V,...", help="the block's parameters (for "
                   "shift_add: S, E, b_bits, weight_bits, shift, lanes; defaults 3, 3, 8, 16, 0, "
                   "S; for rebuild the same but lanes)")
    p.add_argument("--device", help=f"ecp5: the device (default {_ecp5.DEFAULT_DEVICE}): "
                   + ", ".join(_ecp5.DEVICES))
    p.add_argument("--speed", type=int, help="ecp5: speed grade 6, 7 or 8 (default 6)")
    p.add_argument("--target-mhz", type=float,
                   help=f"ecp5: nextpnr's clock target in MHz (default "
                   f"{_flow.ECP5_TARGET_MHZ:g}; Fmax is reported either way)")
    p.add_argument("--seed", type=args.seed, default=1, help="nextpnr seed and placeholder-image seed")
    p.add_argument("--asic-mhz", type=float, help="asic: the clock (MHz) OpenSTA checks and the "
                   f"mapping aims at (default {_flow.ASIC_TARGET_MHZ:g}); a SmartDeal design's "
                   "throughput is stated at it")
    p.add_argument("--sram-um2-per-bit", type=float, help="asic: SRAM area model of the weight "
                   "memories (default: EIE's 45 nm figure scaled to 0.18 um, see the report)")
    p.add_argument("--liberty", help="asic: the liberty file (default: the OSU 0.18 um "
                   "library of Debian's qflow-tech-osu018)")
    p.add_argument("--flat", action="store_true", help="flatten before synthesis (the check on "
                   "hierarchical synthesis; slower)")
    design_flags(p, model_help="compressed-model folder (as gen): a SmartDeal model gives the "
                 "SmartDeal engine, or with --arch units its chain of layer units, --lanes then "
                 "each shift-add unit's lanes (default S)")
    p.add_argument("--name", help="engine module name (as gen)")
    p.add_argument("-o", "--output", help="report folder")
    large_flag(p)
    p.set_defaults(func=commands.cmd_synth)

    p = sub.add_parser("train", help="train an MLP (or with --cnn the digits CNN) on "
                       "scikit-learn's handwritten digits (.npz out, or .onnx with --cnn)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz")
    p.add_argument("--cnn", action="store_true",
                   help="the digits CNN (conv3x3 1->8, conv3x3 8->16, max pool 2x2, FC 256->10), "
                   "trained dense; MODEL.onnx writes it as torch.onnx.export would")
    p.add_argument("--hidden", type=args.int_list, default=None,
                   help="hidden sizes (default 128,64)")
    p.add_argument("--p", type=args.block_sizes, default=None,
                   help="block size(s); > 1 projects the dense model and fine-tunes it")
    p.add_argument("--epochs", type=args.positive, default=None,
                   help="training epochs (default 40, with --cnn 15)")
    p.add_argument("--finetune-epochs", type=args.positive, default=30)
    p.add_argument("--seed", type=args.seed, default=0)
    p.add_argument("--force", action="store_true", help="overwrite MODEL.npz if it exists")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("accuracy", help="digits accuracy: dense against permuted-diagonal per p")
    p.add_argument("--p", type=args.int_list, default=[2, 4, 8], help="block sizes (default 2,4,8)")
    p.add_argument("--hidden", type=args.int_list, default=[128, 64], help="hidden sizes (default 128,64)")
    p.add_argument("--dense-last", action="store_true", help="keep the 10-output layer dense")
    p.add_argument("--seed", type=args.seed, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    p.set_defaults(func=commands.cmd_accuracy)

    p = sub.add_parser("eval", help="golden fixed-point accuracy of a compressed model")
    p.add_argument("model", help="compressed-model folder")
    p.add_argument("--inputs", metavar="X.npy", help="inputs (default: the digits test split)")
    p.add_argument("--labels", metavar="Y.npy", help="class index of every input")
    p.add_argument("--seed", type=args.seed, help="digits split seed, without --inputs "
                   "(default 0)")
    p.set_defaults(func=commands.cmd_eval)

    p = sub.add_parser("demo", help="train, compress, generate and simulate a digits network "
                       "(what make demo runs)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                   help="simulator for the RTL run (default verilator)")
    p.add_argument("-o", "--output", help="output folder (default build/demo, with --cnn "
                   "build/demo-cnn)")
    p.add_argument("--cnn", action="store_true", help="the digits CNN instead: trained, written "
                   "as ONNX and imported back, fine-tuned PD (p = 1, 4, 4) and SmartDeal, the PD "
                   "network through the PermDNN engine's RTL and the SmartDeal network through "
                   "the SmartDeal engine's (PES x LANES MAC lanes; their conv dataflows); no "
                   "synthesis")
    p.add_argument("--p", type=args.positive, help="block size (default 4; not with --cnn)")
    p.add_argument("--pes", type=args.positive, default=4, help="PEs (default 4)")
    p.add_argument("--lanes", type=args.positive, default=2, help="lanes per PE (default 2)")
    p.add_argument("--seed", type=args.seed, default=0)
    p.add_argument("--no-synth", action="store_true", help="skip synthesis (area and Fmax)")
    p.set_defaults(func=commands.cmd_demo)

    p = sub.add_parser("check", help="verify a compressed-model, ROM-image or SmartDeal design "
                       "folder against its manifest")
    p.add_argument("folder", help="output folder of permdeal compress, permdeal rom, or permdeal "
                   "gen of a SmartDeal model")
    p.set_defaults(func=commands.cmd_check)

    p = sub.add_parser("bench", help="the benchmark of record: EIE's nine layers on the paper's "
                       "32 PE x 8 lane design (cycle model, validated in RTL), the flow's and the "
                       "golden model's speed")
    bench_flags(p)
    large_flag(p)
    p.set_defaults(func=commands.cmd_bench)

    p = sub.add_parser("compare", help="the compressed formats side by side (dense, PD, EIE, "
                       "block-circulant, SmartDeal, SME) on a model or EIE's layers")
    compare_flags(p)
    large_flag(p)
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("bench-smartdeal", help="SmartDeal figures: a random layer's decomposition, "
                       "digits accuracy, the shift-add unit's cycles and size, the SmartDeal "
                       "engine's cycles against the PermDNN engine's")
    p.add_argument("--parts", default="layer,digits,unit,engine",
                   help="comma-separated parts: layer, digits, unit, engine, hardware (default "
                   "all but hardware: the PermDNN and SmartDeal engines synthesized and "
                   "power-measured side by side, several minutes)")
    p.add_argument("--m", type=args.positive, default=4096, help="random layer outputs (default 4096)")
    p.add_argument("--n", type=args.positive, default=4096, help="random layer inputs (default 4096)")
    p.add_argument("--S", type=args.positive, default=3, help="chunk width S (default 3)")
    p.add_argument("--E", type=args.positive, default=3, help="exponent bits E (default 3)")
    p.add_argument("--b-bits", type=args.positive, default=8, help="bits of the B codes (default 8)")
    p.add_argument("--p", type=args.positive, default=8,
                   help="PD block size of the storage comparison (default 8)")
    p.add_argument("--lanes", type=args.positive, help="shift-add lanes (default S)")
    p.add_argument("--synth", action="store_true",
                   help="also synthesize the shift-add unit (Yosys generic and OSU 0.18 um)")
    p.add_argument("--seed", type=args.seed, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    large_flag(p)
    p.set_defaults(func=commands.cmd_bench_smartdeal)
    return ap


def bench_flags(p):
    """The flags of ``permdeal bench`` on the argparse parser ``p``."""
    d = bench_api.DEFAULTS
    p.add_argument("--parts", default=",".join(bench_api.PARTS),
                   help=f"comma-separated subset of {', '.join(bench_api.PARTS)} (default all)")
    p.add_argument("--layers", help="EIE layers, comma-separated (default all nine: "
                   + ",".join(l.name for l in EIE_LAYERS) + ")")
    p.add_argument("--draws", type=args.positive, default=d["draws"],
                   help=f"random activation vectors per layer for the cycle model (default "
                   f"{d['draws']})")
    p.add_argument("--eie-draws", type=int, default=d["eie_draws"],
                   help=f"random layers per layer for EIE's cycle model, 0 for none (default "
                   f"{d['eie_draws']})")
    p.add_argument("--seed", type=args.seed, default=d["seed"], help="random seed (default 0)")
    p.add_argument("--scale", type=args.positive, default=d["scale"],
                   help=f"RTL part: divide both sides of every layer by this (default "
                   f"{d['scale']})")
    p.add_argument("--rtl-pes", type=args.positive, help="RTL part: PEs (default: the paper's "
                   "engine with 1/scale of its lanes, 2 PE x 8 lanes for 16)")
    p.add_argument("--rtl-lanes", type=args.positive, help="RTL part: lanes per PE (see --rtl-pes)")
    p.add_argument("--scan-width", type=args.positive, default=d["scan_width"],
                   help="eie and rtl parts: activations each detector scans per cycle (default "
                   f"{d['scan_width']}; 16 halves the windows of AlexNet's and VGG's fc8, whose "
                   "inputs come in blocks of 11 and 25)")
    p.add_argument("--groups", type=args.groups, default=d["groups"],
                   help="eie and rtl parts: every layer's lane groups, auto (default: the count "
                   "with the fewest cycles of the cycle model on the layer's first 3 activation "
                   "draws, as gen --groups auto) or the most a layer takes (a layer gets the "
                   "largest count up to it that its engine and blocks allow); the power part "
                   "measures one-group engines")
    p.add_argument("--inputs", type=args.positive, default=d["inputs"],
                   help=f"RTL part: random inputs per layer (default {d['inputs']})")
    p.add_argument("--sim", choices=[*SIMULATORS, "both"], default="verilator",
                   help="simulator(s) of the rtl and flow parts (default verilator)")
    p.add_argument("--no-rtl", action="store_true",
                   help="generate and simulate nothing (skips the rtl, power and flow parts)")
    p.add_argument("--workdir", default=d["workdir"],
                   help=f"designs and simulation results (default {d['workdir']})")
    p.add_argument("--flow-pes", type=args.int_list, default=d["flow_pes"],
                   help="flow part: PE counts (default 8; bench-engine's --pes)")
    p.add_argument("--flow-lanes", type=args.positive, default=d["flow_lanes"],
                   help="flow part: lanes per PE (default 8)")
    p.add_argument("--flow-shape", default=d["flow_shape"],
                   help="flow part: the layer OUTxIN (default 1024x1024)")
    p.add_argument("--flow-p", type=args.positive, default=d["flow_p"],
                   help="flow part: block size (default 8)")
    p.add_argument("--flow-density", type=float, default=d["flow_density"],
                   help="flow part: input density (default 0.35)")
    p.add_argument("--flow-batch", type=args.positive, default=d["flow_batch"],
                   help="flow part: inputs per run (default 4)")
    p.add_argument("--golden-m", "--m", dest="m", type=args.positive, default=d["m"],
                   help=f"golden part: outputs (default {d['m']}, EIE {bench_api.DEFAULT_LAYER.name})")
    p.add_argument("--golden-n", "--n", dest="n", type=args.positive, default=d["n"],
                   help=f"golden part: inputs (default {d['n']}, EIE {bench_api.DEFAULT_LAYER.name})")
    p.add_argument("--golden-p", "--p", dest="p", type=args.int_list, default=d["p"],
                   help="golden part: block sizes (default 1,2,4,8,16)")
    p.add_argument("--repeat", type=args.positive, default=d["repeat"],
                   help="golden part: timed repetitions, the best is kept (default 3)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    executor_flags(p, "RTL and flow parts' layers and engines")


def compare_flags(p):
    """Declare the flags of ``permdeal compare`` on the argparse parser ``p``."""
    xb = CrossbarConfig()
    g = p.add_argument_group("workload")
    g.add_argument("--model", metavar="FILE.npz",
                   help="float model: NAME.weight (out x in) and NAME.bias arrays, in layer order, "
                   "or an ONNX file (.onnx) (default: train the digits MLP here)")
    g.add_argument("--eie-layers", metavar="LIST",
                   help="EIE's benchmark layers instead of a model: 'all' or names separated by "
                   f"commas ({', '.join(l.name for l in EIE_LAYERS)})")
    g.add_argument("--data", choices=["digits", "none"],
                   help="data set for accuracy and fine-tuning: digits (default for the digits "
                   "MLP) or none (default for --model; EIE layers have none)")
    g.add_argument("--hidden", default="128,64",
                   help="hidden widths of the digits MLP (default 128,64)")
    g.add_argument("--epochs", type=int, default=40,
                   help="training epochs of the digits MLP (default 40)")
    g.add_argument("--finetune-epochs", type=int, default=30,
                   help="epochs of every structure-keeping fine-tune; 0 = none (default 30)")
    g.add_argument("--vectors", type=int,
                   help=f"random input vectors without a data set (default {compare_api.VECTORS})")
    g.add_argument("--input-density", metavar="D",
                   help="non-zero share of the random inputs, in (0, 1] (default: the EIE "
                   "layer's activation density; 0.5 for a model)")
    g.add_argument("--seed", type=args.seed, default=0, help="seed of training and random data")
    g = p.add_argument_group("formats")
    g.add_argument("--p", type=int, default=4, help="PD block size (default 4)")
    g.add_argument("--k", type=int, default=4, help="block-circulant block size (default 4)")
    g.add_argument("--density", default="0.25",
                   help="EIE weight density in (0, 1], or 'eie' for each EIE layer's published "
                   "density (default 0.25)")
    g.add_argument("--S", type=int, default=3, help="SmartDeal chunk width S (default 3)")
    g.add_argument("--E", type=int, default=3, help="SmartDeal exponent bits E (default 3)")
    g.add_argument("--b-bits", type=int, default=8, help="SmartDeal B bits (default 8)")
    g.add_argument("--sme-cap", default="3",
                   help="SME: most set bits per weight magnitude, or 'none' (default 3)")
    g.add_argument("--sme-threshold", type=int, default=8,
                   help="SME: squeeze out crossbars with fewer set bits (default 8)")
    g = p.add_argument_group("engines (the same multiplier budget for every digital format)")
    g.add_argument("--pes", type=int, help="PEs (default 4 for a model, 32 for EIE layers)")
    g.add_argument("--lanes", type=int,
                   help="multiplier lanes per PE (default 2 for a model, 8 for EIE layers)")
    g.add_argument("--scan-width", type=int, default=DEFAULT_SCAN_WIDTH,
                   help=f"PD engine: activations the detector scans per cycle (default "
                   f"{DEFAULT_SCAN_WIDTH})")
    g.add_argument("--fifo-depth", type=int, default=EIE["fifo_depth"],
                   help=f"EIE activation FIFO depth (default {EIE['fifo_depth']})")
    g = p.add_argument_group("energy (docs/design.md section 13.1)")
    g.add_argument("--weight-memory", choices=WEIGHT_MEMORIES, default=WEIGHT_MEMORIES[0],
                   help="where the counted model keeps the stored weights: on-chip SRAM banks, "
                   "or DRAM streamed once an inference (default sram)")
    g.add_argument("--measure-energy", type=int, default=0, metavar="N",
                   help="also measure the energy of the formats with hardware (permdeal power "
                   "on a generated design at the budget) on the first N inputs (default 0: "
                   "counted model only)")
    g = p.add_argument_group("crossbars")
    g.add_argument("--xbar-rows", type=int, default=xb.rows,
                   help=f"crossbar rows (default {xb.rows})")
    g.add_argument("--xbar-cols", type=int, default=xb.cols,
                   help=f"crossbar columns (default {xb.cols})")
    g.add_argument("--cell-bits", type=int, default=xb.cell_bits,
                   help=f"bits per cell (default {xb.cell_bits})")
    g.add_argument("--dac-bits", type=int, default=xb.dac_bits,
                   help=f"DAC bits (default {xb.dac_bits})")
    g.add_argument("--adc-bits", type=int, default=xb.adc_bits,
                   help=f"ADC bits (default {xb.adc_bits})")
    g.add_argument("--xbar-weight-bits", type=int, default=xb.weight_bits,
                   help="sign-magnitude weight bits on crossbars and SME "
                   f"(default {xb.weight_bits})")
    g.add_argument("--input-bits", type=int, default=xb.input_bits,
                   help=f"input bits on crossbars (default {xb.input_bits})")
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    g.add_argument("--plot", metavar="FILE.png", help="also plot them (PNG)")
    g.add_argument("-o", "--output", metavar="DIR",
                   help="instead: write compare.json, compare.txt and compare.png into DIR")
    g.add_argument("--force", action="store_true",
                   help="overwrite the --json / --plot files if they exist")
    executor_flags(p.add_argument_group("where"), "formats (one task each)")


def _on_signal(signum, frame):
    """SIGTERM or SIGINT: passed on to the tools this run started (when it leads its process
    group, as a command started from a shell does), then raised where the program is, so that
    every output under construction is removed on the way out."""
    if os.getpgrp() == os.getpid():
        previous = signal.signal(signum, signal.SIG_IGN)
        try:
            os.killpg(os.getpgrp(), signum)
        finally:
            signal.signal(signum, previous)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _redeliver(hook):
    """A ``sys.unraisablehook`` around ``hook``: a signal's exception raised inside a finalizer
    (a ``__del__``, where Python prints and drops it) is delivered again, from another thread,
    so that it reaches the program instead of being lost; any other goes to ``hook``."""
    def handle(unraisable):
        exc = unraisable.exc_value
        if isinstance(exc, KeyboardInterrupt):
            signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            # (a bare thread that waits a little: the signal must not land in this hook, where
            # Python would drop it again, as it may while ``Thread.start`` waits for the thread)
            _thread.start_new_thread(_raise_later, (signum,))
            return
        hook(unraisable)
    return handle


def _raise_later(signum):
    """Raise ``signum`` in this process after :data:`REDELIVER_DELAY` seconds."""
    time.sleep(REDELIVER_DELAY)
    signal.raise_signal(signum)


#: Seconds a signal dropped in a finalizer waits before it is delivered again.
REDELIVER_DELAY = 0.02


def _one_line(text: str) -> str:
    """A message as one line: a tool's multi-line detail joined by `` | ``."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return " | ".join(lines)


def main(argv=None):
    """Run one command; returns the exit status: 0, 1 (a check failed: RTL differs, a bench
    failed), 2 (a user error, one line on stderr), 130 (Ctrl-C), 143 (SIGTERM). Outputs under
    construction are removed on any of these (docs/design.md section 6)."""
    ns = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)} \
        if main_thread else {}
    unraisable = sys.unraisablehook
    if main_thread:
        sys.unraisablehook = _redeliver(unraisable)
    try:
        with limits.lifted(getattr(ns, "allow_large", False)):
            return ns.func(ns)
    except PermdealError as e:
        print(f"permdeal {ns.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a file-system error no check caught: one line naming the path
        where = e.filename if e.filename is not None else "file system"
        print(f"permdeal {ns.command}: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Terminated:
        warnings.simplefilter("ignore")  # no warnings of half-built objects after the line
        print(f"permdeal {ns.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        warnings.simplefilter("ignore")
        print(f"permdeal {ns.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = unraisable
