"""SmartDeal compression (docs/design.md section 5) as a registered method: model folders with
their per-layer ROM images, its two hardware architectures (``--arch engine``, the default: the
SmartDeal engine of docs/design.md 11.1, ``gen.smartdeal_engine_design``; ``--arch units``: the
chain of layer units, ``gen.smartdeal_design``) with their cycle models, generators and design
folders (every design hook dispatches on the folder's manifest kind), and its figures in
``compare``."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np

from permdeal import atomic
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.gen import smartdeal_engine_design as sde
from permdeal.gen.smartdeal_design import (DESIGN_KIND, DEFAULT_NAME, SmartDealDesign,
                                           check_rom, cycles_table, model_table, write_design)
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden.manifest import read_manifest
from permdeal.golden import smartdeal as sd
from permdeal.golden import smartdeal_cycles as sd_cycles
from permdeal.golden import smartdeal_model as sdm
from permdeal.golden.compress import compress_smartdeal
from permdeal.golden.conv_model import ConvNet, compress_network
from permdeal.golden.smartdeal_train import finetune, quantized_mlp, smartdeal_mlp
from permdeal.golden.train import accuracy
from permdeal.hdl.smartdeal_layer import layer_spec
from permdeal.tables import table

from . import figures
from .base import Built, Method, Option, PowerSubject, fc_hardware, flag_context


def _int(text):
    """An integer; its range is checked where it is used (one-line errors)."""
    try:
        return int(text)
    except ValueError:
        raise PermdealError(f"expected an integer, got {text!r}") from None


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise PermdealError(f"expected a number, got {text!r}") from None


#: The SmartDeal hardware architectures (``--arch``), the default first.
ARCHS = ("engine", "units")
#: Why a PermDNN engine setting does not apply to a SmartDeal design (``gen``, ``cycles``), per
#: architecture.
REFUSED = {
    "units": {
        "pes": "the design has one layer unit per layer; --lanes sets its shift-add unit's lanes",
        "scan_width": "the layer units read their inputs from a buffer, there is no detector",
        "multiplier": "its MAC is the layer unit's own",
        "groups": "its layer units have no lane groups",
        "batch": "the layer-unit chain takes one input vector at a time",
    },
    "engine": {
        "scan_width": "the engine keeps a list of the non-zero inputs, there is no detector",
        "multiplier": "its lanes' multipliers are the engine's own",
        "groups": "the engine has no lane groups",
    },
}


def refuse(arch="units", **given):
    """Refuse the settings of ``given`` that are not None and that the architecture ``arch``
    does not take, naming the flag and why."""
    for key, value in given.items():
        if value is not None:
            why = REFUSED[arch].get(key, "the layers come from --model")
            what = "a SmartDeal model" + (" with --arch units" if arch == "units" else "")
            raise PermdealError(f"--{key.replace('_', '-')} does not apply to {what} ({why})")


def architecture(value):
    """The ``--arch`` of a SmartDeal design: ``engine`` (None, the default) or ``units``."""
    if value is None:
        return ARCHS[0]
    if value not in ARCHS:
        raise PermdealError(f"--arch must be one of {', '.join(ARCHS)}, not {value!r}")
    return value


def engine_batch(value):
    """The ``--batch`` of a SmartDeal engine (None: 1), checked: 1 to
    ``golden.smartdeal_engine_cycles.MAX_BATCH`` input vectors in flight."""
    if value is None:
        return 1
    return integer(_int(str(value)), "--batch", 1, ec.MAX_BATCH)


def engine_lanes(pes, lanes):
    """``(pes, lanes per PE)`` of a SmartDeal engine: ``pes`` (default 1) x ``lanes`` (required)
    MAC lanes, at most ``golden.smartdeal_engine_cycles.MAX_LANES``."""
    if lanes is None:
        raise PermdealError("--lanes is required for the SmartDeal engine (MAC lanes per PE; "
                            "--pes PEs, default 1; or --arch units for the layer-unit chain)")
    pes = 1 if pes is None else integer(_int(str(pes)), "--pes", 1)
    lanes = integer(_int(str(lanes)), "--lanes", 1)
    if pes * lanes > ec.MAX_LANES:
        raise PermdealError(f"--pes {pes} x --lanes {lanes} = {pes * lanes} MAC lanes; the "
                            f"SmartDeal engine has 1 to {ec.MAX_LANES}")
    return pes, lanes


def design_kind_of(design_dir):
    """The manifest kind of a SmartDeal design folder (the chain's or the engine's)."""
    path = Path(design_dir) / atomic.MANIFEST_NAME
    return read_manifest(path, (DESIGN_KIND, sde.DESIGN_KIND))["kind"]


def _is_engine(design_dir):
    return design_kind_of(design_dir) == sde.DESIGN_KIND


def shift_add_lanes(value, model):
    """The shift-add lanes ``value`` (None: the default, S) of a design of ``model``, checked."""
    if value is None:
        return None
    S = model.layers[0].codes.S
    try:
        return integer(_int(str(value)), "lanes", 1, min(S, sd.MAX_S))
    except PermdealError as e:
        raise PermdealError(f"--lanes (the shift-add unit's lanes, 1 to S = {S}): {e}") from None


class SmartDealMethod(Method):
    name = sdm.METHOD
    label = "SmartDeal"
    design_kind = DESIGN_KIND
    design_kinds = (DESIGN_KIND, sde.DESIGN_KIND)
    folder_kinds = (sdm.ROM_KIND, DESIGN_KIND, sde.DESIGN_KIND)
    takes_conv = True
    options = (
        Option("S", _int, "smartdeal: chunk width S (default 3)"),
        Option("E", _int, "smartdeal: exponent bits E, 2**E levels (default 3)"),
        Option("b_bits", _int, "smartdeal: bits of the B codes (default 8)"),
        Option("rows_per_block", _int, "smartdeal: chunks per block (default: a whole output "
               "row)"),
        Option("threshold", _float, "smartdeal: Ce magnitudes at or below it become 0 (default "
               "2**(e_min-1))"),
        Option("prune", _float, "smartdeal: fraction of Ce rows pruned per output group "
               "(default 0)"),
        Option("prune_group", _int, "smartdeal: outputs per pruning group (default 1)"),
    )
    rule = ("storage: the ROM encoding of docs/design.md 5.2: E + 2 bits per Ce element plus "
            "b_B bits per B element (golden.smartdeal.storage_bits 'smartdeal_fixed'); index "
            "overhead: the non-zero bit of every Ce code. Multiplies: MACs on rebuilt weights "
            "as the SmartDeal layer unit does them: every weight inside the matrix of every "
            "chunk the unit takes (a non-zero Ce row, or the last chunk of an output row; "
            "golden.smartdeal_cycles.slot_plan), whatever the activations (the JSON also gives "
            "the count with zero inputs skipped); shift-add work apart: one shifted B term per "
            "non-zero Ce entry and rebuilt weight (S per non-zero Ce entry). Cycles: a simple "
            "model: the exact one-unit count (golden.smartdeal_cycles, one shift-add unit "
            "feeding S multipliers) divided by the floor(multipliers / S) units the budget "
            "buys, output rows split evenly. No crossbar mapping.")

    # -- compression ---------------------------------------------------------------------------

    def compress(self, layers, spec, *, calibration=None, relu_last=False, **options):
        rpb, S = options.get("rows_per_block"), options.get("S", 3)
        if rpb is not None and isinstance(S, int) and S >= 1:
            chunks = max(-(-l.weight[0].size // S) for l in layers)  # a conv's matrix view
            if isinstance(rpb, int) and rpb > chunks:
                raise PermdealError(f"--rows-per-block {rpb}: a block holds at most the "
                                    f"{chunks} chunks of S = {S} inputs of the longest row")
        if any(l.is_conv for l in layers):
            for key in ("threshold", "prune", "prune_group"):
                if options.get(key) is not None:
                    raise PermdealError(f"--{key.replace('_', '-')} does not apply to a network "
                                        "with convolutions (its Ce codes are decomposed whole)")
            return compress_network(layers, "smartdeal", spec=spec, calibration=calibration,
                                    relu_last=relu_last, **options)
        return compress_smartdeal(layers, spec, calibration=calibration, relu_last=relu_last,
                                  **options)

    def write_model(self, model, folder, source):
        if isinstance(model, ConvNet):
            model.write(folder, source=source)
            rom_dir = Path(folder) / sdm.ROM_FOLDER
            rom_dir.mkdir()
            rom_man = sdm.write_rom(rom_dir, model)
            return f"model.npz, manifest.json, rom/ with {len(rom_man['images'])} images"
        _, rom_man = model.write_folder(folder, source=source)
        return f"model.npz, manifest.json, rom/ with {len(rom_man['images'])} images"

    def load(self, folder):
        return sdm.SmartDealModel.read(folder)

    def check(self, folder, manifest):
        if manifest["kind"] == sde.DESIGN_KIND:
            design = sde.SmartDealEngineDesign(folder)
            model, _ = design.load_model()
            return model, (f"SmartDeal engine design {design.top} ({len(design.sources)} Verilog "
                           f"file(s), {design.pes} PE x {design.lanes_per_pe} lanes = "
                           f"{design.lanes} MAC lanes, batch {design.batch}) and its ROM images")
        if manifest["kind"] == DESIGN_KIND:
            design = SmartDealDesign(folder)
            model, _ = design.load_model()
            return model, (f"SmartDeal design {design.top} ({len(design.sources)} Verilog "
                           f"files, {design.lanes} shift-add lanes) and its ROM images")
        if manifest["kind"] == sdm.ROM_KIND:
            rom_man, model = check_rom(folder)
            return model, f"{len(rom_man['images'])} SmartDeal ROM images"
        model = sdm.SmartDealModel.read(folder)
        rom_dir = folder / sdm.ROM_FOLDER
        if not rom_dir.is_dir():
            return model, "SmartDeal compressed model (no rom/ folder)"
        rom_man, images = check_rom(rom_dir)
        if len(images.layers) != len(model.layers):
            raise PermdealError(f"{rom_dir}: images of {len(images.layers)} layer(s), the model "
                                f"has {len(model.layers)}")
        for i, (a, b) in enumerate(zip(model.layers, images.layers)):
            for part, x, y in (("Ce", a.codes.codes, b.codes.codes),
                               ("B", a.codes.b_int, b.codes.b_int), ("bias", a.bias, b.bias)):
                if x.shape != y.shape or not np.array_equal(x, y):
                    raise PermdealError(f"{rom_dir}: layer {i} ({a.name}): the images hold "
                                        f"other {part} codes than {folder / 'model.npz'}")
        return model, (f"SmartDeal compressed model and its {len(rom_man['images'])} ROM "
                       f"images in {sdm.ROM_FOLDER}/")

    def check_table(self, folder, manifest, model):
        if manifest.get("kind") == sde.DESIGN_KIND:
            return sde.model_table(model, manifest["config"]["lanes"])
        return self.describe(model)

    def describe(self, model):
        if isinstance(model, ConvNet):
            return model.table()
        rows, tot = [], {"sd": 0, "dense": 0, "pd": 0}
        for l in model.layers:
            r, h = l.report, l.header
            if r is None:  # read back from a folder: the codes' table
                return model_table(model)
            bits = r["storage_bits"]
            tot["sd"] += bits["smartdeal_fixed"]
            tot["dense"] += bits["dense"]
            tot["pd"] += bits["permdiag"]
            ex = r["exponents"]
            used = "-" if ex["min"] is None else f"{ex['min']}..{ex['max']}"
            f, sat = l.fmts, l.saturated
            rows.append([l.name, f"{l.shape[1]} -> {l.shape[0]}", f"{r['rel_error']:.4f}",
                         f"{r['rel_error_quantized']:.4f}", f"{100 * r['ce_density']:.1f}%",
                         f"{used} of {r['e_min']}..{r['e_max']}", bits["smartdeal_fixed"],
                         f"{bits['dense'] / bits['smartdeal_fixed']:.2f}x",
                         f"{bits['permdiag'] / bits['smartdeal_fixed']:.2f}x",
                         f"{h['b_bits']}:{h['b_frac']}", f.weight, h["align_shift"],
                         f"{f.acc_bits}:{f.acc_frac}", "yes" if l.relu else "no",
                         f"{sat['b']}/{sat['weight']}/{sat['bias']}"])
        c = model.config
        return "\n".join([
            f"SmartDeal S={c['S']} E={c['E']} b_bits={c['b_bits']}: Ce codes {c['E'] + 2} bits",
            table(["layer", "in -> out", "rel err", "rel err q", "Ce dens", "exponents", "bits",
                   "vs dense", "vs PD p=8", "B fmt", "weight", "align", "acc", "relu",
                   "sat B/w/bias"], rows),
            f"storage: {tot['sd']} bits of Ce + B codes; dense 16-bit {tot['dense']} bits "
            f"({tot['dense'] / tot['sd']:.2f}x), PD p=8 {tot['pd']} bits "
            f"({tot['pd'] / tot['sd']:.2f}x) (ratios: their bits / SmartDeal's)"])

    def warnings(self, model):
        out = []
        lost = sum(l.report["lost_blocks"] for l in model.layers
                   if getattr(l, "report", None) is not None)
        if lost:
            out.append(f"{lost} block(s) with non-zero weights rebuild to zero (threshold or "
                       "exponent range)")
        sat = sum(sum(l.saturated.values()) for l in model.layers)
        if sat:
            out.append(f"{sat} B/weight/bias value(s) saturated")
        return out

    # -- hardware ------------------------------------------------------------------------------

    def write_rom(self, model, folder, *, pes=None, lanes=None, scan_width=None, groups=None):
        given = [f"--{k.replace('_', '-')}" for k, v in (("pes", pes), ("lanes", lanes),
                                                           ("scan_width", scan_width),
                                                           ("groups", groups))
                 if v is not None]
        if given:
            raise PermdealError(f"{given[0]} does not apply to a SmartDeal model: its images are "
                                "one set per layer (Ce codes, B codes, biases) whatever the "
                                "design")
        man = sdm.write_rom(folder, model)
        return man, (f"{len(man['images'])} images for {len(model.layers)} SmartDeal layer(s): "
                     + ", ".join(f"{img['file']} {img['depth']} x {img['width']} bit"
                                 for img in man["images"]))

    def cycles(self, model, codes, *, pes=None, lanes=None, scan_width=None, groups=None,
               arch=None, batch=None):
        if architecture(arch) == "engine":
            refuse("engine", scan_width=scan_width, groups=groups)
            pes, lanes = engine_lanes(pes, lanes)
            batch = engine_batch(batch)
            if codes is None:
                raise PermdealError("--inputs is required for the SmartDeal engine (its cycles "
                                    "depend on the inputs; --arch units for the layer units)")
            return sde.cycles_table(model, codes, pes, lanes, batch)
        fc_hardware(model, "--arch units", "the layer units take fully connected layers; "
                    "--arch engine runs a conv network")
        refuse(pes=pes, scan_width=scan_width, groups=groups, batch=batch)
        return cycles_table(model, shift_add_lanes(lanes, model),
                            None if codes is None else len(codes))

    def generate(self, model, output, *, pes=None, lanes=None, scan_width=None,
                 multiplier=None, groups=None, name=None, inputs=(), arch=None, batch=None):
        groups = None if groups in (None, 1) else groups
        if architecture(arch) == "engine":
            refuse("engine", scan_width=scan_width, multiplier=multiplier, groups=groups)
            pes, lanes = engine_lanes(pes, lanes)
            return sde.write_engine_design(
                output, model, pes * lanes, pes=pes, batch=engine_batch(batch),
                name=sde.DEFAULT_NAME if name is None else str(name), inputs=inputs)
        fc_hardware(model, "--arch units", "the layer units take fully connected layers; "
                    "--arch engine runs a conv network")
        refuse(pes=pes, scan_width=scan_width, multiplier=multiplier, groups=groups, batch=batch)
        return write_design(output, model, lanes=shift_add_lanes(lanes, model),
                            name=DEFAULT_NAME if name is None else str(name), inputs=inputs)

    def design_lines(self, model, manifest):
        ports = manifest["ports"]
        if manifest["kind"] == sde.DESIGN_KIND:
            c = manifest["config"]
            return [sde.model_table(model, c["lanes"]),
                    f"SmartDeal engine {manifest['top']}: {c['pes']} PE x {c['lanes_per_pe']} "
                    f"lanes = {c['lanes']} MAC lanes (one rebuild engine each), batch "
                    f"{c['batch']}; {ports['n_inputs']} inputs of {ports['in_bits']} bits, "
                    f"{ports['n_outputs']} outputs of {ports['out_bits']} bits; cycles depend "
                    "on the inputs (permdeal cycles MODEL --pes --lanes --inputs X.npy)"]
        lanes = manifest["config"]["lanes"]
        return [model_table(model, lanes),
                f"SmartDeal design {manifest['top']}: {len(model.layers)} layer unit(s) in a "
                f"chain, {lanes} shift-add lanes each; {ports['n_inputs']} inputs of "
                f"{ports['in_bits']} bits, {ports['n_outputs']} outputs of {ports['out_bits']} "
                f"bits; {manifest['cycles']['per_input']} cycles per input vector"]

    def design_model(self, design_dir, images=None):
        design = (sde.SmartDealEngineDesign if _is_engine(design_dir)
                  else SmartDealDesign)(design_dir)
        return design.load_model(images)[0]

    def simulate(self, design_dir, codes, sim, output, *, images=None, seed=None, waves=False,
                 inputs=()):
        if _is_engine(design_dir):
            from permdeal.verif.smartdeal_engine_sim import simulate_design as simulate
        else:
            from permdeal.verif.smartdeal_sim import simulate
        return simulate(design_dir, codes, sim, output, images=images, seed=seed, waves=waves,
                        inputs=inputs)

    def sim_cycles(self, design_dir, model, codes):
        if _is_engine(design_dir):
            d = sde.SmartDealEngineDesign(design_dir)
            runs = ec.model_cycles(model, sde.pad_batches(codes, d.batch)[0], d.lanes,
                                   batch=d.batch)
            return sum(r.total for r in runs), d.lanes
        lanes = SmartDealDesign(design_dir).lanes
        return sd_cycles.model_cycles(model, lanes).total * len(codes), 1

    def power_subject(self, design_dir):
        if _is_engine(design_dir):
            from permdeal.methods.smartdeal_engine import power_subject
            return power_subject(design_dir)
        from permdeal.synth import power
        from permdeal.verif import smartdeal_sim
        design = SmartDealDesign(design_dir)
        model, images = design.load_model()
        cyc = sd_cycles.model_cycles(model, design.lanes)

        def rom_kind(instance):  # layer<i>.<part>_rom (hdl.smartdeal_net, hdl.smartdeal_layer)
            parts = instance.split(".")
            unit, rom = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", parts[-1])
            i = unit.removeprefix("layer")
            part = rom.removesuffix("_rom")
            mems = layer_spec(model.layers[int(i)]).memories() \
                if i.isdigit() and int(i) < len(model.layers) else {}
            if not rom.endswith("_rom") or part not in mems:
                raise PermdealError(f"ROM instance {instance}: not a layer unit's Ce, B or bias "
                                    "ROM")
            width, depth, _signed = mems[part]
            return f"{model.layers[int(i)].name} {part}", width, depth

        return PowerSubject(
            design, model, images, {}, rom_kind, power.SMARTDEAL_BLOCKS,
            lambda codes: smartdeal_sim.bench(design, model, codes),
            lambda codes: float(sum(l.rebuilt_weights for l in cyc.layers)),
            {"method": self.name, "lanes": design.lanes,
             "layers": [f"{l.shape[0]}x{l.shape[1]} S={l.codes.S}" for l in model.layers]},
            f"SmartDeal, {len(model.layers)} layer unit(s) of {design.lanes} shift-add lanes",
            (*power.notes("the Ce, B and bias"),
             "the input buffers are flip-flops, in the logic figure",
             "MACs per inference: every rebuilt weight (S a chunk, the last chunk's padding "
             "included) meets its input once, zero inputs not skipped"))

    def sim_lines(self, report):
        if report.get("arch") == "engine":
            out = [sde.layer_rows(report["layers"])]
            cyc = report["cycles"]
            if cyc:
                same = "equal" if report["cycles_match_model"] else "DIFFERENT"
                b = report["batch"]
                per = "input" if b == 1 else f"batch of {b}"
                out.append(f"cycles per {per} ({report['pes']} PE x {report['lanes_per_pe']} "
                           f"lanes = {report['lanes']} MAC lanes): RTL {np.mean(cyc):.1f}, "
                           f"cycle model {np.mean(report['model_cycles']):.1f} ({same}); "
                           f"MAC-lane utilization {100 * report['lane_utilization']:.1f}%")
                if b > 1:
                    out.append(f"per input: {np.mean(cyc) / b:.1f} cycles"
                               + (f" ({report['padding']} zero vector(s) padded the last batch; "
                                  "their outputs are not reported)" if report["padding"] else ""))
            return out
        out = [table(["layer", "rows", "skipped", "cycles", "cyc/weight", "cyc/output"],
                     [[l["name"], l["active"], l["skipped"], l["compute"],
                       f"{l['cycles_per_weight']:.2f}", f"{l['cycles_per_output']:.1f}"]
                      for l in report["layers"]])]
        cyc = report["cycles"]
        if cyc:
            same = "equal" if report["cycles_match_model"] else "DIFFERENT"
            out.append(f"cycles per input: RTL {np.mean(cyc):.1f}, cycle model "
                       f"{report['model_cycles']} ({same})")
        return out

    # -- comparison ----------------------------------------------------------------------------

    def setting(self, st):
        return f"S={st.S} E={st.E} B {st.b_bits}-bit"

    def build(self, net, data, st):
        with flag_context("--S/--E"):
            dec = smartdeal_mlp(net.model, st.S, st.E)
        ft = data is not None and st.finetune_epochs > 0
        tuned = finetune(dec, data[0], data[1], epochs=st.finetune_epochs, seed=st.seed) \
            if ft else dec
        q_mlp, codes = quantized_mlp(tuned, st.b_bits)
        acc = None
        if data:
            acc = {"decomposed": accuracy(dec.to_mlp(), data[2], data[3]),
                   "float": accuracy(tuned.to_mlp(), data[2], data[3]),
                   "quantized_b": accuracy(q_mlp, data[2], data[3]), "finetuned": ft}
        return Built(list(zip(tuned.layers, codes)), [w.to_dense() for w in tuned.layers],
                     tuned.biases, acc)

    def figures(self, obj, X, st, in_block):
        dec, enc = obj
        m, n = dec.shape
        S = dec.S
        unit = types.SimpleNamespace(codes=enc)  # what smartdeal_cycles reads of a layer
        active, _ = sd_cycles.slot_plan(unit)     # (m, r) chunks the unit takes
        r = active.shape[1]
        width = np.minimum(S, n - S * np.arange(r))          # weights inside the matrix
        xs = np.pad(X != 0, ((0, 0), (0, r * S - n))).reshape(len(X), r, S).sum(axis=2)
        lc = sd_cycles.layer_cycles(unit)
        units = max(1, st.multipliers // S)
        nz_ce = int(np.count_nonzero(dec.ce))
        bits = sd.storage_bits(dec, st.b_bits, dense_bits=figures.WEIGHT_BITS)
        macs = figures.mean(xs @ active.sum(axis=0))
        c = figures.Count()
        c.layer_io(n, m, figures.mean(xs.sum(axis=1)))
        # Rebuild: every Ce code and B element read once (B into the rebuild engine's
        # registers, where it stays for its block), one shifted B term per non-zero Ce entry
        # and rebuilt weight (a shift and an add, both priced as 16-bit adds), every weight
        # inside the matrix of an active chunk written to the lanes' double-buffered weight
        # registers and read by the MACs that meet a non-zero input.
        rebuilt = int((active * width).sum())
        c.access("weights", dec.E + 2, dec.ce.size * (dec.E + 2), dec.ce.size,
                 banks=units, stored=True)
        c.access("weights", st.b_bits, dec.b.size * st.b_bits, dec.b.size, banks=units,
                 stored=True)
        c.op("add", figures.WEIGHT_BITS, 2 * S * nz_ce)
        c.access("weights", figures.WEIGHT_BITS, 2 * st.multipliers * figures.WEIGHT_BITS,
                 rebuilt + macs, banks=st.multipliers)
        c.macs(macs, m, st.multipliers)
        return {"storage_bits": bits["smartdeal_fixed"], "index_bits": int(dec.ce.size),
                **figures.energy(c, st), "multiplies": rebuilt, "multiplies_zero_skip": macs,
                "shift_add_terms": S * nz_ce, "ce_nonzeros": nz_ce,
                "ce_density": nz_ce / dec.ce.size,
                "cycles": float(-(-lc.compute // units)), "units": units,
                "unit_cycles": lc.compute, "storage": bits}

    def power_options(self, st):
        # the design of the design card: one unit per layer, S shift-add lanes (the engine's
        # power flow is permdeal.methods.smartdeal_engine's, not measured here yet)
        return {"S": st.S, "E": st.E, "b_bits": st.b_bits}, {"arch": "units"}

    def accuracy_note(self, acc, setting):
        return (figures.tuned_note(self.label, "decomposed", acc)
                + f"; SmartDeal fine-tuned with {setting.split()[-1]} B "
                f"{figures.pct(acc['quantized_b'])}")


