# amaranth: UnusedElaboratable=no
"""``permdeal verify``: the cocotb regression for one engine configuration, as a user command.

A :class:`Target` is what the user generates (engine size, the network's shapes, block sizes and
formats, or a compressed model). :func:`plan` lists the benches that apply to it, each on each
simulator; :func:`run_job` builds the block for the target, runs its bench and decides pass or fail
from what the bench reports (every value compared, none mismatched), not only from the bench's own
asserts. The results are a JUnit XML file and a JSON summary a CI system can read.
"""

import os
import random
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from permdeal.errors import PermdealError
from permdeal.golden.cycles import MULTIPLIERS, EngineConfig, model_cycles
from permdeal.golden.model import LayerSpec, QuantModel
from permdeal.golden.rom import lane_contents

from . import coverage, runner

#: The chunk width of the shift-add bench's decomposition (SmartDeal's default).
SHIFT_ADD_S = 3
#: The benches, in the order they run: name -> what it checks.
BENCHES = {
    "perm_index": "r = (c - k) mod p for every (sel, c, k) of the design's block sizes",
    "nz_detect": "the non-zero detector's pairs and timing at the design's scan width",
    "pe": "the last PE of the engine (its lanes, block sizes and widths) on a two-layer network",
    "engine_layer": "the engine on the network's first layer alone",
    "engine_network": "the engine on the whole network",
    "shift_add": "the SmartDeal shift-add unit rebuilding the first layer's weights, decomposed "
                 f"(S = {SHIFT_ADD_S}, E = 3, 8-bit B), at the layer's weight format",
    "smartdeal_layer": "the SmartDeal layer unit (shift-add unit, MAC, write-back) on the first "
                       "layer's first outputs, decomposed (S = 3, E = 3, 8-bit B, a quarter of "
                       "the Ce rows pruned) at the layer's formats, against the golden layer and "
                       "its cycle model",
    "smartdeal_engine": "the SmartDeal engine (rebuild engines, MAC lanes, zero-input and "
                        "dead-chunk skipping) on a random two-layer SmartDeal network (S = 3, "
                        "half the Ce rows pruned in groups of the lanes) on 1 to 4 lanes drawn "
                        "from the seed, against the golden model and its cycle model",
}
#: Most outputs of the first layer the SmartDeal layer bench computes, and its pruning.
SMARTDEAL_ROWS, SMARTDEAL_PRUNE, SMARTDEAL_PRUNE_GROUP = 16, 0.25, 2
#: The SmartDeal engine bench: most lanes, the network's sizes (inputs, hidden, outputs: drawn
#: from the seed in these ranges) and the fraction of Ce rows pruned in groups of the lanes (at
#: least one chunk of every tile: every layer has 2 or more chunks).
SDE_MAX_LANES, SDE_SIZES, SDE_PRUNE = 4, ((4, 16), (4, 12), (2, 7)), 0.5
#: Most rows of the first layer the shift-add bench rebuilds (besides its own stimulus).
SHIFT_ADD_ROWS = 192
#: Input densities of the engine benches' vectors: empty, full and in between.
DENSITIES = (0.0, 1.0, 0.1, 0.35, 0.7, 0.5)


@dataclass(frozen=True)
class Target:
    """The configuration under test: an engine ``cfg`` and a ``model`` (a QuantModel)."""

    cfg: EngineConfig
    model: QuantModel

    @property
    def ps(self) -> tuple[int, ...]:
        out = []
        for layer in self.model.layers:
            if layer.matrix.p not in out:
                out.append(layer.matrix.p)
        return tuple(out)


@dataclass(frozen=True)
class Job:
    bench: str
    sim: str

    @property
    def name(self) -> str:
        return f"{self.bench}[{self.sim}]"


def plan(benches: Collection[str], sims: Collection[str]) -> list[Job]:
    """The jobs for ``benches`` (names of :data:`BENCHES`) on ``sims``, checked."""
    for b in benches:
        if b not in BENCHES:
            raise PermdealError(f"unknown test {b!r} (known: {', '.join(BENCHES)})")
    for s in sims:
        if s not in runner.SIMULATORS:
            raise PermdealError(f"unknown simulator {s!r} (known: {', '.join(runner.SIMULATORS)})")
    return [Job(b, s) for b in BENCHES if b in benches for s in sims]


def engine_inputs(model, seed, count=None):
    """Random vectors at :data:`DENSITIES`, then one with a single non-zero (a partial vector
    whatever its length), one of the largest codes and one of the smallest (towards saturation)."""
    count = len(DENSITIES) if count is None else count
    rng = np.random.default_rng(seed)
    fmt = model.input_format
    n = model.n_inputs
    x = rng.integers(fmt.min, fmt.max + 1, size=(count, n))
    for v in range(count):
        x[v, rng.random(n) >= DENSITIES[v % len(DENSITIES)]] = 0
    one = np.zeros((1, n), np.int64)
    one[0, 0] = fmt.max
    return np.concatenate([x, one, np.full((1, n), fmt.max), np.full((1, n), fmt.min)])


def _engine(target, model, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.hdl.engine import Engine
    dut = Engine(target.cfg, model.layers, contents=lane_contents(model, target.cfg))
    source = build / f"{dut.name}.v"
    emit(dut, dut.name, source)
    x = engine_inputs(model, seed)
    y = model.forward(x)
    cycles = [model_cycles(model, xi, target.cfg).total for xi in x]
    config = {"in_bits": dut.in_bits, "out_bits": dut.out_bits, "inputs": x.tolist(),
              "expected": y.tolist(), "cycles": cycles}

    def cover(report):
        return coverage.engine_bins(model, x, report)

    def check(report):
        out = []
        for test in ("test_streams", "test_cycles"):
            rep = report.get(test, {})
            if rep.get("checked") != y.size or rep.get("mismatches"):
                out.append(f"{test}: {rep.get('checked')} of {y.size} outputs checked, "
                           f"{rep.get('mismatches')} mismatched")
        if report.get("test_cycles", {}).get("rtl_cycles") != cycles:
            out.append("test_cycles: RTL cycles differ from the cycle model")
        return out
    return [source], dut.name, "permdeal.verif.tb_engine", config, check, cover


def _perm_index(target, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.hdl.perm_index import PermIndex
    dut = PermIndex(target.ps, registered=True)
    source = build / "perm_index.v"
    emit(dut, "perm_index", source)
    want = sum(p * p for p in target.ps)

    def check(report):
        rep = report.get("test_exhaustive", {})
        if rep.get("checked") != want or rep.get("mismatches"):
            return [f"test_exhaustive: {rep.get('checked')} of {want} (c, k) checked, "
                    f"{rep.get('mismatches')} mismatched"]
        return []
    return ([source], "perm_index", "permdeal.verif.tb_perm_index",
            {"ps": list(dut.ps), "latency": dut.latency}, check,
            lambda report: coverage.index_bins(dut.ps))


def _nz_detect(target, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.hdl.nz_detect import NonZeroDetector
    layers = target.model.layers
    act_bits = max([layers[0].fmts.act.bits] + [l.fmts.out.bits for l in layers])
    index_bits = max(1, max(l.shape[1] for l in layers).bit_length())
    hold = max(target.cfg.slots(l.matrix.blocks[0], target.cfg.groups_of(i))
               for i, l in enumerate(layers))
    dut = NonZeroDetector(target.cfg.scan_width, act_bits, index_bits)
    source = build / "nz_detect.v"
    emit(dut, "nz_detect", source)
    config = {"width": dut.width, "act_bits": dut.act_bits, "index_bits": dut.index_bits,
              "latency": dut.latency, "windows": 600, "broadcast": max(2, hold)}

    def check(report):
        out = []
        for test in ("test_random", "test_timing", "test_broadcast"):
            rep = report.get(test, {})
            if not rep.get("checked") or rep.get("checked") != rep.get("pairs") \
                    or rep.get("mismatches"):
                out.append(f"{test}: {rep.get('checked')} of {rep.get('pairs')} pairs checked, "
                           f"{rep.get('mismatches')} mismatched")
        return out
    return [source], "nz_detect", "permdeal.verif.tb_nz_detect", config, check, None


def _pe(target, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.hdl.pe import PE, pe_contents
    from permdeal.verif.tb_pe import PASSES, build_case, pe_config
    layers, cfg, ps = target.model.layers, target.cfg, target.ps
    case = build_case({
        "seed": seed, "ps": list(ps), "layer_ps": [ps[0], ps[-1]],
        "sizes": [min(layers[0].shape[1], 30), 24, 13], "n_pe": cfg.n_pe, "lanes": cfg.lanes,
        "pe": cfg.n_pe - 1,
        "act_bits": max(l.fmts.act.bits for l in layers),
        "weight_bits": max(l.fmts.weight.bits for l in layers),
        "bias_bits": max(l.fmts.bias.bits for l in layers)})
    dut = PE(case.lanes, *case.lane_params, contents=pe_contents(case.contents, case.cfg, case.pe))
    source = build / "pe.v"
    emit(dut, "pe", source)

    def check(report):
        out = []
        for test, passes in PASSES.items():
            rep = report.get(test, {})
            want = sum(case.lanes * case.accumulators(layer) for layer, _ in passes)
            if rep.get("checked") != want or rep.get("mismatches") or rep.get("valid_errors"):
                out.append(f"{test}: {rep.get('checked')} of {want} accumulators checked, "
                           f"{rep.get('mismatches')} mismatched")
        return out
    return [source], "pe", "permdeal.verif.tb_pe", pe_config(case, dut), check, None


def _shift_add(target, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.golden.smartdeal import (block_layout, decompose, quantize, rebuild_int,
                                          to_blocks)
    from permdeal.hdl.shift_add import ShiftAdd
    layer = target.model.layers[0]
    fmt = layer.fmts.weight
    W = fmt.to_float(layer.matrix.to_dense())
    _, h, _ = block_layout(W.shape, SHIFT_ADD_S)  # rows of a block: one output row
    W = W[:max(1, SHIFT_ADD_ROWS // h)]
    enc = quantize(decompose(W, S=SHIFT_ADD_S))
    dut = ShiftAdd.for_codes(enc, fmt)
    source = build / "shift_add.v"
    emit(dut, "shift_add", source)
    weights = to_blocks(rebuild_int(enc, fmt)[0], enc.S)
    rows = [(b, c) for b in range(enc.codes.shape[0]) for c in range(h)][:SHIFT_ADD_ROWS]
    extra = {"codes": [enc.codes[b, c].tolist() for b, c in rows],
             "b": [enc.b_int[b].tolist() for b, c in rows],
             "expected": [weights[b, c].tolist() for b, c in rows]}
    config = {"S": dut.S, "E": dut.E, "b_bits": dut.b_bits, "weight_bits": dut.weight_bits,
              "shift": dut.shift, "lanes": dut.lanes, "rows": 30, "extra": extra}
    t = dut.timing

    def check(report):
        out = []
        for test in ("test_no_stall", "test_stalls"):
            rep = report.get(test, {})
            if not rep.get("rows") or rep.get("delivered") != rep.get("rows") \
                    or rep.get("checked") != dut.S * rep.get("rows", 0) or rep.get("mismatches"):
                out.append(f"{test}: {rep.get('delivered')} of {rep.get('rows')} rows delivered, "
                           f"{rep.get('checked')} weights checked, {rep.get('mismatches')} "
                           "mismatched")
        rep = report.get("test_no_stall", {})
        if rep.get("intervals") != [t.interval] or rep.get("latencies") != [t.latency] \
                or rep.get("total_cycles") != t.total_cycles(rep.get("rows", 0)):
            out.append(f"test_no_stall: intervals {rep.get('intervals')}, latencies "
                       f"{rep.get('latencies')}, {rep.get('total_cycles')} cycles; the model: "
                       f"{t.interval}, {t.latency}, {t.total_cycles(rep.get('rows', 0))}")
        return out

    def cover(report):
        both = [report.get(t, {}) for t in ("test_no_stall", "test_stalls")]
        total = lambda key: sum(int(r.get(key) or 0) for r in both)
        bins = {"all-zero rows": total("zero_rows"),
                "every exponent and sign": int(all(r.get("exponents") == 2 << dut.E
                                                   for r in both)),
                "most negative B": total("b_min_terms"),
                "output back-pressure": total("output_stalls"),
                "weight saturation high": total("sat_high"),
                "weight saturation low": total("sat_low"),
                "rounding ties": total("ties")}
        required = ["all-zero rows", "every exponent and sign", "most negative B",
                    "output back-pressure"]
        # (named apart from the engine's bins, which the table adds up by name)
        return ({f"shift-add {k}": v for k, v in bins.items()},
                [f"shift-add {k}" for k in required])
    return [source], "shift_add", "permdeal.verif.tb_shift_add", config, check, cover


def _smartdeal_layer(target, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.golden.formats import LayerFormats
    from permdeal.golden.smartdeal import decompose, quantize
    from permdeal.golden.smartdeal_cycles import layer_cycles
    from permdeal.golden.smartdeal_model import SmartDealLayer, SmartDealModel, write_rom
    from permdeal.hdl.rom import ROM_SOURCE
    from permdeal.hdl.smartdeal_layer import SmartDealLayerUnit
    from permdeal.verif.tb_smartdeal_layer import bench_config
    pd = target.model.layers[0]
    f = pd.fmts
    W = f.weight.to_float(pd.matrix.to_dense())[:SMARTDEAL_ROWS]
    dec = decompose(W, S=SHIFT_ADD_S, prune=SMARTDEAL_PRUNE, prune_group=SMARTDEAL_PRUNE_GROUP)
    fmts = LayerFormats(f.act, f.weight, f.bias, f.out, W.shape[1])   # a dense row's products
    layer = SmartDealLayer(pd.name, quantize(dec), pd.bias[:W.shape[0]], fmts, pd.relu)
    model = SmartDealModel([layer])
    rom = build / "rom"
    rom.mkdir(exist_ok=True)
    write_rom(rom, model)
    dut = SmartDealLayerUnit(layer, rom)
    source = build / "smartdeal_layer.v"
    emit(dut, "smartdeal_layer", source)
    x = engine_inputs(model, seed)
    config = bench_config(model, x, dut.lanes)
    n_out = sum(map(len, config["expected"]))
    lc = layer_cycles(layer, dut.lanes)

    def check(report):
        out = []
        for test in ("test_streams", "test_cycles"):
            rep = report.get(test, {})
            if rep.get("checked") != n_out or rep.get("mismatches"):
                out.append(f"{test}: {rep.get('checked')} of {n_out} outputs checked, "
                           f"{rep.get('mismatches')} mismatched")
        rtl = report.get("test_cycles", {}).get("rtl_cycles")
        if rtl != [config["cycles"]] * len(x):
            out.append(f"test_cycles: RTL cycles {rtl}, the cycle model says {config['cycles']}")
        return out

    def cover(report):
        streams = report.get("test_streams", {})
        bins = {"skipped Ce rows": lc.skipped, "weight saturation": layer.weight_saturated,
                "input back-pressure": int(streams.get("input_stalls") or 0),
                "output back-pressure": int(streams.get("output_stalls") or 0)}
        required = ["output back-pressure"] + (["skipped Ce rows"] if dec.pruned.any() else [])
        return ({f"smartdeal {k}": v for k, v in bins.items()},
                [f"smartdeal {k}" for k in required])
    return ([source, ROM_SOURCE], "smartdeal_layer", "permdeal.verif.tb_smartdeal_layer", config,
            check, cover)


def _smartdeal_engine(target, build, seed):
    from permdeal.gen.verilog import emit
    from permdeal.golden import smartdeal_engine_cycles as ec
    from permdeal.golden.compress import QuantSpec, compress_smartdeal
    from permdeal.golden.model import FloatLayer
    from permdeal.hdl.smartdeal_engine import SmartDealEngine
    from permdeal.verif.tb_smartdeal_engine import bench_config
    rng = np.random.default_rng(seed)
    lanes = int(rng.integers(1, SDE_MAX_LANES + 1))
    sizes = [int(rng.integers(lo, hi + 1)) for lo, hi in SDE_SIZES]
    f = target.model.layers[0].fmts           # the widths of the configuration's first layer
    layers = [FloatLayer(f"sd{i}", rng.standard_normal((o, n)) * 0.4, rng.standard_normal(o) * 0.1)
              for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]
    model = compress_smartdeal(layers, QuantSpec(act=f.act.bits, weight=f.weight.bits,
                                                 bias=f.bias.bits),
                               calibration=rng.standard_normal((64, sizes[0])), S=SHIFT_ADD_S,
                               prune=SDE_PRUNE, prune_group=lanes)
    dut = SmartDealEngine(model.layers, lanes)
    source = build / "smartdeal_engine.v"
    emit(dut, "smartdeal_engine", source)
    x = engine_inputs(model, seed)
    config = bench_config(model, x, lanes)
    n_out = sum(map(len, config["expected"]))
    runs = ec.model_cycles(model, x, lanes)

    def check(report):
        out = []
        for test in ("test_streams", "test_cycles", "test_reset"):
            rep = report.get(test, {})
            if rep.get("checked") != n_out or rep.get("mismatches"):
                out.append(f"{test}: {rep.get('checked')} of {n_out} outputs checked, "
                           f"{rep.get('mismatches')} mismatched")
        rtl = report.get("test_cycles", {}).get("rtl_cycles")
        if rtl != config["vector_cycles"]:
            out.append(f"test_cycles: RTL cycles {rtl}, the cycle model says "
                       f"{config['vector_cycles']} ({lanes} lanes)")
        return out

    def cover(report):
        streams = report.get("test_streams", {})
        plans = [ec.tile_runs(l, lanes) for l in model.layers]
        lcs = [lc for r in runs for lc in r.layers]
        bins = {f"on {lanes} lane(s)": 1,
                "input empty": sum(not xi.any() for xi in x),
                "input full": sum(xi.all() for xi in x),
                "chunks skipped for a tile": sum(-(-l.shape[1] // SHIFT_ADD_S) - sum(b - a for a, b in t)
                                                 for l, p in zip(model.layers, plans) for t in p),
                "tile shorter than the lanes": sum(u < lanes for lc in lcs for u in lc.slots),
                "short last tile": sum(lc.last_tile_rows < lanes for lc in lcs),
                "weight saturation": sum(l.weight_saturated for l in model.layers),
                "layer boundary": len(x) * (len(model.layers) - 1),
                "input back-pressure": int(streams.get("input_stalls") or 0),
                "output back-pressure": int(streams.get("output_stalls") or 0)}
        required = ["input empty", "input full", "chunks skipped for a tile", "layer boundary",
                    "input back-pressure", "output back-pressure"]
        return ({f"smartdeal engine {k}": int(v) for k, v in bins.items()},
                [f"smartdeal engine {k}" for k in required])
    return ([source], "smartdeal_engine", "permdeal.verif.tb_smartdeal_engine", config, check,
            cover)


def _build(job, target, build, seed):
    if job.bench == "smartdeal_engine":
        return _smartdeal_engine(target, build, seed)
    if job.bench == "smartdeal_layer":
        return _smartdeal_layer(target, build, seed)
    if job.bench == "shift_add":
        return _shift_add(target, build, seed)
    if job.bench == "pe":
        return _pe(target, build, seed)
    if job.bench == "perm_index":
        return _perm_index(target, build, seed)
    if job.bench == "nz_detect":
        return _nz_detect(target, build, seed)
    model = target.model
    if job.bench == "engine_layer":
        model = QuantModel(model.layers[:1])
    return _engine(target, model, build, seed)


def run_job(job: Job, target: Target, build: str | Path, seed: int, waves: bool = False) -> dict:
    """Build and run one bench; returns a JSON-able record of it."""
    build = Path(build)
    build.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result, error = None, None
    try:
        # (inside: a bench that cannot be built for this configuration fails alone)
        sources, top, module, config, check, cover = _build(job, target, build, seed)
        result = runner.run(job.sim, sources=sources, toplevel=top, test_module=module,
                            build_dir=build, config=config, seed=seed, waves=waves)
    except runner.SimulationFailed as e:
        result = e.result
    except PermdealError as e:
        error = str(e)
    record = {"test": job.bench, "sim": job.sim, "seed": seed, "build": str(build),
              "wall_seconds": round(time.perf_counter() - t0, 2)}
    if result is None:
        record.update(passed=False, problems=[error], tests={}, simulated_cycles=0)
        return record
    problems = [f"{t}: {why}" for t, why in result.failures.items()]
    problems += check(result.report)
    if cover is not None:
        bins, required = cover(result.report)
        lost = coverage.missing(bins, required)
        record["coverage"] = {"bins": bins, "required": required, "missing": lost}
        problems += [f"coverage: required bin {b!r} never hit" for b in lost]
    sim_ns = sum(ns for _, ns in (result.timings or {}).values())
    record.update(passed=not problems and result.passed, problems=problems,
                  tests={t: ("failed" if t in result.failures else "passed")
                         for t in result.tests},
                  simulated_cycles=int(sim_ns // 10), sim_version=result.sim_version,
                  build_seconds=round(result.build_seconds, 2),
                  run_seconds=round(result.run_seconds, 2),
                  log=str(result.log), waves=str(result.waves) if result.waves else None)
    return record


def new_seed() -> int:
    return int(os.environ.get("COCOTB_RANDOM_SEED") or secrets.randbits(31))


def junit(records: Sequence[dict]) -> bytes:
    """A JUnit XML document (bytes): one testsuite per bench and simulator."""
    root = ET.Element("testsuites", name="permdeal verify")
    for r in records:
        suite = ET.SubElement(root, "testsuite", name=f"{r['test']}[{r['sim']}]",
                              tests=str(max(1, len(r["tests"]))),
                              failures=str(0 if r["passed"] else 1),
                              time=f"{r['wall_seconds']:.2f}")
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="seed",
                      value=str(r["seed"]))
        cases = r["tests"] or {"build": "failed"}
        for i, (name, state) in enumerate(cases.items()):
            case = ET.SubElement(suite, "testcase", classname=f"permdeal.{r['test']}",
                                 name=f"{name}[{r['sim']}]")
            mine = [p for p in r["problems"] if p.startswith(f"{name}:")] or \
                (r["problems"] if not r["passed"] and i == 0 else [])
            if state == "failed" or mine:
                ET.SubElement(case, "failure", message=(mine or r["problems"] or ["failed"])[0])
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def random_model(specs: Sequence[LayerSpec], seed: int) -> QuantModel:
    """A model of random integer codes for layer descriptions ``specs`` (``LayerSpec``): what a
    design generated without a model is verified with."""
    from permdeal.golden.model import QuantLayer
    from permdeal.golden.permdiag import PermDiag, diag_col
    rng = np.random.default_rng(seed)
    layers = []
    for s in specs:
        (mb, nb), p, f = s.blocks, s.p, s.fmts
        k = rng.integers(0, p, size=(mb, nb))
        q = rng.integers(f.weight.min, f.weight.max + 1, size=(mb, nb, p))
        q[-1, :, s.n_out - (mb - 1) * p:] = 0                       # padded rows
        q[:, -1, :][diag_col(np.arange(p), k[:, -1:], p) >= s.n_in - (nb - 1) * p] = 0
        bias = rng.integers(f.bias.min, f.bias.max + 1, size=s.n_out)
        layers.append(QuantLayer(s.name, PermDiag((s.n_out, s.n_in), p, k, q), bias, f, s.relu))
    return QuantModel(layers)


def coverage_rows(records: Sequence[dict]) -> list[list[str]]:
    """One row per bin over every run: total hits, whether some run required it, and the runs
    that required it and missed it."""
    total, required, missed = {}, set(), {}
    for r in records:
        cov = r.get("coverage")
        if not cov:
            continue
        for b, n in cov["bins"].items():
            total[b] = total.get(b, 0) + n
        required.update(cov["required"])
        for b in cov["missing"]:
            missed.setdefault(b, []).append(f"{r['test']}[{r['sim']}]")
    return [[b, str(total.get(b, 0)), "required" if b in required else "",
             ", ".join(missed.get(b, []))] for b in sorted(set(total) | required)]


def table_rows(records: Sequence[dict]) -> list[list[str]]:
    return [[r["test"], r["sim"], "pass" if r["passed"] else "FAIL",
             f"{r['wall_seconds']:.1f}", str(r["simulated_cycles"]),
             "; ".join(r["problems"])[:60]] for r in records]


def random_settings(rng: random.Random) -> dict[str, str]:
    """One legal-looking configuration as ``permdeal gen``/``verify`` settings (flag values as
    strings), drawn from ``rng`` (a ``random.Random``); the caller checks that it builds."""
    n_layers = rng.randint(1, 3)
    sizes = [rng.randint(1, 40) for _ in range(n_layers + 1)]

    def fmt(lo, hi, frac_hi=None):
        bits = rng.randint(lo, hi)
        return f"{bits}:{rng.randint(0, min(bits - 1, frac_hi if frac_hi is not None else bits))}"
    act = fmt(4, 16)
    weight = fmt(4, 16, 6)
    bias_bits = rng.randint(4, 16)
    # (the draws in the order of the dict this function returned before lane groups, so that
    # a seed keeps its configuration when it draws one group; the group count comes last, and
    # more than one makes every layer take the first's block size)
    pes, lanes = rng.randint(1, 4), rng.randint(1, 4)
    scan_width = rng.randint(1, 8)
    ps = [rng.randint(1, 9) for _ in range(n_layers)]
    settings = {
        "pes": str(pes), "lanes": str(lanes), "scan_width": str(scan_width),
        "shape": ",".join(f"{sizes[i + 1]}x{sizes[i]}" for i in range(n_layers)),
        "p": ",".join(map(str, ps)),
        "act_format": act, "weight_format": weight,
        "bias_format": f"{bias_bits}:{rng.randint(0, int(act.split(':')[1]))}",
        "out_format": fmt(4, 16), "relu": rng.random() < 0.3,
        "multiplier": rng.choice(MULTIPLIERS),
    }
    return settings | _draw_groups(rng, pes, sizes, ps)


def _draw_groups(rng: random.Random, pes: int, sizes: list, ps: list) -> dict[str, str]:
    """Lane groups for :func:`random_settings` (drawn after everything else): a power of two
    that divides ``pes``; with more than one, every layer takes the first layer's block size,
    and the draw falls back to one group when a layer has fewer input blocks than groups."""
    groups = rng.choice([k for k in (1, 2, 4) if pes % k == 0])
    p = ps[0]
    if groups == 1 or any(-(-n // p) < groups for n in sizes[:-1]):
        return {}
    return {"groups": str(groups), "p": ",".join([str(p)] * len(ps))}
