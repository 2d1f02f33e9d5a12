"""The API of hardware: the cycle model on a batch, generating a design folder from a compressed
model (any method with hardware) or from layer shapes (the PermDNN engine), simulating a design
against the golden and cycle models, and synthesizing it.

None of these functions prints; long runs take a ``progress(text)`` callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from permdeal import atomic, checks, limits, methods
from permdeal.errors import PermdealError
from permdeal.gen import report as _report
from permdeal.gen.design import Design as _Design
from permdeal.gen.design import write_design
from permdeal.golden import rom as _rom
from permdeal.golden.cycles import DEFAULT_SCAN_WIDTH, MULTIPLIERS, EngineConfig, model_cycles
from permdeal.golden.manifest import read_manifest
from permdeal.golden.model import QuantModel

from .models import compressed, fresh, input_codes, load, method_of
from .settings import GEN_SETTINGS, DesignSettings, design_settings, load_config

# -- the cycle model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycles:
    """The cycle model on a batch: ``runs`` (one
    :class:`~permdeal.golden.cycles.InferenceCycles` per input), ``config``, ``model``."""

    runs: tuple
    config: EngineConfig
    model: QuantModel

    @property
    def totals(self) -> np.ndarray:
        """Cycles of every inference (first input accepted to last output accepted)."""
        return np.array([r.total for r in self.runs])

    @property
    def mean(self) -> float:
        """Mean cycles per inference."""
        return float(self.totals.mean())

    @property
    def utilization(self) -> float:
        """Mean lane utilization over the compute phase."""
        return float(np.mean([r.utilization for r in self.runs]))

    def layer_utilization(self) -> dict:
        """``{layer name: mean lane utilization of that layer}``."""
        return {l.name: float(np.mean([r.layers[i].utilization for r in self.runs]))
                for i, l in enumerate(self.model.layers)}

    def table(self) -> str:
        """The per-layer table ``permdeal cycles`` prints."""
        return _report.cycles_table(self.model, self.config, list(self.runs))


def _permdiag(model: Any, what: str) -> QuantModel:
    model = compressed(model)
    if method_of(model).name != "permdiag":
        raise PermdealError(f"{what}: the engine runs permuted-diagonal models; this is a "
                            f"{method_of(model).label} model (compress with method='permdiag')")
    return model


def cycles(model: Any, x: Any, pes: int, lanes: int,
           scan_width: int = DEFAULT_SCAN_WIDTH) -> Cycles:
    """Exact engine cycles for inputs ``x`` (``permdeal cycles``), without simulation::

        c = cycles(model, digits()[2], pes=4, lanes=2)
        c.mean, c.utilization, print(c.table())
    """
    model = _permdiag(model, "cycles")
    cfg = EngineConfig(pes, lanes, scan_width=scan_width)
    codes = input_codes(model, x, "x").codes
    return Cycles(tuple(model_cycles(model, xi, cfg) for xi in codes), cfg, model)


# -- generation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Generated:
    """What :func:`generate_design` wrote: the design ``manifest``, the compressed ``model``
    (None without one), the ``settings`` and the ``method`` (None: the PermDNN engine from layer
    shapes)."""

    manifest: dict
    model: Any
    settings: DesignSettings
    method: methods.Method | None


def _config_values(config: Any) -> dict:
    return {} if config is None else load_config(config)


def model_folder(given: dict, config: Any) -> str | None:
    """The model folder of the settings (a flag or a setting of ``config``), or None."""
    if given.get("model") is not None:
        return str(given["model"])
    value = _config_values(config).get("model")
    return None if value is None else str(value)


def design_maker(given: dict, config: Any = None, defaults: dict | None = None,
                 required: tuple = ("output",)) -> tuple[DesignSettings, Any, Callable]:
    """The settings of a design, its model (or None) and ``make(folder, inputs=())``, which
    generates it: with a model, its method's generator (which refuses the settings it does not
    take); without, the PermDNN engine for the layer shapes of the settings."""
    if model_folder(given, config) is not None:
        # design_settings refuses the layer settings beside a model; the method refuses the
        # engine settings it does not take, so it hears only those given.
        st = design_settings(given, config, defaults, required=required)
        merged = {**_config_values(config),
                  **{k: v for k, v in given.items() if v not in (None, False)}}
        model = load(st.model)
        m = method_of(model)
        chosen = {k: getattr(st, k) if k in merged else None
                  for k in ("pes", "lanes", "scan_width", "multiplier", "groups", "name",
                            "arch", "batch")}

        def make(folder, inputs=()):
            return m.generate(model, folder, inputs=inputs, **chosen)
        return st, model, make
    st = design_settings(given, config, defaults, required=("pes", "lanes", *required))
    cfg, layers = st.engine, st.layers()

    def make(folder, inputs=()):
        return write_design(folder, cfg, layers, model=None, name=st.name, inputs=inputs)
    return st, None, make


def generate_design(given: dict, config: Any = None) -> Generated:
    """``permdeal gen``: the design of the settings ``given`` (flag values, None where not
    given) over the ``config`` file, written to its ``output`` folder."""
    st, model, make = design_maker(given, config)
    inputs = [config] if config else []
    if model is not None:
        inputs.append(st.model)
    man = make(st.output, inputs=inputs)
    return Generated(man, model, st, None if model is None else method_of(model))


class Design:
    """A generated PermDNN engine design folder (``permdeal gen``), checked against its
    manifest.

    ``folder``; ``config`` (:class:`~permdeal.golden.cycles.EngineConfig`); ``top`` (the Verilog
    module); ``ports`` (``in_bits``, ``out_bits``, ``n_inputs``, ``n_outputs``); ``verilog`` (the
    source files); ``rom_images`` (``{file name: path}``, empty when the images come later);
    ``manifest``; ``model`` (the compressed model the images hold, or ``None``)::

        d = Design("build/design"); d.ports["n_inputs"], d.rom_images
    """

    def __init__(self, folder: str | Path):
        from permdeal.verif.sim import load_model
        self._design = _Design(folder)
        d = self._design
        self.folder, self.config, self.top = d.folder, d.cfg, d.top
        self.manifest = d.manifest
        self.ports = dict(d.manifest["ports"])
        self.verilog = list(d.sources)
        self.model, self.rom_images = None, {}
        if (d.rom_dir / atomic.MANIFEST_NAME).is_file():
            self.model, rom = load_model(d)
            man = read_manifest(rom / atomic.MANIFEST_NAME, _rom.ROM_KIND)
            self.rom_images = {e["file"]: rom / e["file"] for e in man["images"]}

    def __repr__(self) -> str:
        c = self.config
        return (f"Design({str(self.folder)!r}: {c.n_pe} PE x {c.lanes} lanes, "
                f"{self.ports['n_inputs']} -> {self.ports['n_outputs']})")

    def predict(self, x: Any, sim: str = "verilator", **kwargs: Any) -> Result:
        """:func:`simulate` this design on ``x``: outputs, predictions and stats::

            r = design.predict(X_te, sim="icarus"); r.predictions, r.cycles
        """
        return simulate(self, x, sim=sim, **kwargs)


def generate(model: Any, pes: int, lanes: int, scan_width: int = DEFAULT_SCAN_WIDTH,
             output: Any = None, name: str = "permdeal_engine",
             multiplier: str = MULTIPLIERS[0], groups: int | str = 1) -> Design:
    """Generate the engine's Verilog, ROM images and manifest for a permuted-diagonal model
    (``permdeal gen --model``); returns the :class:`Design`::

        design = generate(model, pes=4, lanes=2, output="build/design")
    """
    model = _permdiag(model, "generate")
    out = Path(output) if output is not None else fresh("design")
    method_of(model).generate(model, out, pes=pes, lanes=lanes, scan_width=scan_width,
                              multiplier=multiplier, groups=groups, name=name)
    return Design(out)


# -- simulation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """One simulation of a design on a batch (``permdeal sim``'s results).

    ``outputs``: the RTL's output codes (batch x outputs); ``values``: the same as floats of the
    output format; ``predictions``: the index of each row's largest output; ``cycles``: the RTL's
    cycles per input, ``model_cycles`` the cycle model's; ``golden_equal``: every output equals the
    golden model's; ``cycles_equal``: every count equals the cycle model's; ``lane_utilization``;
    ``report`` (the whole ``report.json``); ``folder`` (the results folder).
    """

    outputs: np.ndarray
    values: np.ndarray
    predictions: np.ndarray
    cycles: list
    model_cycles: list
    golden_equal: bool
    cycles_equal: bool
    lane_utilization: float
    report: dict
    folder: Path


def design_method(design_dir: str | Path) -> methods.Method:
    """The method whose hardware a design folder holds (its manifest's kind)."""
    kinds = {k: m for m in methods.methods() for k in m.kinds_of_designs()}
    man = read_manifest(Path(design_dir) / atomic.MANIFEST_NAME, tuple(kinds))
    return kinds[man["kind"]]


@dataclass(frozen=True)
class Simulated:
    """:func:`simulate_design`'s result: the ``report`` (``report.json``), the ``method`` and
    how many float inputs saturated on the way to codes."""

    report: dict
    method: methods.Method
    saturated: int


def simulate_design(design_dir: str | Path, x: Any, sim: str, output: str | Path, *,
                    images: Any = None, seed: int | None = None, waves: bool = False,
                    what: str = "--inputs", progress: Callable[[str], None] | None = None,
                    ) -> Simulated:
    """``permdeal sim``: run any design folder on inputs ``x`` (floats, codes or a ``.npy``
    path) and write the results folder ``output``. A simulation estimated past the limit of
    :mod:`permdeal.limits` is refused; a long one is announced to ``progress``."""
    from permdeal.verif.runner import SIMULATORS
    if sim not in SIMULATORS:
        raise PermdealError(f"sim must be one of {', '.join(map(repr, SIMULATORS))}, not {sim!r}")
    if seed is not None:
        checks.seed(seed, "--seed")
    m = design_method(design_dir)
    model = m.design_model(design_dir, images)
    codes = input_codes(model, x, what)
    cycles, lanes = m.sim_cycles(design_dir, model, codes.codes)
    note = limits.check_simulation(cycles, sim, lanes, f"{len(codes.codes)} input(s)")
    if note and progress:
        progress(f"note: {note}")
    rep = m.simulate(design_dir, codes.codes, sim, output, images=images, seed=seed,
                     waves=waves, inputs=[x] if isinstance(x, (str, Path)) else [])
    return Simulated(rep, m, codes.saturated)


def _design_of(design: Any) -> Design:
    if isinstance(design, Design):
        return design
    if isinstance(design, (str, Path)):
        return Design(design)
    raise PermdealError(f"design must be a Design (from generate) or a design folder, not "
                        f"{type(design).__name__}")


def simulate(design: Any, x: Any, sim: str = "verilator", output: Any = None,
             seed: int | None = None, waves: bool = False) -> Result:
    """Run a design on inputs ``x`` in a simulator against the golden model (``permdeal sim``).

    ``sim`` is ``"verilator"`` or ``"icarus"``; ``seed`` the cocotb seed (default a fresh one,
    in ``result.report["seed"]``). Returns a :class:`Result`::

        r = simulate(design, X_te[:20], sim="verilator")
        assert r.golden_equal and r.cycles_equal
        accuracy = (r.predictions == y_te[:20]).mean()
    """
    from permdeal.verif.runner import SIMULATORS
    from permdeal.verif.sim import load_model
    from permdeal.verif.sim import simulate as run
    d = _design_of(design)
    if sim not in SIMULATORS:
        raise PermdealError(f"sim must be one of {', '.join(map(repr, SIMULATORS))}, not {sim!r}")
    if d.model is None:
        load_model(d._design)  # raises: no ROM images, and how to write them
    codes = input_codes(d.model, x, "x").codes
    out = Path(output) if output is not None else fresh("sim")
    rep = run(d.folder, codes, sim, out, seed=seed, waves=waves,
              inputs=[x] if isinstance(x, (str, Path)) else [])
    y = np.load(out / "outputs.npy")
    return Result(outputs=y, values=d.model.output_format.to_float(y),
                  predictions=np.argmax(y, axis=1), cycles=list(rep["cycles"]),
                  model_cycles=list(rep["model_cycles"]), golden_equal=rep["golden_match"],
                  cycles_equal=rep["cycles_match_model"],
                  lane_utilization=rep["lane_utilization"], report=rep, folder=out)


# -- synthesis -------------------------------------------------------------------------------

def synthesize(design: Any, targets: Any = ("generic", "asic"), output: Any = None,
               **options: Any) -> dict:
    """Synthesize a design (``permdeal synth --design``); returns the report dict (also written
    to ``output``/report.json with report.txt and the tools' logs).

    ``targets``: any of ``"generic"``, ``"asic"``, ``"ecp5"`` (a sequence or comma-separated
    text). ``options`` are :class:`~permdeal.synth.flow.SynthOptions`'s: ``device``, ``speed``,
    ``target_mhz``, ``seed``, ``asic_mhz``, ``sram_um2_per_bit``, ``liberty``, ``flat``::

        rep = synthesize(design, targets=("asic",))
        rep["asic"]["logic_area_um2"]
    """
    from permdeal.synth import designs, flow
    folder = design.folder if isinstance(design, Design) else design
    if not isinstance(folder, (str, Path)):
        raise PermdealError(f"design must be a Design (from generate) or a design folder, not "
                            f"{type(design).__name__}")
    if not isinstance(targets, str):
        try:
            targets = ",".join(targets)
        except TypeError:
            raise PermdealError(f"targets must be a sequence of target names, not {targets!r}") \
                from None
    names = flow.parse_targets(targets)
    try:
        opts = flow.SynthOptions(**options)
    except TypeError as e:
        raise PermdealError(f"synthesize: {e} (options: device, speed, target_mhz, seed, "
                            "asic_mhz, sram_um2_per_bit, liberty, flat)") from None
    flow.check_tools(names, opts)
    out = Path(output) if output is not None else fresh("synth")
    return designs.run(folder, names, opts, out)


__all__ = ["GEN_SETTINGS", "Cycles", "Design", "Generated", "Result", "Simulated", "cycles",
           "design_maker", "design_method", "generate", "generate_design", "simulate",
           "simulate_design", "synthesize"]
