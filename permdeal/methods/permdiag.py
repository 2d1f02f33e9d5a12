"""Permuted-diagonal compression (PermDNN, docs/design.md section 4) as a registered method:
compressed-model folders, per-PE-and-lane ROM images, the exact engine cycle model, the engine
generator, and its figures in ``compare``."""

from __future__ import annotations

import numpy as np

from permdeal import limits
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.gen import report
from permdeal.gen.design import DESIGN_KIND, write_design
from permdeal.golden import cycles as pd_cycles
from permdeal.golden import rom
from permdeal.golden.compress import compress_permdiag
from permdeal.golden.conv_model import ConvNet, compress_network
from permdeal.golden.conv_walk import engine_cycles, engine_pools, engine_walks
from permdeal.golden.crossbar import permdiag_mapping
from permdeal.golden.cycles import (AUTO_DENSITY, DEFAULT_SCAN_WIDTH, MULTIPLIERS, EngineConfig,
                                    auto_layer_groups, model_cycles)
from permdeal.golden.model import MODEL_KIND, METHOD, QuantModel
from permdeal.golden.permdiag import index_bits
from permdeal.golden.train import accuracy, project, train

from . import figures
from .base import Method, Option, PowerSubject, fc_hardware


def parse_block_sizes(text: str) -> int | list[int]:
    """``P`` (every layer) or ``P1,P2,...`` (one per layer), each >= 1."""
    values = []
    for v in str(text).split(","):
        try:
            values.append(integer(int(v), "block size p", 1))
        except ValueError:
            raise PermdealError(f"expected an integer, got {v!r}") from None
    return values[0] if len(values) == 1 else values


def engine_config(pes: int | None, lanes: int | None, scan_width: int | None,
                  multiplier: str | None = None) -> EngineConfig:
    """The engine of ``pes`` x ``lanes`` (both required for this method), scan width default
    :data:`~permdeal.golden.cycles.DEFAULT_SCAN_WIDTH`, multiplier style default the first of
    :data:`~permdeal.golden.cycles.MULTIPLIERS`."""
    for flag, value in (("--pes", pes), ("--lanes", lanes)):
        if value is None:
            raise PermdealError(f"{flag} is required for a permuted-diagonal model (the engine "
                                "is laid out per PE and lane)")
    cfg = EngineConfig(pes, lanes, DEFAULT_SCAN_WIDTH if scan_width is None else scan_width,
                       MULTIPLIERS[0] if multiplier is None else multiplier)
    limits.check_engine(cfg.n_pe, cfg.lanes, cfg.scan_width)
    return cfg


#: Random inputs of the model's input format that ``--groups auto`` runs the cycle model on.
AUTO_INPUTS = 8


def with_groups(cfg: EngineConfig, groups: int | str | tuple | None, model) -> EngineConfig:
    """``cfg`` with ``groups`` lane groups (None: 1; a tuple: one count per layer); ``auto``:
    per layer, :func:`golden.cycles.auto_layer_groups` on the activations of
    :data:`AUTO_INPUTS` random inputs of density :data:`golden.cycles.AUTO_DENSITY` (seed 0)
    through ``model``."""
    if groups == "auto":
        fc_hardware(model, "--groups auto", "a conv network runs with one lane group, "
                    "docs/design.md 15")
        rng = np.random.default_rng(0)
        fmt = model.input_format
        x = rng.integers(fmt.min, fmt.max + 1, size=(AUTO_INPUTS, model.n_inputs))
        x[rng.random(x.shape) >= AUTO_DENSITY] = 0
        acts = [model.forward(xi, trace=True) for xi in x]
        layers = [(l.shape[1], l.matrix.blocks[0], l.matrix.p) for l in model.layers]
        groups = auto_layer_groups(layers, cfg, [a[:len(layers)] for a in acts])
    out = EngineConfig.with_layer_groups(cfg, 1 if groups is None else groups)
    out.check_layers(len(rom.matrix_layers(model)))
    return out


def _refuse_smartdeal_flags(**given):
    """Refuse the SmartDeal settings (``--arch``, ``--batch``) given for a PD model."""
    for key, value in given.items():
        if value is not None:
            raise PermdealError(f"--{key} applies to a SmartDeal model (the PermDNN engine has "
                                "one architecture and takes one input vector at a time)")


class PermDiagMethod(Method):
    name = METHOD
    label = "PD"
    design_kind = DESIGN_KIND
    folder_kinds = (rom.ROM_KIND, DESIGN_KIND)
    sweeps = True
    takes_conv = True
    options = (Option("p", parse_block_sizes, "permdiag: block size, or one per layer separated "
                      "by commas (1 = dense); required"),)
    rule = ("storage: 16 bits per stored weight inside the matrix plus ceil(log2 p) index bits "
            "per p x p block. Multiplies: every non-zero input meets one weight in each of the "
            "M' block-rows (padded rows included, as the lanes compute them): M' * nnz(x). "
            "Cycles: golden.cycles' exact engine model on the PE x lane budget (issue and "
            "write-back; input loading and output streaming left out, as for every format). "
            "Crossbars: permdiag_mapping, compact mode.")

    # -- compression ---------------------------------------------------------------------------

    def compress(self, layers, spec, *, calibration=None, relu_last=False, p=None, **options):
        if p is None:
            raise PermdealError("method 'permdiag' needs p (--p: one block size, or one per "
                                "layer separated by commas; 1 = dense)")
        if isinstance(p, (str, bytes)):
            raise PermdealError(f"block size p must be an integer or one per layer, not {p!r}")
        if any(l.is_conv for l in layers):
            return compress_network(layers, "permdiag", p, spec, calibration, relu_last)
        return compress_permdiag(layers, p, spec, calibration=calibration, relu_last=relu_last)

    def write_model(self, model, folder, source):
        model.write(folder, source=source)
        return "model.npz, manifest.json"

    def load(self, folder):
        return QuantModel.read(folder)

    def check(self, folder, manifest):
        if manifest["kind"] == DESIGN_KIND:
            from permdeal.gen.design import Design
            from permdeal.verif.sim import load_model
            design = Design(folder)
            c = design.cfg
            return load_model(design)[0], (f"engine design {design.top} ({len(design.sources)} "
                                           f"Verilog files, {c.n_pe} PE x {c.lanes} lanes) and "
                                           "its ROM images")
        if manifest["kind"] == MODEL_KIND:
            return QuantModel.read(folder), "compressed model"
        cfg = manifest["config"]
        return (rom.model_from_images(folder),
                f"{len(manifest['images'])} ROM images for {cfg['n_pe']} PE x {cfg['lanes']} "
                "lanes")

    def describe(self, model):
        return model.table() if isinstance(model, ConvNet) else report.model_table(model)

    def warnings(self, model):
        sat = sum(sum(l.saturated.values()) for l in model.layers)
        return [f"{sat} weight/bias value(s) saturated (--allow-saturation)"] if sat else []

    # -- hardware ------------------------------------------------------------------------------

    def write_rom(self, model, folder, *, pes=None, lanes=None, scan_width=None, groups=None):
        cfg = with_groups(engine_config(pes, lanes, scan_width), groups, model)
        man = rom.write_images(folder, model, cfg)
        mems = man["memories"]
        return man, (f"{len(man['images'])} images for {cfg.n_pe} PE x {cfg.lanes} lanes"
                     f"{f' in {cfg.groups_text}' if cfg.groups > 1 else ''}: "
                     + ", ".join(f"{m} {mems[m]['depth']} x {mems[m]['width']} bit"
                                 for m in rom.MEMORIES))

    def cycles(self, model, codes, *, pes=None, lanes=None, scan_width=None, groups=None,
               arch=None, batch=None):
        _refuse_smartdeal_flags(arch=arch, batch=batch)
        if codes is None:
            raise PermdealError("--inputs is required for a permuted-diagonal model")
        cfg = with_groups(engine_config(pes, lanes, scan_width), groups, model)
        return report.cycles_table(model, cfg, [engine_cycles(model, x, cfg) for x in codes])

    def generate(self, model, output, *, pes=None, lanes=None, scan_width=None,
                 multiplier=None, groups=None, name=None, inputs=(), arch=None, batch=None):
        _refuse_smartdeal_flags(arch=arch, batch=batch)
        if isinstance(model, ConvNet) and groups not in (None, 1):
            raise PermdealError(f"--groups {groups}: a conv network runs on an engine of one "
                                "lane group (docs/design.md 15)")
        cfg = with_groups(engine_config(pes, lanes, scan_width, multiplier), groups, model)
        if isinstance(model, ConvNet):
            # the engine's conv dataflow (docs/design.md 15): refuses what it does not run
            return write_design(output, cfg, model.matrix_layers(), model=model,
                                name=name or "permdeal_engine", inputs=inputs,
                                walks=engine_walks(model), pools=engine_pools(model))
        return write_design(output, cfg, model.layers, model=model,
                            name=name or "permdeal_engine", inputs=inputs)

    def design_lines(self, model, manifest):
        c, ports = manifest["config"], manifest["ports"]
        return [self.describe(model),
                f"engine {manifest['top']}: {c['n_pe']} PE x {c['lanes']} lanes, scan width "
                f"{c['scan_width']}, {c.get('multiplier', MULTIPLIERS[0])} multipliers"
                f"{f', {groups} lane groups' if (groups := c.get('groups', 1)) > 1 else ''}"
                f"{f' (per layer {per})' if (per := ', '.join(map(str, c.get('layer_groups', [])))) else ''}; "
                f"{ports['n_inputs']} inputs of {ports['in_bits']} bits, "
                f"{ports['n_outputs']} outputs of {ports['out_bits']} bits"]

    def design_model(self, design_dir, images=None):
        from permdeal.gen.design import Design
        from permdeal.verif.sim import load_model
        return load_model(Design(design_dir), images)[0]

    def simulate(self, design_dir, codes, sim, output, *, images=None, seed=None, waves=False,
                 inputs=()):
        from permdeal.verif.sim import simulate
        return simulate(design_dir, codes, sim, output, images=images, seed=seed, waves=waves,
                        inputs=inputs)

    def sim_cycles(self, design_dir, model, codes):
        from permdeal.gen.design import Design
        cfg = Design(design_dir).cfg
        return sum(engine_cycles(model, x, cfg).total for x in codes), cfg.total_lanes

    def power_subject(self, design_dir):
        from permdeal.gen.design import Design
        from permdeal.synth import flow, memory, power
        from permdeal.verif import activity
        from permdeal.verif.sim import load_model
        design = Design(design_dir)
        model, images = load_model(design)
        fc_hardware(model, "power", "its activity bench does not run a conv network yet")
        engine = flow._engine(design)
        c = design.cfg

        shapes = memory.memory_kinds(engine)

        def rom_kind(instance):
            kind = next((k for k in rom.MEMORIES if instance.endswith(f"_{k}")), None)
            if kind is None:
                raise PermdealError(f"ROM instance {instance}: not a weight, k or bias ROM")
            return kind, shapes[kind]["width"], shapes[kind]["depth"]

        def macs(codes):
            return float(np.mean([sum(l.useful_lane_cycles for l in
                                      model_cycles(model, x, c).layers) for x in codes]))
        return PowerSubject(
            design, model, images, dict(engine.ram_memories), rom_kind, power.BLOCKS,
            lambda codes: activity.engine_bench(design, model, codes), macs,
            c.to_json(), f"{c.n_pe} PE x {c.lanes} lanes"
            + (f", {c.groups_text}" if c.groups > 1 else ""),
            power.notes("the weight, k and bias"))

    def sim_lines(self, report):
        cyc = report["cycles"]
        if not cyc:
            return []
        same = "equal" if report["cycles_match_model"] else "DIFFERENT"
        return [f"cycles per input: mean {np.mean(cyc):.1f} (cycle model "
                f"{np.mean(report['model_cycles']):.1f}, {same}); lane utilization "
                f"{100 * report['lane_utilization']:.1f}%"]

    # -- comparison ----------------------------------------------------------------------------

    def setting(self, st):
        return f"p={st.p}"

    def build(self, net, data, st):
        return figures.projected_build(net, data, st, "--p", lambda m: project(m, st.p), train,
                                       accuracy, lambda m: m.weights)

    def figures(self, obj, X, st, in_block):
        pd = obj
        mb = pd.blocks[0]
        nnz = np.count_nonzero(X, axis=1)
        cyc = [pd_cycles.layer_cycles(x, mb, pd.p, st.engine, in_block).total for x in X]
        return {"storage_bits": pd.n_weights * figures.WEIGHT_BITS + pd.index_bits_total,
                **figures.energy(self.count(pd, X, st), st),
                "index_bits": pd.index_bits_total, "multiplies": figures.mean(mb * nnz),
                "cycles": figures.mean(cyc), "block_rows": mb, "slots": st.engine.slots(mb),
                "crossbars_dense_mode": permdiag_mapping(pd.shape, pd.p, st.xbar,
                                                         "dense").crossbars,
                **figures.mapping(permdiag_mapping(pd.shape, pd.p, st.xbar), st.xbar)}

    @staticmethod
    def count(pd, X, st) -> figures.Count:
        """PD's events: per non-zero input, one MAC in each of the M' block-rows, each reading
        its stored weight and its block's ``ceil(log2 p)``-bit index (the row comes from the
        index, no other address)."""
        (m, n), mb = pd.shape, pd.blocks[0]
        B, nnz = st.multipliers, figures.mean(np.count_nonzero(X, axis=1))
        macs = mb * nnz
        c = figures.Count()
        c.layer_io(n, m, nnz)
        c.macs(macs, m, B)
        c.access("weights", figures.WEIGHT_BITS, pd.n_weights * figures.WEIGHT_BITS, macs,
                 banks=B, stored=True)
        if pd.index_bits_total:
            c.access("index", index_bits(pd.p), pd.index_bits_total, macs, banks=B,
                     stored=True)
        return c

    def out_block(self, obj):
        return obj.p

    def power_options(self, st):
        e = st.engine
        return {"p": st.p}, {"pes": e.n_pe, "lanes": e.lanes, "scan_width": e.scan_width}

    def accuracy_note(self, acc, setting):
        return figures.tuned_note(self.label, "projected", acc)



