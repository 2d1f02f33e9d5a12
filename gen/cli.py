# amaranth: UnusedElaboratable=no
"""The ``permdeal`` command line.

Every sub-command is a function ``cmd_NAME(args)`` registered in :func:`build_parser`. User errors
are :class:`~permdeal.errors.PermdealError`: printed as one line, exit status 2.
"""

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from permdeal import __version__, atomic
from permdeal.errors import PermdealError
from permdeal.golden.compress import QuantSpec, compress_permdiag
from permdeal.golden.cycles import EngineConfig, model_cycles
from permdeal.checks import integer
from permdeal.golden.formats import MAX_BITS, Fixed
from permdeal.golden.manifest import read_manifest
from permdeal.golden.model import MODEL_KIND, QuantModel, load_float_model, sha256_file
from permdeal.golden import rom
from permdeal.verif import runner

from . import report


# -- argument types -----------------------------------------------------------------------------

def _arg(parse):
    """An argparse type from a parser that raises :class:`PermdealError`."""
    def convert(text):
        try:
            return parse(text)
        except PermdealError as e:
            raise argparse.ArgumentTypeError(str(e))
    convert.__name__ = parse.__name__
    return convert


def _parse_int(text, lo):
    try:
        value = int(text)
    except ValueError:
        raise PermdealError(f"expected an integer, got {text!r}") from None
    return integer(value, "value", lo)


@_arg
def _positive(text):
    return _parse_int(text, 1)


@_arg
def _any_int(text):
    """An integer; its range is checked where it is used (one-line errors)."""
    try:
        return int(text)
    except ValueError:
        raise PermdealError(f"expected an integer, got {text!r}") from None


@_arg
def _seed(text):
    return _parse_int(text, 0)


@_arg
def _int_list(text):
    """``A,B,C``: a list of integers >= 1."""
    return [_parse_int(v, 1) for v in text.split(",")]


@_arg
def _block_sizes(text):
    """``P`` (every layer) or ``P1,P2,...`` (one per layer)."""
    values = [_parse_int(v, 1) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


@_arg
def _bits(text):
    value = _parse_int(text, 2)
    if value > MAX_BITS:
        raise PermdealError(f"bit width must be at most {MAX_BITS}, not {value}")
    return value


@_arg
def _format(text):
    return Fixed.parse(text)


def load_array(path, what):
    """Load a numeric ``.npy`` array with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise PermdealError(f"{what} {path}: no such file")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise PermdealError(f"{what} {path}: not a readable .npy file ({e})") from None
    if not isinstance(a, np.ndarray):
        a.close()
        raise PermdealError(f"{what} {path}: is an .npz archive, expected one .npy array")
    if a.dtype.kind not in "iuf":
        raise PermdealError(f"{what} {path}: holds {a.dtype} values, expected integers or floats")
    return a


def _engine(args):
    return EngineConfig(n_pe=args.pes, lanes=args.lanes, scan_width=args.scan_width)


# -- commands -----------------------------------------------------------------------------------

#: ``compress`` flags that only SmartDeal takes: (argparse dest, flag).
SMARTDEAL_FLAGS = (("S", "--S"), ("E", "--E"), ("b_bits", "--b-bits"),
                   ("rows_per_block", "--rows-per-block"), ("threshold", "--threshold"),
                   ("prune", "--prune"), ("prune_group", "--prune-group"))


def cmd_compress(args):
    given = [flag for dest, flag in SMARTDEAL_FLAGS if getattr(args, dest) is not None]
    if args.method == "smartdeal":
        if args.p is not None:
            raise PermdealError("--p (the permuted-diagonal block size) does not apply to "
                                "--method smartdeal; its settings are --S, --E and --b-bits")
    else:
        if given:
            raise PermdealError(f"{given[0]} applies only to --method smartdeal")
        if args.p is None:
            raise PermdealError("--method permdiag needs --p (block size, or one per layer "
                                "separated by commas; 1 = dense)")
    layers = load_float_model(args.model)
    inputs = [args.model]
    calibration = None
    if args.calibrate is not None:
        calibration = load_array(args.calibrate, "--calibrate")
        inputs.append(args.calibrate)
    if args.act_format is not None and args.act_bits is not None:
        raise PermdealError("give --act-format or --act-bits, not both")
    act_bits = args.act_bits or 16
    act = args.act_format or (act_bits if calibration is not None else Fixed(act_bits, 8))
    spec = QuantSpec(act=act, weight=args.weight_format or args.weight_bits,
                     bias=args.bias_format or args.bias_bits,
                     allow_saturation=args.allow_saturation)
    source = {"file": Path(args.model).name, "sha256": sha256_file(args.model)}
    if args.method == "smartdeal":
        return _compress_smartdeal(args, layers, spec, calibration, source, inputs)
    model = compress_permdiag(layers, args.p, spec, calibration=calibration,
                              relu_last=args.relu_last)
    with atomic.output_dir(args.output, inputs=inputs) as tmp:
        model.write(tmp, source=source)
    print(report.model_table(model))
    sat = sum(sum(l.saturated.values()) for l in model.layers)
    if sat:
        print(f"warning: {sat} weight/bias value(s) saturated (--allow-saturation)")
    print(f"wrote {args.output}/")
    return 0


def _compress_smartdeal(args, layers, spec, calibration, source, inputs):
    from permdeal.golden.compress import compress_smartdeal
    opts = {dest: getattr(args, dest) for dest, _ in SMARTDEAL_FLAGS
            if getattr(args, dest) is not None}
    model = compress_smartdeal(layers, spec, calibration=calibration, relu_last=args.relu_last,
                               **opts)
    with atomic.output_dir(args.output, inputs=inputs) as tmp:
        _, rom_man = model.write_folder(tmp, source=source)
    rows, tot = [], {"sd": 0, "dense": 0, "pd": 0}
    for l in model.layers:
        r, h = l.report, l.header
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
    print(f"SmartDeal S={c['S']} E={c['E']} b_bits={c['b_bits']}: Ce codes {c['E'] + 2} bits")
    print(report.table(["layer", "in -> out", "rel err", "rel err q", "Ce dens", "exponents",
                        "bits", "vs dense", "vs PD p=8", "B fmt", "weight", "align", "acc",
                        "relu", "sat B/w/bias"], rows))
    print(f"storage: {tot['sd']} bits of Ce + B codes; dense 16-bit {tot['dense']} bits "
          f"({tot['dense'] / tot['sd']:.2f}x), PD p=8 {tot['pd']} bits "
          f"({tot['pd'] / tot['sd']:.2f}x) (ratios: their bits / SmartDeal's)")
    lost = sum(l.report["lost_blocks"] for l in model.layers)
    if lost:
        print(f"warning: {lost} block(s) with non-zero weights rebuild to zero (threshold or "
              "exponent range)")
    sat = sum(sum(l.saturated.values()) for l in model.layers)
    if sat:
        print(f"warning: {sat} B/weight/bias value(s) saturated")
    print(f"wrote {args.output}/ (model.npz, manifest.json, rom/ with "
          f"{len(rom_man['images'])} images)")
    return 0


def cmd_rom(args):
    from .smartdeal_design import is_smartdeal_model
    if is_smartdeal_model(args.model):
        return _rom_smartdeal(args)
    for flag in ("pes", "lanes"):
        if getattr(args, flag) is None:
            raise PermdealError(f"--{flag} is required for a permuted-diagonal model (the images "
                                "are laid out per PE and lane)")
    model = QuantModel.read(args.model)
    cfg = _engine(args)
    with atomic.output_dir(args.output, inputs=[args.model]) as tmp:
        man = rom.write_images(tmp, model, cfg)
    mems = man["memories"]
    print(f"{len(man['images'])} images for {cfg.n_pe} PE x {cfg.lanes} lanes: "
          + ", ".join(f"{m} {mems[m]['depth']} x {mems[m]['width']} bit" for m in rom.MEMORIES))
    print(f"wrote {args.output}/")
    return 0


def _rom_smartdeal(args):
    """``permdeal rom`` of a SmartDeal model: its per-layer images (one set for any design)."""
    from permdeal.golden.smartdeal_model import SmartDealModel, write_rom
    given = [f"--{k}" for k in ("pes", "lanes") if getattr(args, k) is not None]
    if given:
        raise PermdealError(f"{given[0]} does not apply to a SmartDeal model: its images are one "
                            "set per layer (Ce codes, B codes, biases) whatever the design")
    model = SmartDealModel.read(args.model)
    with atomic.output_dir(args.output, inputs=[args.model]) as tmp:
        man = write_rom(tmp, model)
    print(f"{len(man['images'])} images for {len(model.layers)} SmartDeal layer(s): "
          + ", ".join(f"{img['file']} {img['depth']} x {img['width']} bit"
                      for img in man["images"]))
    print(f"wrote {args.output}/")
    return 0


def _input_codes(model, x, what):
    """Input codes from a (batch, n) array of floats (quantized) or of integer codes."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise PermdealError(f"{what}: expected (batch, {model.n_inputs}) inputs, got shape {x.shape}")
    if x.shape[0] == 0:
        raise PermdealError(f"{what}: holds no inputs")
    if np.issubdtype(x.dtype, np.integer):
        fmt = model.input_format
        if x.min() < fmt.min or x.max() > fmt.max:
            raise PermdealError(f"{what}: integer inputs must be codes of {fmt} "
                                f"({fmt.min}..{fmt.max}), found {x.min()}..{x.max()}")
        return x.astype(np.int64)
    try:
        codes, n_sat = model.quantize_input(x)
    except PermdealError as e:
        raise PermdealError(f"{what}: {e}") from None
    if n_sat:
        print(f"note: {n_sat} input value(s) saturated in {model.input_format}")
    return codes


def _cycles_smartdeal(args):
    """``permdeal cycles`` of a SmartDeal model: its layer units' exact cycles
    (``golden.smartdeal_cycles``), which do not depend on the inputs."""
    from permdeal.golden.smartdeal_model import SmartDealModel
    from .smartdeal_design import cycles_table
    given = [f"--{k.replace('_', '-')}" for k in ("pes", "scan_width")
             if getattr(args, k) is not None]
    if given:
        raise PermdealError(f"{given[0]} does not apply to a SmartDeal model "
                            f"({SMARTDEAL_GEN_REFUSED[given[0][2:].replace('-', '_')]})")
    model = SmartDealModel.read(args.model)
    lanes = _smartdeal_lanes(args.lanes, model)
    n_vectors = None
    if args.inputs is not None:
        x = _input_codes(model, load_array(args.inputs, "--inputs"), f"--inputs {args.inputs}")
        n_vectors = len(x)
    print(cycles_table(model, lanes, n_vectors))
    return 0


def cmd_cycles(args):
    from .smartdeal_design import is_smartdeal_model
    if is_smartdeal_model(args.model):
        return _cycles_smartdeal(args)
    for flag, value in (("--pes", args.pes), ("--lanes", args.lanes), ("--inputs", args.inputs)):
        if value is None:
            raise PermdealError(f"{flag} is required for a permuted-diagonal model")
    if args.scan_width is None:
        args.scan_width = GEN_SETTINGS["scan_width"][1]
    model = QuantModel.read(args.model)
    cfg = _engine(args)
    x = _input_codes(model, load_array(args.inputs, "--inputs"), f"--inputs {args.inputs}")
    runs = [model_cycles(model, xi, cfg) for xi in x]
    print(report.cycles_table(model, cfg, runs))
    return 0


def _check_smartdeal(folder, man):
    """``permdeal check`` of a SmartDeal model, ROM or design folder: ``(model, what)``."""
    from permdeal.golden.smartdeal_model import ROM_FOLDER, ROM_KIND, SmartDealModel
    from .smartdeal_design import DESIGN_KIND, SmartDealDesign, check_rom
    if man["kind"] == DESIGN_KIND:
        design = SmartDealDesign(folder)
        model, _ = design.load_model()
        return model, (f"SmartDeal design {design.top} ({len(design.sources)} Verilog files, "
                       f"{design.lanes} shift-add lanes) and its ROM images")
    if man["kind"] == ROM_KIND:
        rom_man, model = check_rom(folder)
        return model, f"{len(rom_man['images'])} SmartDeal ROM images"
    model = SmartDealModel.read(folder)
    if not (folder / ROM_FOLDER).is_dir():
        return model, "SmartDeal compressed model (no rom/ folder)"
    rom_man, images = check_rom(folder / ROM_FOLDER)
    if len(images.layers) != len(model.layers):
        raise PermdealError(f"{folder / ROM_FOLDER}: images of {len(images.layers)} layer(s), "
                            f"the model has {len(model.layers)}")
    for i, (a, b) in enumerate(zip(model.layers, images.layers)):
        for part, x, y in (("Ce", a.codes.codes, b.codes.codes),
                           ("B", a.codes.b_int, b.codes.b_int), ("bias", a.bias, b.bias)):
            if x.shape != y.shape or not np.array_equal(x, y):
                raise PermdealError(f"{folder / ROM_FOLDER}: layer {i} ({a.name}): the images hold "
                                    f"other {part} codes than {folder / 'model.npz'}")
    return model, (f"SmartDeal compressed model and its {len(rom_man['images'])} ROM images in "
                   f"{ROM_FOLDER}/")


def cmd_check(args):
    from permdeal.golden.smartdeal_model import METHOD, ROM_KIND as SD_ROM_KIND
    from .smartdeal_design import DESIGN_KIND, model_table
    folder = Path(args.folder)
    man = read_manifest(folder / atomic.MANIFEST_NAME,
                        (MODEL_KIND, rom.ROM_KIND, SD_ROM_KIND, DESIGN_KIND))
    if man["kind"] in (SD_ROM_KIND, DESIGN_KIND) or (man["kind"] == MODEL_KIND
                                                     and man.get("method") == METHOD):
        model, what = _check_smartdeal(folder, man)
        print(model_table(model))
        print(f"{folder}: {what} OK (shapes, widths, depths, code ranges and sha256 match the "
              "manifest)")
        return 0
    if man["kind"] == MODEL_KIND:
        model = QuantModel.read(folder)
        what = "compressed model"
    else:
        model = rom.model_from_images(folder)
        cfg = man["config"]
        what = f"{len(man['images'])} ROM images for {cfg['n_pe']} PE x {cfg['lanes']} lanes"
    print(report.model_table(model))
    print(f"{folder}: {what} OK (shapes, widths, depths and sha256 match the manifest)")
    return 0


# -- gen and sim --------------------------------------------------------------------------------

#: ``permdeal gen`` settings: name -> (parse, default). The flags and the --config file share them.
GEN_SETTINGS = {
    "pes": (lambda v: _parse_int(v, 1), None),
    "lanes": (lambda v: _parse_int(v, 1), None),
    "scan_width": (lambda v: _parse_int(v, 1), 8),
    "model": (str, None),
    "shape": (lambda v: _shapes(v), "1024x1024"),
    "p": (lambda v: [_parse_int(x, 1) for x in str(v).split(",")], "8"),
    "act_format": (Fixed.parse, "16:8"),
    "weight_format": (Fixed.parse, "16:14"),
    "bias_format": (Fixed.parse, "16:12"),
    "out_format": (Fixed.parse, "16:8"),
    "relu": (bool, False),
    "name": (str, "permdeal_engine"),
    "output": (str, None),
}
#: Settings that describe the layers when there is no --model.
SHAPE_SETTINGS = ("shape", "p", "act_format", "weight_format", "bias_format", "out_format", "relu")


def _shapes(text):
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


def load_config(path, settings):
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


#: ``permdeal verify``'s network when none is named: two layers, small enough to simulate fast.
VERIFY_SHAPE = "96x64,10x96"


def gen_settings(args, defaults=None):
    """The flags of ``permdeal gen`` over its --config file over the defaults (``defaults``
    overriding :data:`GEN_SETTINGS`' own), parsed."""
    given = {k: getattr(args, k) for k in GEN_SETTINGS if getattr(args, k, None) is not None}
    if getattr(args, "relu", False) is False:
        given.pop("relu", None)
    config = load_config(args.config, GEN_SETTINGS) if args.config else {}
    merged = {**config, **given}
    if "model" in merged:
        clash = [k for k in SHAPE_SETTINGS if k in merged]
        if clash:
            raise PermdealError(f"--{clash[0].replace('_', '-')} describes the layers, which come "
                                f"from --model; leave it out")
    out = {}
    for name, (parse, default) in GEN_SETTINGS.items():
        value = merged.get(name, (defaults or {}).get(name, default))
        if value is None:
            out[name] = None
            continue
        try:
            out[name] = value if name == "relu" else parse(str(value))
        except PermdealError as e:
            raise PermdealError(f"--{name.replace('_', '-')}: {e}") from None
    if out["model"] is not None:  # a folder that is no compressed model: say so, not "--pes"
        try:
            read_manifest(Path(out["model"]) / atomic.MANIFEST_NAME, MODEL_KIND)
        except PermdealError as e:
            raise PermdealError(f"--model: {e} (it takes a compressed-model folder, from "
                                "permdeal compress)") from None
    for name in ("pes", "lanes", "output"):
        if out[name] is None:
            raise PermdealError(f"--{name} is required (a flag or a setting of --config)")
    return out


def _gen_layers(st):
    """Layer descriptions of a design generated without a model."""
    from permdeal.golden.formats import LayerFormats
    from permdeal.golden.model import LayerSpec
    shapes, ps = st["shape"], st["p"]
    if len(ps) == 1:
        ps = ps * len(shapes)
    if len(ps) != len(shapes):
        raise PermdealError(f"--p gives {len(ps)} block sizes for {len(shapes)} layers")
    specs = []
    act = st["act_format"]
    for i, ((m, n), p) in enumerate(zip(shapes, ps)):
        out = st["out_format"]
        fmts = LayerFormats(act, st["weight_format"], st["bias_format"], out, -(-n // p))
        last = i == len(shapes) - 1
        specs.append(LayerSpec(f"fc{i}", n, m, p, bool(st["relu"]) or not last, fmts, {}))
        act = out
    return specs


def _smartdeal_model_arg(args):
    """``(model folder, config settings)`` when ``permdeal gen``'s --model (a flag or a setting of
    --config) is a SmartDeal compressed model, else None."""
    from .smartdeal_design import is_smartdeal_model
    config = load_config(args.config, GEN_SETTINGS) if args.config else {}
    model = args.model if args.model is not None else config.get("model")
    try:
        if model is None or not is_smartdeal_model(model):
            return None
    except PermdealError:
        return None  # not a model folder: the settings are checked first, then it is refused
    return str(model), config


#: ``permdeal gen`` settings that do not apply to a SmartDeal design, and why.
SMARTDEAL_GEN_REFUSED = {
    "pes": "the design has one layer unit per layer; --lanes sets its shift-add unit's lanes",
    "scan_width": "the layer units read their inputs from a buffer, there is no detector",
    **{k: "the layers come from --model" for k in SHAPE_SETTINGS},
}


def _smartdeal_lanes(value, model):
    """The shift-add lanes ``value`` (a flag's text or a setting; None: the default, S) of a
    design of the ``SmartDealModel`` ``model``, checked."""
    from permdeal.golden.smartdeal import MAX_S
    if value is None:
        return None
    S = model.layers[0].codes.S
    try:
        return integer(GEN_SETTINGS["lanes"][0](str(value)), "lanes", 1, min(S, MAX_S))
    except PermdealError as e:
        raise PermdealError(f"--lanes (the shift-add unit's lanes, 1 to S = {S}): {e}") from None


def _smartdeal_settings(args, model_dir, config):
    """gen's flags over the --config settings ``config`` for a design of the SmartDeal model in
    ``model_dir``, checked: ``(model, lanes, name, output folder, inputs)``."""
    from permdeal.golden.smartdeal_model import SmartDealModel
    from .smartdeal_design import DEFAULT_NAME
    given = {k: getattr(args, k) for k in GEN_SETTINGS if getattr(args, k, None) not in
             (None, False)}
    merged = {**config, **given}
    for key, why in SMARTDEAL_GEN_REFUSED.items():
        if key in merged:
            raise PermdealError(f"--{key.replace('_', '-')} does not apply to a SmartDeal model "
                                f"({why})")
    if merged.get("output") is None:
        raise PermdealError("--output is required (a flag or a setting of --config)")
    model = SmartDealModel.read(model_dir)
    lanes = _smartdeal_lanes(merged.get("lanes"), model)
    name = str(merged.get("name", DEFAULT_NAME))
    inputs = [model_dir] + ([args.config] if args.config else [])
    return model, lanes, name, merged["output"], inputs


def _gen_smartdeal(args, model_dir, config):
    """``permdeal gen --model DIR`` of a SmartDeal model: the chain of layer units."""
    from .smartdeal_design import model_table, write_design
    model, lanes, name, output, inputs = _smartdeal_settings(args, model_dir, config)
    t0 = time.perf_counter()
    man = write_design(output, model, lanes=lanes, name=name, inputs=inputs)
    took = time.perf_counter() - t0
    print(model_table(model, man["config"]["lanes"]))
    ports = man["ports"]
    print(f"SmartDeal design {man['top']}: {len(model.layers)} layer unit(s) in a chain, "
          f"{man['config']['lanes']} shift-add lanes each; {ports['n_inputs']} inputs of "
          f"{ports['in_bits']} bits, {ports['n_outputs']} outputs of {ports['out_bits']} bits; "
          f"{man['cycles']['per_input']} cycles per input vector")
    print(f"wrote {output}/ (rtl/, rom/, manifest.json) in {took:.1f} s")
    return 0


def cmd_gen(args):
    from .design import write_design
    smartdeal = _smartdeal_model_arg(args)
    if smartdeal is not None:
        return _gen_smartdeal(args, *smartdeal)
    st = gen_settings(args)
    cfg = EngineConfig(st["pes"], st["lanes"], scan_width=st["scan_width"])
    inputs = [args.config] if args.config else []
    model = None
    if st["model"] is not None:
        model = QuantModel.read(st["model"])
        layers = model.layers
        inputs.append(st["model"])
    else:
        layers = _gen_layers(st)
    t0 = time.perf_counter()
    man = write_design(st["output"], cfg, layers, model=model, name=st["name"], inputs=inputs)
    took = time.perf_counter() - t0
    print(report.model_table(model) if model is not None else
          "layers: " + ", ".join(f"{l.n_out}x{l.n_in} p={l.p}" for l in layers))
    ports = man["ports"]
    print(f"engine {man['top']}: {cfg.n_pe} PE x {cfg.lanes} lanes, scan width "
          f"{cfg.scan_width}; {ports['n_inputs']} inputs of {ports['in_bits']} bits, "
          f"{ports['n_outputs']} outputs of {ports['out_bits']} bits")
    if model is None:
        print(f"no ROM images yet: write them with `permdeal rom MODEL --pes {cfg.n_pe} "
              f"--lanes {cfg.lanes} -o DIR` (scan width {cfg.scan_width}) and simulate with "
              "--images DIR, or place them in rom/")
    print(f"wrote {st['output']}/ in {took:.1f} s")
    return 0


def _print_run(args, rep):
    """``permdeal sim``'s first line: the simulator, the seed, the inputs and the timings."""
    print(f"{args.sim} {rep['sim_version']}, seed {rep['seed']}: {rep['inputs']} input(s), "
          f"build {rep['build_seconds']:.1f} s, run {rep['run_seconds']:.1f} s "
          f"({rep['simulated_cycles_per_second'] or 0:.0f} cycles/s)")


def _print_mismatches(rep):
    """The first mismatches and the failed tests of a ``permdeal sim`` report, on stderr."""
    for mm in rep["first_mismatches"][:10]:
        print(f"  input {mm['input']}, layer {mm['layer']}, output {mm['output']}: expected "
              f"{mm['expected']}, observed {mm['observed']}", file=sys.stderr)
    for test, why in rep["failures"].items():
        print(f"  {test}: {why}", file=sys.stderr)


def _sim_smartdeal(args):
    """``permdeal sim`` of a SmartDeal design (``gen.smartdeal_sim``)."""
    from .smartdeal_design import SmartDealDesign
    from .smartdeal_sim import simulate
    design = SmartDealDesign(args.design)
    model, _ = design.load_model(args.images)
    x = _input_codes(model, load_array(args.inputs, "--inputs"), f"--inputs {args.inputs}")
    rep = simulate(args.design, x, args.sim, args.output, images=args.images, seed=args.seed,
                   waves=args.waves, inputs=[args.inputs])
    _print_run(args, rep)
    print(report.table(["layer", "rows", "skipped", "cycles", "cyc/weight", "cyc/output"],
                       [[l["name"], l["active"], l["skipped"], l["compute"],
                         f"{l['cycles_per_weight']:.2f}", f"{l['cycles_per_output']:.1f}"]
                        for l in rep["layers"]]))
    cyc = rep["cycles"]
    if cyc:
        print(f"cycles per input: RTL {np.mean(cyc):.1f}, cycle model {rep['model_cycles']} "
              f"({'equal' if rep['cycles_match_model'] else 'DIFFERENT'})")
    if not rep["cycles_match_model"]:
        print("CYCLES DIFFER from the cycle model: RTL " + ", ".join(map(str, cyc))
              + f"; model {rep['model_cycles']} each", file=sys.stderr)
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


def cmd_sim(args):
    from .design import DESIGN_KIND, Design
    from .sim import load_model, simulate
    from .smartdeal_design import DESIGN_KIND as SD_DESIGN_KIND
    man = read_manifest(Path(args.design) / atomic.MANIFEST_NAME, (DESIGN_KIND, SD_DESIGN_KIND))
    if man["kind"] == SD_DESIGN_KIND:
        return _sim_smartdeal(args)
    design = Design(args.design)
    model, _ = load_model(design, args.images)
    x = _input_codes(model, load_array(args.inputs, "--inputs"), f"--inputs {args.inputs}")
    rep = simulate(args.design, x, args.sim, args.output, images=args.images, seed=args.seed,
                   waves=args.waves, inputs=[args.inputs])
    _print_run(args, rep)
    cyc = rep["cycles"]
    if cyc:
        print(f"cycles per input: mean {np.mean(cyc):.1f} (cycle model "
              f"{np.mean(rep['model_cycles']):.1f}, {'equal' if rep['cycles_match_model'] else 'DIFFERENT'}); "
              f"lane utilization {100 * rep['lane_utilization']:.1f}%")
    if not rep["cycles_match_model"]:
        print("CYCLES DIFFER from the cycle model: RTL " + ", ".join(map(str, cyc))
              + "; model " + ", ".join(map(str, rep["model_cycles"])), file=sys.stderr)
    if rep["golden_match"]:
        print(f"every output matches the golden model ({rep['inputs'] * rep['outputs_per_input']} values)")
    else:
        print(f"MISMATCH: {rep['mismatches']} output(s) differ from the golden model", file=sys.stderr)
        _print_mismatches(rep)
    print(f"wrote {args.output}/")
    return 0 if rep["golden_match"] and rep["cycles_match_model"] else 1


def cmd_bench_engine(args):
    from . import engine_bench
    if args.json:
        atomic.check_new_file(args.json, args.force)
    shape = _shapes(args.shape)
    if len(shape) != 1:
        raise PermdealError("--shape: the engine benchmark takes one layer")
    engine_bench.check_args(args.pes, args.lanes, shape[0], args.p, args.density)
    sims = ["verilator", "icarus"] if args.sim == "both" else [args.sim]
    work = Path(args.workdir)
    t0 = time.perf_counter()
    res = engine_bench.run(args.pes, args.lanes, shape[0], args.p, args.density, args.batch,
                           sims, work, seed=args.seed,
                           progress=lambda msg: print(f"... {msg}", flush=True))
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print(engine_bench.tables(res))
    print(f"wall time {res['wall_seconds']:.0f} s; designs and results in {work}/")
    if args.json:
        engine_bench.write_json(args.json, res)
        print(f"wrote {args.json}")
    bad = [e for e in res["engines"] for s in e["sims"].values()
           if not (s["golden_match"] and s["cycles_match_model"])]
    return 1 if bad else 0


def _reproduce(args, seed, test, sim):
    """The ``permdeal verify`` command that reruns one bench of this run alone."""
    words = ["permdeal", "verify"]
    for name in ("config", "pes", "lanes", "scan_width", "model", "shape", "p", "act_format",
                 "weight_format", "bias_format", "out_format"):
        value = getattr(args, name, None)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    if args.relu:
        words.append("--relu")
    words += ["--seed", str(seed), "--tests", test, "--sim", sim, "-o",
              f"{args.output}-{test}-{sim}"]
    return " ".join(shlex.quote(w) for w in words)


def _settings_command(st, seed, test, sim, output):
    """``permdeal verify`` with the settings ``st`` (flag values) for one bench."""
    words = ["permdeal", "verify"]
    for name in ("pes", "lanes", "scan_width", "shape", "p", "act_format", "weight_format",
                 "bias_format", "out_format"):
        words += [f"--{name.replace('_', '-')}", str(st[name])]
    if st.get("relu"):
        words.append("--relu")
    words += ["--seed", str(seed), "--tests", test, "--sim", sim, "-o", output]
    return " ".join(shlex.quote(w) for w in words)


def _random_configs(args):
    """``verify --random-configs N``: N configurations drawn from the seed, each run bit-exact
    against the golden model (the engine on the whole network)."""
    import concurrent.futures
    import random

    from permdeal.hdl.engine import Engine
    from permdeal.verif import verify as vf
    sims = ["verilator", "icarus"] if args.sim == "both" else [args.sim]
    for sim in sims:
        runner.check_tools(sim)
    seed = args.seed if args.seed is not None else vf.new_seed()
    rng = random.Random(seed)
    drawn = []
    while len(drawn) < args.random_configs:
        st_text = vf.random_settings(rng)
        try:
            st = {k: (v if k == "relu" else GEN_SETTINGS[k][0](v)) for k, v in st_text.items()}
            cfg = EngineConfig(st["pes"], st["lanes"], scan_width=st["scan_width"])
            model = vf.random_model(_gen_layers(st), seed + len(drawn))
            Engine(cfg, model.layers, contents=rom.lane_contents(model, cfg))
        except PermdealError:
            continue  # not a legal configuration: draw again
        drawn.append((st_text, vf.Target(cfg, model), seed + len(drawn)))
    print(f"verify: {len(drawn)} random configurations from seed {seed} on "
          f"{', '.join(sims)}", flush=True)
    t0 = time.perf_counter()
    records = []
    with atomic.output_dir(args.output) as tmp:
        work = [(vf.Job("engine_network", sim), target, tmp / "builds" / f"config{i}-{sim}",
                 cseed, False) for i, (_, target, cseed) in enumerate(drawn) for sim in sims]
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            for i, rec in enumerate(pool.map(vf.run_job, *zip(*work))):
                st_text = drawn[i // len(sims)][0]
                rec["config"] = st_text
                rec["command"] = _settings_command(st_text, rec["seed"], "engine_network",
                                                   rec["sim"], f"{args.output}-config{i}")
                records.append(rec)
                if (i + 1) % 10 == 0 or i + 1 == len(work):
                    bad = sum(not r["passed"] for r in records)
                    print(f"... {i + 1} of {len(work)} runs, {bad} failed", flush=True)
        wall = time.perf_counter() - t0
        failed = [r for r in records if not r["passed"]]
        summary = {"seed": seed, "configs": len(drawn), "sims": sims, "passed": not failed,
                   "failures": len(failed), "wall_seconds": round(wall, 1), "runs": records}
        atomic.write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic.write_bytes(tmp / "junit.xml", vf.junit(records))
        if not failed:
            shutil.rmtree(tmp / "builds")  # thousands of passing builds are not worth keeping
    print(f"{len(records) - len(failed)} of {len(records)} runs passed in {wall:.0f} s; "
          f"wrote {args.output}/ (junit.xml, summary.json)")
    if failed:
        r = failed[0]
        print(f"first failing configuration: {'; '.join(r['problems'])[:300]}\n"
              f"  reproduce: {r['command']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_verify(args):
    import concurrent.futures

    from permdeal.verif import verify as vf
    if args.sim is None:
        args.sim = "icarus" if args.random_configs else "both"
    if args.random_configs:
        return _random_configs(args)
    st = gen_settings(args, {"shape": VERIFY_SHAPE})
    cfg = EngineConfig(st["pes"], st["lanes"], scan_width=st["scan_width"])
    sims = ["verilator", "icarus"] if args.sim == "both" else [args.sim]
    benches = list(vf.BENCHES) if args.tests is None else args.tests.split(",")
    jobs = vf.plan(benches, sims)
    for sim in sims:
        runner.check_tools(sim)
    seed = args.seed if args.seed is not None else vf.new_seed()
    inputs = [args.config] if args.config else []
    if st["model"] is not None:
        model = QuantModel.read(st["model"])
        inputs.append(st["model"])
    else:
        model = vf.random_model(_gen_layers(st), seed)
    from permdeal.hdl.engine import Engine
    Engine(cfg, model.layers, contents=rom.lane_contents(model, cfg))  # refuse what cannot work
    target = vf.Target(cfg, model)
    print(f"verify: {cfg.n_pe} PE x {cfg.lanes} lanes, scan width {cfg.scan_width}, layers "
          + ", ".join(f"{l.shape[0]}x{l.shape[1]} p={l.matrix.p}" for l in model.layers)
          + f"; {len(jobs)} run(s), seed {seed}", flush=True)
    t0 = time.perf_counter()
    with atomic.output_dir(args.output, inputs=inputs) as tmp:
        builds = tmp / "builds"
        work = [(job, target, builds / f"{job.bench}-{job.sim}", seed, args.waves)
                for job in jobs]
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
                futures = [pool.submit(vf.run_job, *w) for w in work]
                records = []
                for f, (job, *_) in zip(futures, work):
                    records.append(f.result())
                    print(f"... {job.name}: {'pass' if records[-1]['passed'] else 'FAIL'}",
                          flush=True)
        else:
            records = []
            for w in work:
                records.append(vf.run_job(*w))
                print(f"... {w[0].name}: {'pass' if records[-1]['passed'] else 'FAIL'}",
                      flush=True)
        wall = time.perf_counter() - t0
        failed = [r for r in records if not r["passed"]]
        summary = {"config": {**cfg.to_json(), "layers": [
                       {"in": l.shape[1], "out": l.shape[0], "p": l.matrix.p,
                        "formats": l.fmts.to_json(), "relu": l.relu} for l in model.layers]},
                   "seed": seed, "sims": sims, "tests": benches, "passed": not failed,
                   "wall_seconds": round(wall, 1), "runs": records}
        atomic.write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic.write_bytes(tmp / "junit.xml", vf.junit(records))
    cov = vf.coverage_rows(records)
    if cov:
        print(report.table(["coverage bin", "hits", "", "missed in"], cov, aligns="lrll"))
    print(report.table(["test", "sim", "result", "wall s", "cycles", "problems"],
                       vf.table_rows(records), aligns="lllrrl"))
    print(f"{len(records) - len(failed)} of {len(records)} passed in {wall:.0f} s, seed {seed}; "
          f"wrote {args.output}/ (junit.xml, summary.json)")
    for r in failed:
        print(f"{r['test']} on {r['sim']} failed: {'; '.join(r['problems'])[:300]}\n"
              f"  reproduce: {_reproduce(args, seed, r['test'], r['sim'])}\n"
              f"  logs: {args.output}/builds/{r['test']}-{r['sim']}/", file=sys.stderr)
    return 1 if failed else 0


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def _write_generated(st, folder):
    """Generate the design of ``permdeal gen`` settings ``st`` into ``folder``."""
    from .design import write_design
    cfg = EngineConfig(st["pes"], st["lanes"], scan_width=st["scan_width"])
    model = QuantModel.read(st["model"]) if st["model"] is not None else None
    layers = model.layers if model is not None else _gen_layers(st)
    write_design(folder, cfg, layers, model=model, name=st["name"])


def _synth_block(args, targets, opts, given):
    from permdeal.synth import block
    other = given + [f for f, v in (("--design", args.design), ("--config", args.config),
                                    ("--sweep", args.sweep)) if v is not None]
    if other:
        raise PermdealError(f"--block synthesizes one block from --block-params; leave out "
                            f"{other[0]}")
    if args.output is None:
        raise PermdealError("-o/--output (the report folder) is required")
    t0 = time.perf_counter()
    params = block.parse_params(args.block, args.block_params)
    report = block.run(args.block, params, targets, opts, args.output,
                       progress=lambda msg: print(f"... {msg}", flush=True))
    print(block.text(report), end="")
    print(f"wrote {args.output}/ (report.json, report.txt, logs/) in "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


def cmd_synth(args):
    from permdeal.synth import flow
    from permdeal.synth import sweep as sw
    targets = flow.parse_targets(args.target)
    opts = flow.SynthOptions(device=args.device, speed=args.speed, target_mhz=args.target_mhz,
                             seed=args.seed, asic_mhz=args.asic_mhz,
                             sram_um2_per_bit=args.sram_um2_per_bit, liberty=args.liberty,
                             flat=args.flat)
    given = [f"--{k.replace('_', '-')}" for k in GEN_SETTINGS
             if k != "output" and getattr(args, k, None) not in (None, False)]
    if args.block is not None:
        return _synth_block(args, targets, opts, given)
    if args.block_params is not None:
        raise PermdealError("--block-params goes with --block")
    if args.design is not None and (given or args.config or args.sweep):
        raise PermdealError(f"--design takes a generated design as it is; leave out "
                            f"{(given or ['--config' if args.config else '--sweep'])[0]} (or "
                            "leave out --design to generate one from the settings)")
    flow.check_tools(targets, opts)
    inputs = [args.config] if args.config else []
    t0 = time.perf_counter()
    smartdeal = _smartdeal_model_arg(args) if args.design is None else None
    if smartdeal is not None:
        if args.sweep:
            raise PermdealError("--sweep varies a PermDNN engine (pes, lanes, p); a SmartDeal "
                                "--model is synthesized as one design")
        from .smartdeal_design import write_design as write_smartdeal
        model, lanes, name, out, inputs = _smartdeal_settings(args, *smartdeal)
        make = lambda folder: write_smartdeal(folder, model, lanes=lanes, name=name)  # noqa: E731
    elif args.sweep:
        param, values = sw.parse_sweep(args.sweep)
        st = gen_settings(args, {param: values[0]})
        if param == "p" and st["model"] is not None:
            raise PermdealError("--sweep p: the block sizes come from --model; sweep pes or lanes")
        if st["model"] is not None:
            inputs.append(st["model"])
        print(f"sweep {param} = {', '.join(map(str, values))}: targets {', '.join(targets)}"
              + (f", ECP5 device {opts.device.name}" if "ecp5" in targets else ""), flush=True)
        rows, wall = sw.run_sweep(param, values, st, _write_generated, targets, opts,
                                  st["output"], inputs=inputs)
        print(sw.table(rows))
        print(f"wall time {wall:.0f} s; wrote {st['output']}/ (sweep.csv, sweep.json, "
              "sweep.png, points/)")
        return 0 if all(r["status"] == "ok" for r in rows) else 1
    elif args.design is None:
        st = gen_settings(args)
        if st["model"] is not None:
            inputs.append(st["model"])
        out = st["output"]
        make = lambda folder: _write_generated(st, folder)  # noqa: E731
    else:
        if args.output is None:
            raise PermdealError("-o/--output (the report folder) is required")
        out, make = args.output, None
    report = flow.run(args.design, targets, opts, out, inputs=inputs, make_design=make,
                      progress=lambda msg: print(f"... {msg}", flush=True))
    from permdeal.synth.report import text
    print(text(report), end="")
    print(f"wrote {out}/ (report.json, report.txt, logs/) in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_train(args):
    from permdeal.golden import train as tr
    atomic.check_new_file(args.output, args.force)
    X_tr, y_tr, X_te, y_te = tr.load_digits_split(args.seed)
    sizes = [X_tr.shape[1], *args.hidden, 10]
    ps = tr._per_layer(args.p, len(sizes) - 1)
    dense = tr.train(tr.init_mlp(sizes, seed=args.seed), X_tr, y_tr, epochs=args.epochs,
                     seed=args.seed)
    print(f"dense {'-'.join(map(str, sizes))} MLP: test accuracy {_pct(tr.accuracy(dense, X_te, y_te))}")
    model = dense
    if any(p > 1 for p in ps):
        model = tr.train(tr.project(dense, ps), X_tr, y_tr, epochs=args.finetune_epochs,
                         seed=args.seed)
        print(f"permuted-diagonal p={','.join(map(str, ps))}, projected and fine-tuned: "
              f"test accuracy {_pct(tr.accuracy(model, X_te, y_te))}")
    tr.save_npz(model, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_accuracy(args):
    from permdeal.golden import train as tr
    if args.json:
        atomic.check_new_file(args.json, args.force)
    t = time.perf_counter()
    rows = tr.digits_study(ps=args.p, hidden=args.hidden, seed=args.seed,
                           compress_last=not args.dense_last)
    seconds = time.perf_counter() - t
    print(f"handwritten digits (scikit-learn, 450 test images), MLP 64-"
          f"{'-'.join(map(str, args.hidden))}-10, seed {args.seed}"
          f"{', last layer dense' if args.dense_last else ', every layer compressed'}")
    print(report.table(
        ["p", "weights", "dense", "PD projected", "PD fine-tuned", "PD from scratch",
         "fine-tuned, 16-bit fixed"],
        [[r["p"], r["weights"], _pct(r["dense"]), _pct(r["projected"]), _pct(r["finetuned"]),
          _pct(r["scratch"]), _pct(r["fixed"])] for r in rows]))
    print(f"({seconds:.1f} s)")
    if args.json:
        atomic.write_text(args.json, json.dumps({"rows": rows, "seconds": seconds}, indent=2) + "\n")
    return 0


def _read_any_model(folder):
    """A compressed-model folder of either method (its manifest's ``method``)."""
    from permdeal.golden import smartdeal_model
    man = read_manifest(Path(folder) / atomic.MANIFEST_NAME, MODEL_KIND)
    if man.get("method") == smartdeal_model.METHOD:
        return smartdeal_model.SmartDealModel.read(folder)
    return QuantModel.read(folder)


def cmd_eval(args):
    model = _read_any_model(args.model)
    if args.inputs is None:
        from permdeal.golden.train import load_digits_split
        _, _, x, y = load_digits_split(args.seed)
    else:
        if args.labels is None:
            raise PermdealError("--inputs needs --labels (one class index per input)")
        x, y = load_array(args.inputs, "--inputs"), load_array(args.labels, "--labels")
    codes = _input_codes(model, x, f"--inputs {args.inputs}" if args.inputs else "inputs")
    from permdeal.golden.model import check_labels
    y = check_labels(y, len(codes), model.layers[-1].shape[0], "--labels")
    out = model.forward(codes)
    acc = float(np.mean(np.argmax(out, axis=1) == y))
    print(f"golden fixed-point accuracy: {_pct(acc)} on {len(y)} inputs")
    return 0


def cmd_demo(args):
    from . import demo
    return demo.run(Path(args.output), seed=args.seed, p=args.p, pes=args.pes, lanes=args.lanes,
                    sim=args.sim, synth=not args.no_synth)


def cmd_bench_smartdeal(args):
    from . import bench_smartdeal as bs
    parts = [t.strip() for t in args.parts.split(",") if t.strip()]
    bad = [t for t in parts if t not in bs.PARTS]
    if bad:
        raise PermdealError(f"--parts: {bad[0]!r} is not one of {', '.join(bs.PARTS)}")
    if not parts:
        raise PermdealError(f"--parts names no part (choose from {', '.join(bs.PARTS)})")
    return bs.run(parts, m=args.m, n=args.n, S=args.S, E=args.E, b_bits=args.b_bits, p=args.p,
                  lanes=args.lanes, seed=args.seed, synth=args.synth, json_path=args.json,
                  force=args.force)


# -- parser -------------------------------------------------------------------------------------

def design_flags(p, shape_default="1024x1024",
                 model_help="compressed-model folder: its layers, and ROM images in rom/"):
    """The settings of a design (:data:`GEN_SETTINGS` but ``name`` and ``output``) as flags:
    gen's, shared by verify and synth."""
    p.add_argument("--config", metavar="FILE", help="settings from a TOML or JSON file (the flags' "
                   "names); flags override them")
    p.add_argument("--pes", type=_positive, help="number of PEs")
    p.add_argument("--lanes", type=_positive, help="multiplier lanes per PE")
    p.add_argument("--scan-width", type=_positive, help="activations the detector scans per "
                   "cycle (default 8)")
    p.add_argument("--model", help=model_help)
    p.add_argument("--shape", help="without --model: layer shape(s) OUTxIN[,OUTxIN...] "
                   f"(default {shape_default})")
    p.add_argument("--p", help="without --model: block size, or one per layer (default 8)")
    for fmt in ("act", "weight", "bias", "out"):
        p.add_argument(f"--{fmt}-format", help=f"without --model: {fmt} format BITS:FRAC "
                       f"(default {GEN_SETTINGS[fmt + '_format'][1]})")
    p.add_argument("--relu", action="store_true", default=None,
                   help="without --model: ReLU after the last layer too")


def build_parser():
    ap = argparse.ArgumentParser(prog="permdeal", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"permdeal {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compress", help="compress a float model (.npz) to a quantized PD or SmartDeal model")
    p.add_argument("model", help="float model .npz: NAME.weight (out x in) and NAME.bias arrays")
    p.add_argument("--method", choices=["permdiag", "smartdeal"], default="permdiag",
                   help="permuted-diagonal (needs --p) or SmartDeal (Ce @ B, with ROM images in "
                   "OUT/rom/); default permdiag")
    p.add_argument("--p", type=_block_sizes,
                   help="permdiag: block size, or one per layer separated by commas (1 = dense)")
    p.add_argument("--S", type=_any_int, help="smartdeal: chunk width S (default 3)")
    p.add_argument("--E", type=_any_int, help="smartdeal: exponent bits E, 2**E levels (default 3)")
    p.add_argument("--b-bits", type=_any_int, help="smartdeal: bits of the B codes (default 8)")
    p.add_argument("--rows-per-block", type=_any_int,
                   help="smartdeal: chunks per block (default: a whole output row)")
    p.add_argument("--threshold", type=float,
                   help="smartdeal: Ce magnitudes at or below it become 0 (default 2**(e_min-1))")
    p.add_argument("--prune", type=float,
                   help="smartdeal: fraction of Ce rows pruned per output group (default 0)")
    p.add_argument("--prune-group", type=_any_int,
                   help="smartdeal: outputs per pruning group (default 1)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--act-format", type=_format, help="activation format BITS:FRAC for every layer")
    p.add_argument("--act-bits", type=_bits,
                   help="activation width; its fraction bits are 8, or fitted with --calibrate")
    g.add_argument("--calibrate", metavar="X.npy",
                   help="float inputs (batch x in) to fit every layer's activation format to")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weight-format", type=_format, help="fixed weight format BITS:FRAC")
    g.add_argument("--weight-bits", type=_bits, default=16,
                   help="weight width, fraction bits fitted per layer (default 16)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bias-format", type=_format, help="fixed bias format BITS:FRAC")
    g.add_argument("--bias-bits", type=_bits, default=16,
                   help="bias width, fraction bits fitted per layer (default 16)")
    p.add_argument("--relu-last", action="store_true", help="apply ReLU after the last layer too")
    p.add_argument("--allow-saturation", action="store_true",
                   help="accept weights or biases that saturate in a fixed format")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("rom", help="write the ROM images of a compressed model (per PE and lane "
                       "for permuted-diagonal, per layer for SmartDeal)")
    p.add_argument("model", help="compressed-model folder (from permdeal compress)")
    p.add_argument("--pes", type=_positive, help="permdiag: number of PEs (required there)")
    p.add_argument("--lanes", type=_positive, help="permdiag: multiplier lanes per PE (required "
                   "there)")
    p.add_argument("--scan-width", type=_positive, default=8,
                   help="permdiag: activations the detector scans per cycle (default 8)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_rom)

    p = sub.add_parser("cycles", help="cycle model: exact engine cycles for given inputs (a "
                       "SmartDeal model: its layer units' cycles per layer and per input)")
    p.add_argument("model", help="compressed-model folder")
    p.add_argument("--pes", type=_positive, help="permdiag: number of PEs (required there)")
    p.add_argument("--lanes", type=_positive, help="permdiag: multiplier lanes per PE (required "
                   "there); smartdeal: the shift-add unit's lanes, 1 to S (default S, as gen)")
    p.add_argument("--scan-width", type=_positive, help="permdiag: activations the detector "
                   "scans per cycle (default 8)")
    p.add_argument("--inputs", metavar="X.npy", help="inputs (batch x in): float values, or "
                   "integer codes of the input format (required for permdiag; smartdeal: "
                   "optional, the count does not depend on them)")
    p.set_defaults(func=cmd_cycles)

    p = sub.add_parser("gen", help="generate the engine's Verilog, ROM images and manifest (for "
                       "a SmartDeal --model: its chain of layer units)")
    design_flags(p, model_help="compressed-model folder: its layers, and ROM images in rom/; a "
                 "SmartDeal model gives its chain of layer units (then --lanes is each shift-add "
                 "unit's lanes, default S, and --pes does not apply)")
    p.add_argument("--name", help="Verilog module name of the engine (default permdeal_engine)")
    p.add_argument("-o", "--output", help="output folder")
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("sim", help="run a generated design on inputs in a simulator, against "
                       "the golden model")
    p.add_argument("--design", required=True, help="design folder (from permdeal gen)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="inputs (batch x in): float values, or integer codes of the input format")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--images", metavar="DIR", help="ROM images (default: the design's rom/)")
    p.add_argument("--seed", type=_seed, help="cocotb random seed (default: a fresh one, logged)")
    p.add_argument("--waves", action="store_true", help="record a waveform in the build folder")
    p.add_argument("-o", "--output", required=True, help="results folder")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("bench-engine", help="RTL flow benchmark: generation, simulator build and "
                       "speed, RTL against the cycle model, utilization, for several PE counts")
    p.add_argument("--pes", type=_int_list, default=[1, 8, 32], help="PE counts (default 1,8,32)")
    p.add_argument("--lanes", type=_positive, default=8, help="lanes per PE (default 8)")
    p.add_argument("--shape", default="1024x1024", help="the layer OUTxIN (default 1024x1024)")
    p.add_argument("--p", type=_positive, default=8, help="block size (default 8)")
    p.add_argument("--density", type=float, default=0.35, help="input density (default 0.35)")
    p.add_argument("--batch", type=_positive, default=4, help="inputs per run (default 4)")
    p.add_argument("--sim", choices=["verilator", "icarus", "both"], default="both")
    p.add_argument("--workdir", default="build/bench-engine", help="designs and results folder")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    p.set_defaults(func=cmd_bench_engine)

    p = sub.add_parser("verify", help="run the cocotb regression for one configuration "
                       "(JUnit XML and a JSON summary)")
    design_flags(p, shape_default=VERIFY_SHAPE,
                 model_help="compressed-model folder (default: random weights for --shape)")
    p.add_argument("--sim", choices=["verilator", "icarus", "both"],
                   help="simulator(s) (default both; icarus with --random-configs)")
    from permdeal.verif.verify import BENCHES
    p.add_argument("--tests", help="comma-separated subset of: " + ", ".join(BENCHES)
                   + " (default all)")
    p.add_argument("--seed", type=_seed, help="random seed (default: a fresh one, printed)")
    p.add_argument("--waves", action="store_true", help="record waveforms in the build folders")
    p.add_argument("-j", "--jobs", type=_positive, default=1, help="benches run in parallel")
    p.add_argument("--random-configs", type=_positive, metavar="N",
                   help="instead: N legal configurations drawn from the seed, each run on the "
                   "engine bench (default simulator there: icarus)")
    p.add_argument("-o", "--output", help="results folder")
    p.set_defaults(func=cmd_verify, name=None)

    from permdeal.synth import ecp5 as _ecp5, scripts as _scripts
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
    p.add_argument("--block", choices=["shift_add"], help="synthesize one generated block on "
                   "its own instead of a design: shift_add, the SmartDeal shift-add unit")
    p.add_argument("--block-params", metavar="KEY=V,...", help="the block's parameters (for "
                   "shift_add: S, E, b_bits, weight_bits, shift, lanes; defaults 3, 3, 8, 16, 0, "
                   "S)")
    p.add_argument("--device", default=_ecp5.DEFAULT_DEVICE,
                   help=f"ECP5 device (default {_ecp5.DEFAULT_DEVICE}): "
                   + ", ".join(_ecp5.DEVICES))
    p.add_argument("--speed", type=int, default=6, help="ECP5 speed grade 6, 7 or 8 (default 6)")
    p.add_argument("--target-mhz", type=float, default=100.0,
                   help="nextpnr's clock target in MHz (default 100; Fmax is reported either way)")
    p.add_argument("--seed", type=_seed, default=1, help="nextpnr seed and placeholder-image seed")
    p.add_argument("--asic-mhz", type=float, help="an ASIC clock (MHz) at which to state the "
                   "peak throughput (the tools do not measure ASIC timing)")
    p.add_argument("--sram-um2-per-bit", type=float, help="SRAM area model for the weight "
                   "memories (default: EIE's 45 nm figure scaled to 0.18 um, see the report)")
    p.add_argument("--liberty", help="liberty file for the asic target (default: the OSU 0.18 um "
                   "library of Debian's qflow-tech-osu018)")
    p.add_argument("--flat", action="store_true", help="flatten before synthesis (the check on "
                   "hierarchical synthesis; slower)")
    design_flags(p, model_help="compressed-model folder (as gen): a SmartDeal model gives its "
                 "chain of layer units, --lanes then each shift-add unit's lanes (default S)")
    p.add_argument("--name", help="engine module name (as gen)")
    p.add_argument("-o", "--output", help="report folder")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train an MLP on scikit-learn's handwritten digits (.npz out)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz")
    p.add_argument("--hidden", type=_int_list, default=[128, 64], help="hidden sizes (default 128,64)")
    p.add_argument("--p", type=_block_sizes, default=1,
                   help="block size(s); > 1 projects the dense model and fine-tunes it")
    p.add_argument("--epochs", type=_positive, default=40)
    p.add_argument("--finetune-epochs", type=_positive, default=30)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--force", action="store_true", help="overwrite MODEL.npz if it exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("accuracy", help="digits accuracy: dense against permuted-diagonal per p")
    p.add_argument("--p", type=_int_list, default=[2, 4, 8], help="block sizes (default 2,4,8)")
    p.add_argument("--hidden", type=_int_list, default=[128, 64], help="hidden sizes (default 128,64)")
    p.add_argument("--dense-last", action="store_true", help="keep the 10-output layer dense")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    p.set_defaults(func=cmd_accuracy)

    p = sub.add_parser("eval", help="golden fixed-point accuracy of a compressed model")
    p.add_argument("model", help="compressed-model folder")
    p.add_argument("--inputs", metavar="X.npy", help="inputs (default: the digits test split)")
    p.add_argument("--labels", metavar="Y.npy", help="class index of every input")
    p.add_argument("--seed", type=_seed, default=0, help="digits split seed (default 0)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="train, compress, generate and simulate a digits network "
                       "(what make demo runs)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                   help="simulator for the RTL run (default verilator)")
    p.add_argument("-o", "--output", default="build/demo", help="output folder (default build/demo)")
    p.add_argument("--p", type=_positive, default=4, help="block size (default 4)")
    p.add_argument("--pes", type=_positive, default=4, help="PEs (default 4)")
    p.add_argument("--lanes", type=_positive, default=2, help="lanes per PE (default 2)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--no-synth", action="store_true", help="skip synthesis (area and Fmax)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("check", help="verify a compressed-model, ROM-image or SmartDeal design "
                       "folder against its manifest")
    p.add_argument("folder", help="output folder of permdeal compress, permdeal rom, or permdeal "
                   "gen of a SmartDeal model")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="the benchmark of record: EIE's nine layers on the paper's "
                       "32 PE x 8 lane design (cycle model, validated in RTL), the flow's and the "
                       "golden model's speed")
    from . import bench as _bench
    _bench.add_arguments(p)
    p.set_defaults(func=_bench.run)

    p = sub.add_parser("compare", help="the compressed formats side by side (dense, PD, EIE, "
                       "block-circulant, SmartDeal, SME) on a model or EIE's layers")
    from . import compare as _compare
    _compare.add_arguments(p)
    p.set_defaults(func=_compare.run)

    p = sub.add_parser("bench-smartdeal", help="SmartDeal figures: a random layer's decomposition, "
                       "digits accuracy, the shift-add unit's cycles and size")
    p.add_argument("--parts", default="layer,digits,unit",
                   help="comma-separated parts: layer, digits, unit (default all)")
    p.add_argument("--m", type=_positive, default=4096, help="random layer outputs (default 4096)")
    p.add_argument("--n", type=_positive, default=4096, help="random layer inputs (default 4096)")
    p.add_argument("--S", type=_positive, default=3, help="chunk width S (default 3)")
    p.add_argument("--E", type=_positive, default=3, help="exponent bits E (default 3)")
    p.add_argument("--b-bits", type=_positive, default=8, help="bits of the B codes (default 8)")
    p.add_argument("--p", type=_positive, default=8,
                   help="PD block size of the storage comparison (default 8)")
    p.add_argument("--lanes", type=_positive, help="shift-add lanes (default S)")
    p.add_argument("--synth", action="store_true",
                   help="also synthesize the shift-add unit (Yosys generic and OSU 0.18 um)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--force", action="store_true", help="overwrite the --json file if it exists")
    p.set_defaults(func=cmd_bench_smartdeal)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PermdealError as e:
        print(f"permdeal {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"permdeal {args.command}: interrupted", file=sys.stderr)
        return 130
