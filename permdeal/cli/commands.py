"""The ``permdeal`` sub-commands: each ``cmd_NAME(args)`` takes the parsed flags, calls the API
(:mod:`permdeal.api`) and prints. None holds compression, generation or simulation logic, and
none branches on the compression method: the method registry (:mod:`permdeal.methods`) answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from permdeal import atomic, methods
from permdeal.executor import Dask, Executor, executor
from permdeal.api import bench as bench_api
from permdeal.api import bench_smartdeal as bs
from permdeal.api import compare as compare_api
from permdeal.api import demo as demo_api
from permdeal.api import demo_cnn as demo_cnn_api
from permdeal.api import engine_bench
from permdeal.api import power as power_api
from permdeal.api import models as mdl
from permdeal.api.designs import generate_design, simulate_design
from permdeal.api.settings import GEN_SETTINGS, parse_shapes
from permdeal.api.synthesis import synth_block, synth_design, synth_sweep
from permdeal.api.verify import RERUN_SETTINGS, rerun_command, verify_config, verify_random
from permdeal.errors import PermdealError
from permdeal.golden.formats import Fixed
from permdeal.tables import pct, table


def _given(args: argparse.Namespace, names) -> dict:
    """The flags of ``names`` as a dict (None where not given)."""
    return {k: getattr(args, k, None) for k in names}


def _say(text: str) -> None:
    print(text, flush=True)


def _tasks_on(args: argparse.Namespace) -> Executor:
    """Where the command's tasks run: ``--dask`` (or its variable) or ``-j`` local processes;
    a bad or unreachable scheduler address is refused here, before anything is built."""
    ex = executor(getattr(args, "jobs", 1), args.dask)
    if isinstance(ex, Dask):
        _say(f"tasks on {ex.label}")
    return ex


def _note_saturated(n: int, model) -> None:
    if n:
        print(f"note: {n} input value(s) saturated in {model.input_format}")


# -- models ---------------------------------------------------------------------------------

def cmd_import(args):
    res = mdl.import_onnx(args.model, args.output, force=args.force)
    print(res.table())
    print(f"wrote {res.output}")
    return 0


def cmd_compress(args):
    options = {o.name: getattr(args, o.name) for x in methods.methods() for o in x.options}
    if args.act_format is not None and args.act_bits is not None:
        raise PermdealError("give --act-format or --act-bits, not both")
    act_bits = args.act_bits or mdl.DEFAULT_ACT_BITS
    act = args.act_format or (act_bits if args.calibrate is not None else Fixed(act_bits, 8))
    res = mdl.compress_run(args.model, args.method, calibration=args.calibrate, act=act,
                           weight=args.weight_format or args.weight_bits,
                           bias=args.bias_format or args.bias_bits,
                           allow_saturation=args.allow_saturation, relu_last=args.relu_last,
                           output=args.output, **options)
    print(res.method.describe(res.model))
    for w in res.method.warnings(res.model):
        print(f"warning: {w}")
    print(f"wrote {args.output}/ ({res.wrote})")
    return 0


def cmd_rom(args):
    _, summary = mdl.write_rom(args.model, args.output, pes=args.pes, lanes=args.lanes,
                               scan_width=args.scan_width, groups=args.groups)
    print(summary)
    print(f"wrote {args.output}/")
    return 0


def cmd_cycles(args):
    x = None if args.inputs is None else mdl.load_array(args.inputs, "--inputs")
    text, saturated = mdl.cycles_table(args.model, x, pes=args.pes, lanes=args.lanes,
                                       scan_width=args.scan_width, groups=args.groups,
                                       arch=args.arch, batch=args.batch,
                                       what=f"--inputs {args.inputs}")
    if saturated:
        print(f"note: {saturated} input value(s) saturated")
    print(text)
    return 0


def cmd_check(args):
    res = mdl.check(args.folder)
    print(res.table())
    print(f"{args.folder}: {res.what} OK (shapes, widths, depths, code ranges and sha256 match "
          "the manifest)")
    return 0


def cmd_eval(args):
    model = mdl.load(args.model)
    if args.inputs is not None and args.seed is not None:
        raise PermdealError("--seed splits the digits data set, which --inputs replaces; "
                            "leave it out")
    seed = 0 if args.seed is None else args.seed
    if args.inputs is None:
        if args.labels is not None:
            raise PermdealError("--labels goes with --inputs (without them: the digits test "
                                "split)")
        x, y, what = None, None, "inputs"
    else:
        if args.labels is None:
            raise PermdealError("--inputs needs --labels (one class index per input)")
        x = mdl.load_array(args.inputs, "--inputs")
        y = mdl.load_array(args.labels, "--labels")
        what = f"--inputs {args.inputs}"
        _note_saturated(mdl.input_codes(model, x, what).saturated, model)
    try:
        acc = mdl.evaluate(model, x, y, seed=seed)
    except PermdealError as e:
        raise PermdealError(str(e).replace("labels", "--labels", 1)
                            if str(e).startswith("labels") else str(e)) from None
    n = len(y) if y is not None else len(mdl.digits(seed)[3])
    print(f"golden fixed-point accuracy: {pct(acc)} on {n} inputs")
    return 0


def cmd_train(args):
    if args.cnn:
        for flag, value in (("--hidden", args.hidden), ("--p", args.p)):
            if value is not None:
                raise PermdealError(f"{flag} does not apply to --cnn (its layers are fixed; "
                                    "compress or compare it with --p)")
        t = mdl.train_cnn_run(epochs=args.epochs, seed=args.seed, output=args.output,
                              force=args.force)
        print(f"dense digits CNN ({', '.join(t.describe)}): test accuracy {pct(t.dense)}")
        print(f"wrote {args.output}")
        return 0
    t = mdl.train_digits_run([128, 64] if args.hidden is None else args.hidden,
                             1 if args.p is None else args.p,
                             epochs=40 if args.epochs is None else args.epochs,
                             finetune_epochs=args.finetune_epochs, seed=args.seed,
                             output=args.output, force=args.force)
    print(f"dense {'-'.join(map(str, t.sizes))} MLP: test accuracy {pct(t.dense)}")
    if t.finetuned is not None:
        print(f"permuted-diagonal p={','.join(map(str, t.ps))}, projected and fine-tuned: "
              f"test accuracy {pct(t.finetuned)}")
    print(f"wrote {args.output}")
    return 0


def cmd_accuracy(args):
    if args.json:
        atomic.check_new_file(args.json, args.force)
    t = time.perf_counter()
    rows = mdl.accuracy_study(args.p, args.hidden, args.seed, args.dense_last)
    seconds = time.perf_counter() - t
    print(f"handwritten digits (scikit-learn, 450 test images), MLP 64-"
          f"{'-'.join(map(str, args.hidden))}-10, seed {args.seed}"
          f"{', last layer dense' if args.dense_last else ', every layer compressed'}")
    print(table(
        ["p", "weights", "dense", "PD projected", "PD fine-tuned", "PD from scratch",
         "fine-tuned, 16-bit fixed"],
        [[r["p"], r["weights"], pct(r["dense"]), pct(r["projected"]), pct(r["finetuned"]),
          pct(r["scratch"]), pct(r["fixed"])] for r in rows]))
    print(f"({seconds:.1f} s)")
    if args.json:
        atomic.write_text(args.json, json.dumps({"rows": rows, "seconds": seconds}, indent=2)
                          + "\n")
    return 0


# -- designs --------------------------------------------------------------------------------

def cmd_gen(args):
    t0 = time.perf_counter()
    g = generate_design(_given(args, GEN_SETTINGS), args.config)
    took = time.perf_counter() - t0
    if g.model is not None:
        for line in g.method.design_lines(g.model, g.manifest):
            print(line)
    else:
        cfg, ports = g.settings.engine, g.manifest["ports"]
        print("layers: " + ", ".join(f"{l.n_out}x{l.n_in} p={l.p}" for l in g.settings.layers()))
        print(f"engine {g.manifest['top']}: {cfg.n_pe} PE x {cfg.lanes} lanes, scan width "
              f"{cfg.scan_width}; {ports['n_inputs']} inputs of {ports['in_bits']} bits, "
              f"{ports['n_outputs']} outputs of {ports['out_bits']} bits")
        print(f"no ROM images yet: write them with `permdeal rom MODEL --pes {cfg.n_pe} "
              f"--lanes {cfg.lanes} -o DIR` (scan width {cfg.scan_width}) and simulate with "
              "--images DIR, or place them in rom/")
    print(f"wrote {g.settings.output}/ in {took:.1f} s")
    return 0


def _print_mismatches(rep):
    """The first mismatches and the failed tests of a ``permdeal sim`` report, on stderr."""
    for mm in rep["first_mismatches"][:10]:
        print(f"  input {mm['input']}, layer {mm['layer']}, output {mm['output']}: expected "
              f"{mm['expected']}, observed {mm['observed']}", file=sys.stderr)
    for test, why in rep["failures"].items():
        print(f"  {test}: {why}", file=sys.stderr)


def cmd_power(args):
    rep = power_api.run(args.design, args.inputs, args.output, clock_mhz=args.clock_mhz,
                        gate_check=args.gate_check, seed=args.seed,
                        what=f"--inputs {args.inputs}", progress=_say)
    print(power_api.table(rep), end="")
    print(f"wrote {args.output}/ (report.json, report.txt, energy.png) in {rep['seconds']:.0f} s")
    if not rep["golden_match"] or not rep["cycles_match_model"]:
        print("the RTL's outputs or cycles DIFFER from the golden and cycle models: the activity "
              "is not that of a correct run", file=sys.stderr)
        return 1
    return 0


def cmd_sim(args):
    x = mdl.load_array(args.inputs, "--inputs")
    res = simulate_design(args.design, x, args.sim, args.output, images=args.images,
                          seed=args.seed, waves=args.waves, what=f"--inputs {args.inputs}",
                          progress=_say)
    rep = res.report
    if res.saturated:
        print(f"note: {res.saturated} input value(s) saturated")
    print(f"{args.sim} {rep['sim_version']}, seed {rep['seed']}: {rep['inputs']} input(s), "
          f"build {rep['build_seconds']:.1f} s, run {rep['run_seconds']:.1f} s "
          f"({rep['simulated_cycles_per_second'] or 0:.0f} cycles/s)")
    for line in res.method.sim_lines(rep):
        print(line)
    if not rep["cycles_match_model"]:
        model = rep["model_cycles"]
        model = model if isinstance(model, list) else [model] * len(rep["cycles"])
        print("CYCLES DIFFER from the cycle model: RTL " + ", ".join(map(str, rep["cycles"]))
              + "; model " + ", ".join(map(str, model)), file=sys.stderr)
    if rep["golden_match"]:
        print(f"{rep['inputs_matching']} of {rep['inputs']} input vectors match the golden model "
              f"({rep['inputs'] * rep['outputs_per_input']} values)")
    else:
        print(f"MISMATCH: {rep['inputs'] - rep['inputs_matching']} of {rep['inputs']} input "
              f"vectors, {rep['mismatches']} output(s) differ from the golden model",
              file=sys.stderr)
        _print_mismatches(rep)
    print(f"wrote {args.output}/")
    return 0 if rep["golden_match"] and rep["cycles_match_model"] else 1


def cmd_bench_engine(args):
    if args.json:
        atomic.check_new_file(args.json, args.force)
    shape = parse_shapes(args.shape)
    if len(shape) != 1:
        raise PermdealError("--shape: the engine benchmark takes one layer")
    engine_bench.check_args(args.pes, args.lanes, shape[0], args.p, args.density)
    sims = ["verilator", "icarus"] if args.sim == "both" else [args.sim]
    work = Path(args.workdir)
    t0 = time.perf_counter()
    with _tasks_on(args) as ex:
        res = engine_bench.run(args.pes, args.lanes, shape[0], args.p, args.density, args.batch,
                               sims, work, seed=args.seed, progress=lambda msg: _say(f"... {msg}"),
                               executor=ex)
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print(engine_bench.tables(res))
    print(f"wall time {res['wall_seconds']:.0f} s; designs and results in {work}/")
    if args.json:
        engine_bench.write_json(args.json, res)
        print(f"wrote {args.json}")
    bad = [e for e in res["engines"] for s in e["sims"].values()
           if not (s["golden_match"] and s["cycles_match_model"])]
    return 1 if bad else 0


#: The settings of ``permdeal verify``'s rerun commands, taken from the flags as given.
_VERIFY_FLAGS = (*RERUN_SETTINGS, "relu", "arch", "batch")


def cmd_verify(args):
    from permdeal.verif.verify import coverage_rows, table_rows
    sim = args.sim or ("icarus" if args.random_configs else "both")
    if args.random_configs:
        given = [flag for flag, v in [("--config", args.config), ("--tests", args.tests),
                                      ("--waves", args.waves or None)]
                 + [(f"--{k.replace('_', '-')}", getattr(args, k)) for k in _VERIFY_FLAGS]
                 if v not in (None, False)]
        if given:
            raise PermdealError(f"{given[0]} does not apply to --random-configs (every "
                                "configuration is drawn from the seed, each run on the "
                                "engine_network bench)")
        with _tasks_on(args) as ex:
            res = verify_random(args.random_configs, args.output, sim=sim, seed=args.seed,
                                progress=_say, executor=ex)
        failed = res.failed
        print(f"{len(res.records) - len(failed)} of {len(res.records)} runs passed in "
              f"{res.wall:.0f} s; wrote {args.output}/ (junit.xml, summary.json)")
        if failed:
            r = failed[0]
            print(f"first failing configuration: {'; '.join(r['problems'])[:300]}\n"
                  f"  reproduce: {r['command']}", file=sys.stderr)
        return 1 if failed else 0
    with _tasks_on(args) as ex:
        res = verify_config(_given(args, GEN_SETTINGS), args.output, config=args.config, sim=sim,
                            tests=args.tests, seed=args.seed, waves=args.waves, progress=_say,
                            executor=ex)
    out = res.settings.output
    cov = coverage_rows(res.records)
    if cov:
        print(table(["coverage bin", "hits", "", "missed in"], cov, aligns="lrll"))
    print(table(["test", "sim", "result", "wall s", "cycles", "problems"],
                table_rows(res.records), aligns="lllrrl"))
    failed = res.failed
    print(f"{len(res.records) - len(failed)} of {len(res.records)} passed in {res.wall:.0f} s, "
          f"seed {res.seed}; wrote {out}/ (junit.xml, summary.json)")
    given = _given(args, _VERIFY_FLAGS)
    for r in failed:
        again = rerun_command(given, res.seed, r["test"], r["sim"],
                              f"{out}-{r['test']}-{r['sim']}", config=args.config)
        print(f"{r['test']} on {r['sim']} failed: {'; '.join(r['problems'])[:300]}\n"
              f"  reproduce: {again}\n"
              f"  logs: {out}/builds/{r['test']}-{r['sim']}/", file=sys.stderr)
    return 1 if failed else 0


#: ``permdeal synth`` flags that only one target takes.
_TARGET_FLAGS = {"ecp5": ("device", "speed", "target_mhz"),
                 "asic": ("asic_mhz", "sram_um2_per_bit", "liberty")}


def cmd_synth(args):
    from permdeal.synth import flow
    from permdeal.synth.report import text
    targets = flow.parse_targets(args.target)
    for target, names in _TARGET_FLAGS.items():
        given = [n for n in names if getattr(args, n) is not None]
        if given and target not in targets:
            raise PermdealError(f"--{given[0].replace('_', '-')} applies to the {target} target, "
                                f"which --target {args.target} does not run")
    chosen = {n: getattr(args, n) for names in _TARGET_FLAGS.values() for n in names
              if getattr(args, n) is not None}
    opts = flow.SynthOptions(seed=args.seed, flat=args.flat, **chosen)
    given_flags = [f"--{k.replace('_', '-')}" for k in GEN_SETTINGS
                   if k != "output" and getattr(args, k, None) not in (None, False)]
    progress = lambda msg: _say(f"... {msg}")
    t0 = time.perf_counter()
    if args.block is not None:
        other = given_flags + [f for f, v in (("--design", args.design), ("--config", args.config),
                                              ("--sweep", args.sweep)) if v is not None]
        if other:
            raise PermdealError(f"--block synthesizes one block from --block-params; leave out "
                                f"{other[0]}")
        from permdeal.synth import block
        rep = synth_block(args.block, args.block_params, targets, opts, args.output, progress)
        print(block.text(rep), end="")
        print(f"wrote {args.output}/ (report.json, report.txt, logs/) in "
              f"{time.perf_counter() - t0:.0f} s")
        return 0
    if args.block_params is not None:
        raise PermdealError("--block-params goes with --block")
    if args.design is not None and (given_flags or args.config or args.sweep):
        raise PermdealError(f"--design takes a generated design as it is; leave out "
                            f"{(given_flags or ['--config' if args.config else '--sweep'])[0]} "
                            "(or leave out --design to generate one from the settings)")
    given = _given(args, GEN_SETTINGS)
    if not args.sweep and (args.dask is not None or args.jobs != 1):
        raise PermdealError(f"{'--dask' if args.dask is not None else '-j'} applies to --sweep "
                            "(one design is one task)")
    if args.sweep:
        from permdeal.synth import sweep as sw
        with _tasks_on(args) as ex:
            rows, wall, st, param, values = synth_sweep(args.sweep, given, targets, opts,
                                                        config=args.config, executor=ex)
        print(sw.table(rows))
        print(f"wall time {wall:.0f} s; wrote {st.output}/ (sweep.csv, sweep.json, "
              "sweep.png, points/)")
        return 0 if all(r["status"] == "ok" for r in rows) else 1
    rep, out = synth_design(args.design, given, targets, opts, args.output, config=args.config,
                            progress=progress)
    print(text(rep), end="")
    print(f"wrote {out}/ (report.json, report.txt, logs/) in {time.perf_counter() - t0:.0f} s")
    return 0


# -- studies and benchmarks -----------------------------------------------------------------

def cmd_demo(args):
    if args.cnn:
        if args.p is not None:
            raise PermdealError("--p does not apply to --cnn (the CNN's block sizes are 1, 4, 4: "
                                "its one-channel first layer dense)")
        return demo_cnn_api.run(Path(args.output or "build/demo-cnn"), seed=args.seed,
                                pes=args.pes, lanes=args.lanes, sim=args.sim)
    return demo_api.run(Path(args.output or "build/demo"), seed=args.seed,
                        p=4 if args.p is None else args.p, pes=args.pes, lanes=args.lanes,
                        sim=args.sim, synth=not args.no_synth)


def cmd_bench_smartdeal(args):
    parts = [t.strip() for t in args.parts.split(",") if t.strip()]
    bad = [t for t in parts if t not in bs.PARTS]
    if bad:
        raise PermdealError(f"--parts: {bad[0]!r} is not one of {', '.join(bs.PARTS)}")
    if not parts:
        raise PermdealError(f"--parts names no part (choose from {', '.join(bs.PARTS)})")
    return bs.run(parts, m=args.m, n=args.n, S=args.S, E=args.E, b_bits=args.b_bits, p=args.p,
                  lanes=args.lanes, seed=args.seed, synth=args.synth, json_path=args.json,
                  force=args.force)


def cmd_bench(args):
    return bench_api.run(**{k: getattr(args, k) for k in bench_api.DEFAULTS})


def cmd_compare(args):
    return compare_api.run(progress=lambda msg: _say(f"... {msg}"),
                           **{k: getattr(args, k) for k in compare_api.OPTIONS})
