"""The interface every compression method implements, and the registry that holds them.

A method is one object registered by name (``permdiag``, ``smartdeal``, ``eie``, ...). The
commands and the API never branch on the method: they look it up here (by name, or by the
manifest of a folder it wrote) and call the hooks below. A hook a method has no answer for raises
:class:`Unsupported` naming the method and what it lacks (for example a baseline without
hardware asked to generate Verilog). Adding a method is one module that subclasses
:class:`Method` and calls :func:`register`; it then appears in ``permdeal compress --method``,
``permdeal check`` and ``permdeal compare`` with no other change (docs/design.md section 1).

Hooks, by command:

- ``compress``: :attr:`Method.options` (its own settings), :meth:`Method.compress`,
  :meth:`Method.write_model`, :meth:`Method.describe`, :meth:`Method.warnings`;
- ``check``, ``eval``, ``load``: :meth:`Method.owns`, :meth:`Method.load`, :meth:`Method.check`,
  :meth:`Method.check_table`;
- ``rom``, ``cycles``, ``gen``, ``sim``, ``synth`` (methods with hardware):
  :meth:`Method.write_rom`, :meth:`Method.cycles`, :meth:`Method.generate`,
  :attr:`Method.design_kind` (the design folders it writes, simulated and synthesized by the
  flows of that kind; :attr:`Method.design_kinds` when it writes several, each design hook then
  dispatching on the folder's manifest kind); ``power``: :meth:`Method.power_subject`;
- ``compare``: :attr:`Method.label`, :attr:`Method.rule`, :meth:`Method.setting`,
  :meth:`Method.build`, :meth:`Method.figures`, :meth:`Method.out_block`,
  :meth:`Method.accuracy_note`, :meth:`Method.power_options` (hardware whose energy it
  measures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from permdeal.errors import PermdealError
from permdeal.golden.model import MODEL_KIND


class Unsupported(PermdealError):
    """A method was asked for something it does not have (hardware, a model folder, ...)."""


def fc_hardware(model: Any, what: str,
                why: str = "the engine's conv dataflow is not built yet") -> None:
    """Refuse a conv network where ``what`` (a command) takes fully connected layers only, naming
    the first conv layer and ``why``."""
    for l in getattr(model, "layers", ()):
        if getattr(l, "conv", None) is not None:
            raise Unsupported(f"layer {l.name} is a convolution; {what} takes fully connected "
                              f"layers only so far ({why})")


@dataclass(frozen=True)
class Option:
    """One method-specific compression setting: ``name`` (the API keyword; the flag is
    ``--name`` with ``-`` for ``_``), ``parse`` (text to value, raising
    :class:`~permdeal.errors.PermdealError`) and ``help``."""

    name: str
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class PowerSubject:
    """What ``permdeal power`` measures of a design folder (:meth:`Method.power_subject`).

    ``design`` (``folder``, ``top``, ``sources``, ``manifest``), the ``model`` of its ROM images
    ``rom``; ``ram_modules``: the RAM modules the synthesis keeps as black boxes, each
    ``{kind, width, depth, granularity}``; ``rom_kind(instance)``: the memory kind, width and
    depth of a ROM instance (its dotted path), ``(kind, width, depth)``; ``blocks``: the power report's blocks
    (:data:`permdeal.synth.power.BLOCKS` style); ``bench(codes)``: the
    :class:`permdeal.verif.activity.Bench` that runs it on input codes; ``macs(codes)``: the
    multiply-accumulates of one inference (mean over ``codes``); ``describe``: the design's
    settings for the report, ``title`` a few words for tables and plots, ``notes`` what the
    figures leave out; ``batch``: the inferences one run of the bench's takes (its cycles count
    them together)."""

    design: Any
    model: Any
    rom: Any
    ram_modules: Mapping[str, dict]
    rom_kind: Callable[[str], tuple[str, int, int]]
    blocks: tuple
    bench: Callable[[Any], Any]
    macs: Callable[[Any], float]
    describe: dict
    title: str
    notes: tuple = field(default_factory=tuple)
    batch: int = 1


class Method:
    """Base class of the compression methods (see the module docstring for the hooks).

    Class attributes: ``name`` (registry key, ``--method NAME``, the ``method`` field of the
    model manifests it writes), ``label`` (its name in tables), ``rule`` (how ``compare`` counts
    its figures), ``options`` (:class:`Option` s of ``compress``), ``design_kind`` (the kind of
    design folder it generates, or None without hardware).
    """

    name: str = ""
    label: str = ""
    rule: str = ""
    options: tuple[Option, ...] = ()
    design_kind: str | None = None
    #: Manifest kinds of the folders it writes besides its model folders (ROM images, designs).
    folder_kinds: tuple[str, ...] = ()
    #: Manifest kinds of every design folder it generates (default: :attr:`design_kind`'s).
    design_kinds: tuple[str, ...] | None = None
    #: Whether ``synth --sweep`` may vary its engine's PEs and lanes.
    sweeps: bool = False
    #: Whether :meth:`compress` takes float models with convolutions (``golden.conv_model``).
    takes_conv: bool = False

    def _unsupported(self, what: str) -> Unsupported:
        return Unsupported(f"method {self.name!r} ({self.label}) has no {what}")

    # -- compression and model folders ---------------------------------------------------------

    @property
    def can_compress(self) -> bool:
        """Whether :meth:`compress` writes model folders (``compress --method`` offers it)."""
        return type(self).compress is not Method.compress

    def compress(self, layers: list, spec: Any, *, calibration: Any = None,
                 relu_last: bool = False, **options: Any) -> Any:
        """A compressed model of the float ``layers`` (``golden.model.FloatLayer`` s) with the
        number formats of ``spec`` (``golden.compress.QuantSpec``) and the checked
        ``options``."""
        raise self._unsupported("compressed-model folders (compress)")

    def write_model(self, model: Any, folder: Any, source: dict | None) -> str:
        """Write ``model`` into the (new, empty) ``folder``; returns what was written, for the
        ``wrote FOLDER/ (...)`` line."""
        raise self._unsupported("compressed-model folders (compress)")

    def owns(self, manifest: dict) -> bool:
        """Whether the folder whose manifest is ``manifest`` is one of this method's: a model
        folder whose ``method`` is this one's name, or a folder of :attr:`folder_kinds`."""
        kind = manifest.get("kind")
        return ((kind == MODEL_KIND and manifest.get("method") == self.name)
                or kind in self.folder_kinds)

    def load(self, folder: Any) -> Any:
        """The compressed model of a model folder this method wrote."""
        raise self._unsupported("compressed-model folders (load)")

    def check(self, folder: Any, manifest: dict) -> tuple[Any, str]:
        """Check a folder this method owns against its manifest: ``(model, what it holds)``."""
        raise self._unsupported("folders to check")

    def describe(self, model: Any) -> str:
        """The table of a model's layers that ``compress`` and ``check`` print."""
        raise self._unsupported("model table")

    def check_table(self, folder: Any, manifest: dict, model: Any) -> str:
        """The table ``check`` prints of a folder it checked (default: :meth:`describe`)."""
        return self.describe(model)

    def warnings(self, model: Any) -> list[str]:
        """Warnings on a fresh compressed model (saturation, lost blocks, ...)."""
        return []

    # -- hardware ------------------------------------------------------------------------------

    def write_rom(self, model: Any, folder: Any, *, pes: int | None = None,
                  lanes: int | None = None, scan_width: int | None = None,
                  groups: int | str | None = None) -> tuple[dict, str]:
        """Write the model's ROM images into ``folder``: ``(ROM manifest, summary line)``."""
        raise self._unsupported("ROM images")

    def kinds_of_designs(self) -> tuple[str, ...]:
        """The manifest kinds of the design folders it generates (simulates, synthesizes)."""
        if self.design_kinds is not None:
            return self.design_kinds
        return () if self.design_kind is None else (self.design_kind,)

    def cycles(self, model: Any, codes: Any, *, pes: int | None = None, lanes: int | None = None,
               scan_width: int | None = None, groups: int | str | None = None,
               arch: str | None = None, batch: int | None = None) -> str:
        """The cycle model's table for the input codes ``codes`` (or None where they do not
        matter); ``arch`` and ``batch`` (None where not given) choose among a method's
        architectures and the input vectors in flight."""
        raise self._unsupported("cycle model")

    def generate(self, model: Any, output: Any, *, pes: int | None = None,
                 lanes: int | None = None, scan_width: int | None = None,
                 multiplier: str | None = None, groups: int | str | None = None,
                 name: str | None = None, inputs: tuple = (), arch: str | None = None,
                 batch: int | None = None) -> dict:
        """Generate the design folder ``output`` (atomically, never over ``inputs``) for
        ``model``; returns its manifest. A setting the design does not take is refused when
        given (not None)."""
        raise self._unsupported("hardware generator")

    def design_lines(self, model: Any, manifest: dict) -> list[str]:
        """What ``permdeal gen`` prints of a design it generated for ``model``."""
        return [self.describe(model)]

    def design_model(self, design_dir: Any, images: Any = None) -> Any:
        """The model of a design folder's ROM images (``images`` or its own ``rom/``), checked
        against the design."""
        raise self._unsupported("hardware designs")

    def simulate(self, design_dir: Any, codes: Any, sim: str, output: Any, *, images: Any = None,
                 seed: int | None = None, waves: bool = False, inputs: tuple = ()) -> dict:
        """Run a design folder on input codes in ``sim`` against the golden and cycle models;
        writes the results folder ``output`` and returns its report."""
        raise self._unsupported("hardware designs")

    def sim_cycles(self, design_dir: Any, model: Any, codes: Any) -> tuple[int, int]:
        """``(clock cycles, lanes)`` a simulation of the design on ``codes`` will take, for the
        estimate of its time (:func:`permdeal.limits.check_simulation`)."""
        raise self._unsupported("hardware designs")

    def power_subject(self, design_dir: Any) -> PowerSubject:
        """What ``permdeal power`` needs to measure a design folder of this method."""
        raise self._unsupported("power flow")

    def sim_lines(self, report: dict) -> list[str]:
        """The method's own lines of ``permdeal sim``'s summary of ``report``."""
        return []

    # -- comparison ----------------------------------------------------------------------------

    def setting(self, st: Any) -> str:
        """The setting column of ``compare`` for the comparison settings ``st``."""
        return ""

    def build(self, net: Any, data: Any, st: Any) -> Any:
        """The method on one net of a comparison (``api.compare.Built``)."""
        raise self._unsupported("comparison figures")

    def figures(self, obj: Any, X: Any, st: Any, in_block: int | None) -> dict:
        """The figures of one layer (``obj`` as :meth:`build` holds it) on inputs ``X``."""
        raise self._unsupported("comparison figures")

    def out_block(self, obj: Any) -> int:
        """The block size in which a layer writes its outputs (the next PD-engine layer's input
        layout)."""
        return 1

    def power_options(self, st: Any) -> tuple[dict, dict] | None:
        """``(compress options, generate options)`` with which ``compare --measure-energy``
        builds this method's hardware for the comparison settings ``st``, or None where it has
        no hardware whose energy ``permdeal power`` measures."""
        return None

    def accuracy_note(self, acc: dict, setting: str) -> str | None:
        """What this method's accuracy in ``compare`` is (one phrase), or None."""
        return None


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its ``name`` must be new); returns it."""
    if not method.name or not method.name.isidentifier():
        raise ValueError(f"a method needs an identifier as its name, not {method.name!r}")
    if method.name in _REGISTRY:
        raise ValueError(f"method {method.name!r} is registered already")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def methods() -> list[Method]:
    """Every registered method, in registration order."""
    return list(_REGISTRY.values())


def names(compressing: bool = False) -> list[str]:
    """The registered names (only those that write model folders with ``compressing``)."""
    return [m.name for m in _REGISTRY.values() if m.can_compress or not compressing]


def get(name: str, compressing: bool = False) -> Method:
    """The method called ``name``, or an error listing the choices."""
    m = _REGISTRY.get(name)
    if m is None or (compressing and not m.can_compress):
        raise PermdealError(f"method must be one of {', '.join(map(repr, names(compressing)))}, "
                            f"not {name!r}")
    return m


def owner(manifest: dict, where: str) -> Method:
    """The method that wrote the folder with ``manifest`` (read from ``where``)."""
    for m in _REGISTRY.values():
        if m.owns(manifest):
            return m
    raise PermdealError(f"{where}: no registered method reads a folder of kind "
                        f"{manifest.get('kind')!r}, method {manifest.get('method')!r} (methods: "
                        f"{', '.join(names())})")


# -- what ``compare`` asks of a method ----------------------------------------------------------

@dataclass
class Built:
    """One method on one net of a comparison: per layer its object (as the golden model holds
    it), the float weights of the method's model (whose activations are counted) and its
    accuracies (dict, or None without data)."""

    layers: list
    weights: list
    biases: tuple
    accuracy: dict | None = None


class flag_context:
    """Context manager: a :class:`PermdealError` inside is re-raised naming ``flag`` (and the
    layer ``where``)."""

    def __init__(self, flag: str, where: str | None = None):
        self.prefix = f"{flag}: " + (f"layer {where}: " if where else "")

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if isinstance(e, PermdealError) and not str(e).startswith(self.prefix):
            raise PermdealError(self.prefix + str(e)) from None
        return False
