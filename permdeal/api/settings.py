"""A design's settings: the one table of ``permdeal gen``'s settings (flags, ``--config`` files
and the API share it), their parsing, defaults and merge order, and the layers of a design
generated without a model.

:class:`DesignSettings` is the typed, checked configuration; it round-trips through JSON and TOML
files (:meth:`DesignSettings.to_json`, :func:`load_config`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from permdeal import atomic, limits
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.cycles import DEFAULT_SCAN_WIDTH, MULTIPLIERS, EngineConfig, auto_layer_groups
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.golden.manifest import read_manifest
from permdeal.golden.model import MODEL_KIND, LayerSpec
from permdeal.methods.smartdeal import ARCHS


def parse_int(text: Any, lo: int) -> int:
    """``text`` as an integer >= ``lo``."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise PermdealError(f"expected an integer, got {text!r}") from None
    return integer(value, "value", lo)


def parse_shapes(text: Any) -> list[tuple[int, int]]:
    """``OUTxIN[,OUTxIN...]``: one layer shape each, chaining."""
    out = []
    for part in str(text).split(","):
        try:
            m, n = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise PermdealError(f"layer shape must be OUTxIN (outputs x inputs), not {part!r}") \
                from None
        out.append((integer(m, "layer outputs", 1), integer(n, "layer inputs", 1)))
    for (m0, _), (_, n1) in zip(out, out[1:]):
        if m0 != n1:
            raise PermdealError(f"layer shapes do not chain: {m0} outputs feed {n1} inputs")
    return out


def user_format(text: Any, what: str = "format") -> Fixed:
    """A number format a user gives as ``BITS:FRAC``. A negative FRAC makes the LSB worth
    ``2**-FRAC`` (a coarse format of large values); below ``1 - BITS`` no value under
    ``2**BITS`` is representable at all, which is refused as nonsense for a DNN's values."""
    fmt = Fixed.parse(str(text), what)
    if fmt.frac < 1 - fmt.bits:
        raise PermdealError(f"{what} {fmt}: a fraction below {1 - fmt.bits} makes every code "
                            f"a multiple of 2**{-fmt.frac}; give FRAC from {1 - fmt.bits} up "
                            "(negative: an LSB worth 2**-FRAC)")
    return fmt


def _count(v: Any) -> int:
    return parse_int(v, 1)


def _multiplier(v: Any) -> str:
    if str(v) not in MULTIPLIERS:
        raise PermdealError(f"expected one of {', '.join(MULTIPLIERS)}, got {v!r}")
    return str(v)


def _groups(v: Any) -> int | str | tuple[int, ...]:
    """``auto`` (per layer, by the cycle model), one count for every layer, or one per layer
    separated by commas (docs/design.md 4.2)."""
    if isinstance(v, (list, tuple)):
        parts = list(v)
    elif str(v) == "auto":
        return "auto"
    else:
        parts = str(v).split(",")
    counts = []
    for i, part in enumerate(parts):
        try:
            counts.append(parse_int(part.strip() if isinstance(part, str) else part, 1))
        except PermdealError:
            where = f"layer {i}: " if len(parts) > 1 else ""
            raise PermdealError(f"{where}expected 'auto', a whole number of at least 1 or one "
                                f"per layer separated by commas, got {part!r}") from None
    return counts[0] if len(counts) == 1 else tuple(counts)


def _arch(v: Any) -> str:
    if str(v) not in ARCHS:
        raise PermdealError(f"expected one of {', '.join(ARCHS)}, got {v!r}")
    return str(v)


def _block_sizes(v: Any) -> list[int]:
    return [parse_int(x, 1) for x in str(v).split(",")]


#: ``permdeal gen`` settings: name -> (parse, default). The flags, the --config file and the API
#: share them.
GEN_SETTINGS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "pes": (_count, None),
    "lanes": (_count, None),
    "scan_width": (_count, DEFAULT_SCAN_WIDTH),
    "multiplier": (_multiplier, MULTIPLIERS[0]),
    "groups": (_groups, 1),
    "model": (str, None),
    "shape": (parse_shapes, "1024x1024"),
    "p": (_block_sizes, "8"),
    "act_format": (user_format, "16:8"),
    "weight_format": (user_format, "16:14"),
    "bias_format": (user_format, "16:12"),
    "out_format": (user_format, "16:8"),
    "relu": (bool, False),
    "name": (str, "permdeal_engine"),
    "output": (str, None),
    # SmartDeal models: the architecture and the input vectors in flight (None: not given)
    "arch": (_arch, None),
    "batch": (_count, None),
}
#: Settings that describe the layers when there is no model.
SHAPE_SETTINGS = ("shape", "p", "act_format", "weight_format", "bias_format", "out_format", "relu")
#: ``permdeal verify``'s network when none is named: two layers, small enough to simulate fast.
VERIFY_SHAPE = "96x64,10x96"


def flag(name: str) -> str:
    """The command-line flag of a setting."""
    return "--" + name.replace("_", "-")


def load_config(path: str | Path, settings: dict = GEN_SETTINGS) -> dict:
    """The settings of a TOML or JSON config file (names as the flags, ``-`` or ``_``)."""
    path = Path(path)
    if not path.is_file():
        raise PermdealError(f"--config {path}: no such file")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PermdealError(f"--config {path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise PermdealError(f"--config {path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except ValueError as e:  # tomllib.TOMLDecodeError
        raise PermdealError(f"--config {path}: invalid TOML ({e})") from None
    if not isinstance(data, dict):
        raise PermdealError(f"--config {path}: must hold a table of settings")
    out = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in settings:
            raise PermdealError(f"--config {path}: unknown setting {key!r} (known: "
                                f"{', '.join(k.replace('_', '-') for k in settings)})")
        if name == "relu" and not isinstance(value, bool):
            raise PermdealError(f"--config {path}: relu must be true or false, not {value!r}")
        if isinstance(value, (dict, list)) or value is None:
            raise PermdealError(f"--config {path}: {key} must be a number or a string")
        out[name] = value
    return out


@dataclass(frozen=True)
class DesignSettings:
    """The checked settings of a design (``permdeal gen``, ``verify``, ``synth``): the engine's
    size, the model folder or the layers' description, the module name and the output folder.
    Unset values (``None``) are those a command does not need."""

    pes: int | None
    lanes: int | None
    scan_width: int
    multiplier: str
    groups: int | str
    model: str | None
    shape: list
    p: list
    act_format: Fixed
    weight_format: Fixed
    bias_format: Fixed
    out_format: Fixed
    relu: bool
    name: str
    output: str | None
    arch: str | None = None
    batch: int | None = None

    @property
    def engine(self) -> EngineConfig:
        """The PermDNN engine of these settings (PEs and lanes required)."""
        for name in ("pes", "lanes"):
            if getattr(self, name) is None:
                raise PermdealError(f"{flag(name)} is required (a flag or a setting of "
                                    "--config)")
        cfg = EngineConfig(self.pes, self.lanes, scan_width=self.scan_width,
                           multiplier=self.multiplier)
        limits.check_engine(cfg.n_pe, cfg.lanes, cfg.scan_width)
        groups = self.groups
        if groups == "auto":
            groups = auto_layer_groups([(l.n_in, -(-l.n_out // l.p), l.p)
                                        for l in self.layers()], cfg)
        return EngineConfig.with_layer_groups(cfg, groups)

    def to_json(self) -> dict:
        """The settings as a config file holds them (every value a number, string or bool)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.name == "shape":
                v = ",".join(f"{m}x{n}" for m, n in v)
            elif f.name == "p" or (f.name == "groups" and isinstance(v, tuple)):
                v = ",".join(map(str, v))
            elif isinstance(v, Fixed):
                v = str(v)
            out[f.name] = v
        return out

    def layers(self) -> list[LayerSpec]:
        """Layer descriptions of a design generated without a model (one per shape)."""
        shapes, ps = self.shape, self.p
        if len(ps) == 1:
            ps = ps * len(shapes)
        if len(ps) != len(shapes):
            raise PermdealError(f"--p gives {len(ps)} block sizes for {len(shapes)} layers")
        specs, act = [], self.act_format
        for i, ((m, n), p) in enumerate(zip(shapes, ps)):
            fmts = LayerFormats(act, self.weight_format, self.bias_format, self.out_format,
                                -(-n // p))
            last = i == len(shapes) - 1
            specs.append(LayerSpec(f"fc{i}", n, m, p, bool(self.relu) or not last, fmts, {}))
            act = self.out_format
        return specs


def design_settings(given: dict, config: str | Path | None = None, defaults: dict | None = None,
                    required: tuple = ("pes", "lanes", "output")) -> DesignSettings:
    """The settings ``given`` (flag values; None: not given) over the ``config`` file over the
    defaults (``defaults`` overriding :data:`GEN_SETTINGS`' own), parsed and checked."""
    given = {k: v for k, v in given.items() if k in GEN_SETTINGS and v is not None}
    if given.get("relu") is False:
        given.pop("relu")
    merged = {**(load_config(config) if config else {}), **given}
    if "model" in merged:
        clash = [k for k in SHAPE_SETTINGS if k in merged]
        if clash:
            raise PermdealError(f"{flag(clash[0])} describes the layers, which come from "
                                "--model; leave it out")
    out = {}
    for name, (parse, default) in GEN_SETTINGS.items():
        value = merged.get(name, (defaults or {}).get(name, default))
        if value is None:
            out[name] = None
            continue
        try:
            if isinstance(value, (list, tuple)):   # (a list of --config, or parsed counts)
                value = ",".join(map(str, value))
            out[name] = value if name == "relu" else parse(str(value))
        except PermdealError as e:
            raise PermdealError(f"{flag(name)}: {e}") from None
    for name in ("arch", "batch"):
        if out[name] is not None and out["model"] is None:
            raise PermdealError(f"{flag(name)} applies to a SmartDeal --model (the PermDNN engine "
                                "of layer shapes has one architecture and batch 1)")
    if out["model"] is not None:  # a folder that is no compressed model: say so, not "--pes"
        try:
            read_manifest(Path(out["model"]) / atomic.MANIFEST_NAME, MODEL_KIND)
        except PermdealError as e:
            raise PermdealError(f"--model: {e} (it takes a compressed-model folder, from "
                                "permdeal compress)") from None
    for name in required:
        if out[name] is None:
            raise PermdealError(f"{flag(name)} is required (a flag or a setting of --config)")
    return DesignSettings(**out)
