"""Weight ROM images and their manifest (docs/design.md section 6).

Every lane ``(pe, lane)`` of the engine (see :mod:`.cycles` for which block-rows it holds) has
three memories, each initialised from one ``$readmemh`` text file (one word per line, fixed-width
lower-case hex, two's complement):

``weight``  address ``base + t*N_k*p + i*p + c``: the weight that input ``j = J*p + c`` meets in
            the lane's slot ``t``, i.e. ``q[I, J, r]`` with ``r = (c - k[I, J]) mod p``;
``k``       address ``base + t*N_k + i``: the permutation value ``k[I, J]``;
``bias``    address ``base + t*p + r``: the bias of output row ``I*p + r``;

for lane ``g = k*G + h`` of lane group ``k`` (``K`` groups of ``G`` lanes): block-row ``I = t*G +
h``, input block ``J = i*K + k`` (:mod:`.geometry`; with one group ``I = t*NL + g``, ``i = J``).

Slots beyond ``M'`` and rows beyond ``m`` hold zeros. The layers of a network follow one another
in each memory; each layer's bases are in the manifest. Files are named
``pe{PE}_lane{L}_{memory}.hex`` and listed in ``manifest.json`` with width, depth and sha256; the
reader refuses any file that does not match, naming it, and any manifest whose placements, memory
sizes or file names differ from what its layer descriptions and engine configuration imply.

:func:`.geometry.layout` is the one statement of this addressing, and :class:`.geometry.Geometry`
of every width, depth and base; the writer (:func:`lane_contents`), the placements
(:func:`placements`) and the reader (:func:`model_from_images`) all derive from them.

A conv network (:class:`~.conv_model.ConvNet`) is laid out as the FC layers its layers' matrix
layers are (a conv layer's: the patch-order matrix of :mod:`.conv`, docs/design.md 14.6), so the
engine reads a conv layer's words as an FC layer's; its manifest has format
:data:`CONV_ROM_FORMAT_VERSION`, the conv layers' ``conv`` fields and the feature-map order
``flatten`` (:mod:`.conv_folder`; format 3, before that field, means ``"chw"``), and
:func:`model_from_images` rebuilds the conv network.
"""

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from .cycles import EngineConfig
from .geometry import (MEMORIES, SIGNED, Geometry, LayerPlacement, lane_order, layer_placements,
                       layout)
from .geometry import memory_widths as layer_widths
from .manifest import SHA256, inside, json_diff, json_field, read_manifest
from .model import QuantModel, build_layer, check_model_json, model_from_specs
from .permdiag import diag_col, diag_row

ROM_KIND = "permdeal-rom"
#: 2: slot-major words (weight address ``t*N'*p + j``); images of format 1 are refused.
ROM_FORMAT_VERSION = 2
#: The images of a conv network: format 2's words, layers described with their ``conv`` fields,
#: the FC layer after a convolution's input order in ``flatten`` (docs/design.md 14.6).
CONV_ROM_FORMAT_VERSION = 4
#: The conv image formats read: 3 (before ``flatten``; ``(C, H, W)`` order) and 4.
CONV_ROM_FORMAT_VERSIONS = (3, 4)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UNHEX = np.full(256, 255, dtype=np.uint8)
_UNHEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_UNHEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def image_name(pe: int, lane: int, memory: str, cfg: EngineConfig) -> str:
    """File name of one image, zero-padded so that names sort in PE and lane order."""
    dp, dl = len(str(cfg.n_pe - 1)), len(str(cfg.lanes - 1))
    return f"pe{pe:0{dp}d}_lane{lane:0{dl}d}_{memory}.hex"


def hex_digits(width: int) -> int:
    return -(-width // 4)


def encode_hex(values: npt.ArrayLike, width: int, signed: bool) -> bytes:
    """``$readmemh`` text of ``values`` as ``width``-bit words (two's complement if ``signed``)."""
    v = np.asarray(values, dtype=np.int64)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if v.size and (v.min() < lo or v.max() > hi):
        raise PermdealError(f"values {v.min()}..{v.max()} do not fit {width}-bit words")
    u = v.astype(np.uint64) & np.uint64((1 << width) - 1)
    nd = hex_digits(width)
    shifts = np.arange(nd - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    chars = _HEX[((u[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]
    lines = np.concatenate([chars, np.full((v.size, 1), ord("\n"), np.uint8)], axis=1)
    return lines.tobytes()


def read_image_bytes(path: str | Path, context: str) -> bytes:
    """The bytes of the image file ``path``; ``context`` (e.g. where it is listed) ends the
    message when the file is a folder, missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        raise PermdealError(f"{path}: is a folder, not an image file ({context})")
    if not path.is_file():
        raise PermdealError(f"{path}: image missing ({context})")
    try:
        return path.read_bytes()
    except OSError as e:
        raise PermdealError(f"{path}: cannot read ({e.strerror or e})") from None


def decode_hex(data: bytes, width: int, depth: int, signed: bool, name: str | Path) -> np.ndarray:
    """Parse fixed-width hex lines written by :func:`encode_hex`; errors name file and line."""
    nd = hex_digits(width)
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size != depth * (nd + 1):
        n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        if n_lines != depth:
            raise PermdealError(f"{name}: {n_lines} lines, the manifest says depth {depth}"
                                + (" (truncated?)" if n_lines < depth else ""))
    ok = raw.size == depth * (nd + 1)
    if ok:
        grid = raw.reshape(depth, nd + 1)
        digits = _UNHEX[grid[:, :nd]]
        ok = bool(np.all(grid[:, nd] == ord("\n")) and np.all(digits != 255))
    if not ok:
        for i, line in enumerate(data.split(b"\n")[:depth], start=1):
            text = line.decode("ascii", "replace")
            if len(line) != nd or any(_UNHEX[b] == 255 for b in line):
                raise PermdealError(f"{name}: line {i}: {text!r} is not {nd} hex digits "
                                    f"({width}-bit words)")
        if not data.endswith(b"\n"):
            raise PermdealError(f"{name}: line {depth}: missing newline at the end of the file")
        raise PermdealError(f"{name}: malformed image")
    shifts = np.arange(nd - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    u = (digits.astype(np.uint64) << shifts).sum(axis=1, dtype=np.uint64)
    over = u >> np.uint64(width)
    if np.any(over):
        i = int(np.argmax(over != 0)) + 1
        raise PermdealError(f"{name}: line {i}: value exceeds the {width}-bit word width")
    v = u.astype(np.int64)
    if signed:
        v = np.where(v >= (1 << (width - 1)), v - (1 << width), v)
    return v


# -- the layout -------------------------------------------------------------------------------------

def _to_lanes(a, mem, b, cfg, nb, p, k):
    """A layer of ``k`` (``K_l``) groups: its padded array to its words in every engine lane,
    ``(NL, depth)``, lanes in :func:`.geometry.lane_order` (the bias words of one group repeated
    in every group)."""
    nl = cfg.total_lanes
    axes, order, _ = layout(mem, b, nl, nb, p, k)
    words = a.reshape(axes).transpose(order)
    words = np.tile(words.reshape(nl // k, -1), (k, 1)) if mem == "bias" \
        else words.reshape(nl, -1)
    return words[lane_order(cfg, k)]


def _from_lanes(words, mem, b, cfg, nb, p, k):
    """Inverse of :func:`_to_lanes` (``bias``: group 0's words)."""
    nl = cfg.total_lanes
    axes, order, shape = layout(mem, b, nl, nb, p, k)
    words = words[np.argsort(lane_order(cfg, k))]
    if mem == "bias":
        words = words[:nl // k]
    return words.reshape([axes[i] for i in order]).transpose(np.argsort(order)).reshape(shape)


def _is_conv(model) -> bool:
    return hasattr(model, "matrix_layers")


def matrix_layers(model: QuantModel) -> list:
    """The FC layers whose words the memories hold: a conv network's matrix layers."""
    return model.matrix_layers() if _is_conv(model) else list(model.layers)


def placements(model: QuantModel, cfg: EngineConfig) -> list[LayerPlacement]:
    """Base addresses and depths of every layer in the lane memories, in order."""
    return layer_placements([(l.matrix.blocks, l.matrix.p) for l in matrix_layers(model)], cfg)


def memory_widths(model: QuantModel) -> dict[str, int]:
    """Word width of each memory of ``model``'s layers (:func:`.geometry.memory_widths`)."""
    return layer_widths((l.fmts, l.matrix.p) for l in matrix_layers(model))


def lane_contents(model: QuantModel, cfg: EngineConfig) -> dict[str, np.ndarray]:
    """The words of every memory of every lane: ``{memory: array (NL, depth)}``, lane ``g``."""
    parts = {mem: [] for mem in MEMORIES}
    layers = matrix_layers(model)
    cfg.check_layers(len(layers))
    for i, layer in enumerate(layers):
        mat = layer.matrix
        (mb, nb), p = mat.blocks, mat.p
        groups = cfg.groups_of(i)
        b = cfg.slots(mb, groups)
        rows, cols = b * cfg.total_lanes // groups, -(-nb // groups) * groups
        k = np.zeros((rows, cols), np.int64)
        k[:mb, :nb] = mat.k
        q = np.zeros((rows, cols, p), np.int64)
        q[:mb, :nb] = mat.q
        # Column view: the weight that column c of block (I, J) meets sits in row (c - k) mod p.
        r = diag_row(np.arange(p), k[..., None], p)
        colq = np.take_along_axis(q, r, axis=-1)                      # (I, J, c)
        bias = np.zeros(rows * p, np.int64)
        bias[:mat.shape[0]] = layer.bias
        for mem, a in (("weight", colq), ("k", k), ("bias", bias)):
            parts[mem].append(_to_lanes(a, mem, b, cfg, nb, p, groups))
    return {mem: np.concatenate(parts[mem], axis=1) for mem in MEMORIES}


def rom_manifest(model: QuantModel, cfg: EngineConfig, images: list[dict]) -> dict:
    from .conv_folder import layer_json
    places = placements(model, cfg)
    layers = []
    for layer, place in zip(model.layers, places):
        d = layer_json(layer, "permdiag", arrays=False)
        d["placement"] = place.to_json()
        layers.append(d)
    conv = _is_conv(model)
    return {
        "kind": ROM_KIND, "format_version": CONV_ROM_FORMAT_VERSION if conv else ROM_FORMAT_VERSION,
        "generator": f"permdeal {__version__}",
        "config": {k: v for k, v in cfg.to_json().items() if k in CONFIG_FIELDS},
        "method": model.method,
        "input_format": model.input_format.to_json(), "output_format": model.output_format.to_json(),
        "memories": Geometry.of(cfg, matrix_layers(model), chained=not conv).memories(),
        "layers": layers, "images": images, **({"flatten": model.flatten} if conv else {}),
    }


def write_images(folder: str | Path, model: QuantModel, cfg: EngineConfig) -> dict:
    """Write every lane's images into ``folder`` (which must exist) and return the manifest dict.

    The manifest is also written as ``manifest.json`` unless a caller that merges it into a larger
    manifest passes through :func:`build_images` instead.
    """
    man = build_images(folder, model, cfg)
    atomic.write_text(Path(folder) / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


def build_images(folder: str | Path, model: QuantModel, cfg: EngineConfig) -> dict:
    """Write the image files only; return the ROM manifest dict describing them."""
    folder = Path(folder)
    widths = memory_widths(model)
    contents = lane_contents(model, cfg)
    images = []
    for g in range(cfg.total_lanes):
        pe, lane = divmod(g, cfg.lanes)
        for mem in MEMORIES:
            data = encode_hex(contents[mem][g], widths[mem], signed=mem in SIGNED)
            name = image_name(pe, lane, mem, cfg)
            atomic.write_bytes(folder / name, data)
            images.append({"file": name, "pe": pe, "lane": lane, "memory": mem,
                           "width": widths[mem], "depth": int(contents[mem].shape[1]),
                           "sha256": hashlib.sha256(data).hexdigest()})
    return rom_manifest(model, cfg, images)


# -- reading ----------------------------------------------------------------------------------------

#: The engine settings a ROM manifest records: those the images' layout depends on (not the
#: multiplier style, which is the hardware's alone). ``layer_groups`` (a list, one count a
#: layer) only when the layers' lane-group counts differ.
CONFIG_FIELDS = ("n_pe", "lanes", "scan_width", "groups", "layer_groups")
#: Of :data:`CONFIG_FIELDS`, those a manifest may leave out (written only when not 1, or for
#: ``layer_groups`` when every layer has ``groups``).
OPTIONAL_FIELDS = ("groups", "layer_groups")


def _config(man, path):
    """The manifest's ``config`` as an :class:`EngineConfig` (:data:`CONFIG_FIELDS`; every one
    must be present but :data:`OPTIONAL_FIELDS`)."""
    where = f"{path}: config"
    c = json_field(man, "config", dict, path)
    names = CONFIG_FIELDS
    for key in c:
        if key not in names:
            raise PermdealError(f"{where}: unexpected field {key!r}")
    values = {key: json_field(c, key, int, where, minimum=1)
              for key in names if (key in c or key not in OPTIONAL_FIELDS) and key != "layer_groups"}
    if "layer_groups" in c:
        counts = json_field(c, "layer_groups", list, where)
        for i, k in enumerate(counts):
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise PermdealError(f"{where}: layer_groups[{i}] must be a whole number of at "
                                    f"least 1, not {json.dumps(k)}")
        if len(set(counts)) < 2:
            raise PermdealError(f"{where}: layer_groups must name differing counts (equal counts "
                                f"are written as groups alone), not {counts}")
        values["layer_groups"] = tuple(counts)
    try:
        return EngineConfig(**values)
    except PermdealError as e:
        raise PermdealError(f"{where}: {e}") from None


def _check_entries(man, man_path, folder, cfg, mems):
    """Check the ``images`` list: each (memory, PE, lane) once, under its RTL name, with the
    memory's width and depth. Returns ``{(memory, g): (path, sha256)}`` in manifest order."""
    images = json_field(man, "images", list, man_path)
    entries, index = {}, {}
    for i, img in enumerate(images):
        where = f"{man_path}: images[{i}]"
        if not isinstance(img, dict):
            raise PermdealError(f"{where}: must be an object, not {json.dumps(img)[:60]}")
        mem = json_field(img, "memory", str, where)
        if mem not in MEMORIES:
            raise PermdealError(f"{where}: memory must be one of {', '.join(MEMORIES)}, not {mem!r}")
        pe = json_field(img, "pe", int, where, minimum=0)
        lane = json_field(img, "lane", int, where, minimum=0)
        if pe >= cfg.n_pe or lane >= cfg.lanes:
            raise PermdealError(f"{where}: PE {pe} lane {lane} is outside the engine's {cfg.n_pe} "
                                f"PE x {cfg.lanes} lanes")
        g = pe * cfg.lanes + lane
        if (mem, g) in entries:
            raise PermdealError(f"{where}: a second {mem} image for PE {pe} lane {lane} (the first "
                                f"is images[{index[mem, g]}])")
        file = json_field(img, "file", str, where)
        if file in ("", ".", "..") or Path(file).name != file or "\\" in file or "\0" in file:
            raise PermdealError(f"{where}: file {file!r} must be a plain file name in {folder}")
        name = image_name(pe, lane, mem, cfg)
        if file != name:
            raise PermdealError(f"{where}: file {file!r} is not the name of the PE {pe} lane {lane} "
                                f"{mem} image, which the RTL's $readmemh loads as {name!r}")
        path = inside(folder, file, where)
        width = json_field(img, "width", int, where)
        depth = json_field(img, "depth", int, where)
        spec = mems[mem]
        if width != spec["width"] or depth != spec["depth"]:
            raise PermdealError(f"{path}: width {width}/depth {depth} differ from the {mem} "
                                f"memory's {spec['width']}/{spec['depth']} in {man_path}")
        sha = json_field(img, "sha256", str, where)
        if not SHA256.fullmatch(sha):
            raise PermdealError(f"{where}: sha256 must be 64 lower-case hex digits, not {sha!r}")
        entries[mem, g] = (path, sha)
        index[mem, g] = i
    total = len(MEMORIES) * cfg.total_lanes
    if len(entries) != total:
        # The first gap lies among the first len(entries) + 1 (memory, lane) pairs.
        every = ((m, g) for m in MEMORIES for g in range(cfg.total_lanes))
        mem, g = next(x for x in itertools.islice(every, len(entries) + 1) if x not in entries)
        raise PermdealError(f"{man_path}: lists no {mem} image for PE {g // cfg.lanes} lane "
                            f"{g % cfg.lanes} ({total - len(entries)} image(s) missing)")
    return entries


@dataclass
class _Rom:
    man: dict
    man_path: Path
    cfg: EngineConfig
    specs: list
    places: list
    contents: dict
    conv: list | None = None   # a conv network's layer specs (conv_folder.ConvLayerSpec s)
    flatten: str | None = None  # a conv network's feature-map order (conv_folder.check_flatten)


def _read(folder, manifest=None):
    """Check a ROM manifest against itself (everything derivable is recomputed from the layer
    descriptions and the configuration) and read every image against it."""
    folder = Path(folder)
    man_path = folder / atomic.MANIFEST_NAME
    if manifest is None:
        man = read_manifest(man_path, ROM_KIND)
    elif isinstance(manifest, dict):
        man = manifest
    else:
        raise PermdealError(f"{man_path}: a manifest must be an object")
    from . import conv_folder
    version = man.get("format_version")
    conv = isinstance(version, int) and version in CONV_ROM_FORMAT_VERSIONS
    flatten = None
    if conv:
        _, nets, flatten = conv_folder.check_net_json(
            man, man_path, "permdiag", version, arrays=False,
            has_flatten=version != CONV_ROM_FORMAT_VERSIONS[0])
    else:
        conv_folder.refuse_conv_fields(man, man_path, CONV_ROM_FORMAT_VERSION)
        nets = check_model_json(man, man_path, ROM_FORMAT_VERSION, arrays=False)
    specs = [getattr(s, "matrix", s) for s in nets]
    cfg = _config(man, man_path)
    try:
        places = layer_placements([(s.blocks, s.p) for s in specs], cfg)
    except PermdealError as e:
        raise PermdealError(f"{man_path}: config: {e}") from None
    for i, (d, spec, place) in enumerate(zip(man["layers"], specs, places)):
        where = f"{man_path}: layer {i} ({spec.name})"
        got = json_field(d, "placement", dict, where)
        diff = json_diff(got, place.to_json(), "placement")
        if diff:
            raise PermdealError(f"{where}: {diff} (from the sizes of this and the earlier layers "
                                f"on {cfg.n_pe} PE x {cfg.lanes} lanes)")
    mems = json_field(man, "memories", dict, man_path)
    diff = json_diff(mems, Geometry.of(cfg, specs, chained=not conv).memories(), "memories")
    if diff:
        raise PermdealError(f"{man_path}: {diff} (from the layers' formats, block sizes and "
                            "placements)")
    entries = _check_entries(man, man_path, folder, cfg, mems)
    values = {}
    for (mem, g), (path, sha) in entries.items():
        data = read_image_bytes(path, f"listed in {man_path}")
        spec = mems[mem]
        values[mem, g] = decode_hex(data, spec["width"], spec["depth"], spec["signed"], path)
        if hashlib.sha256(data).hexdigest() != sha:
            raise PermdealError(f"{path}: sha256 does not match {man_path}; the image was changed")
    contents = {mem: np.stack([values[mem, g] for g in range(cfg.total_lanes)]) for mem in MEMORIES}
    return _Rom(man, man_path, cfg, specs, places, contents, nets if conv else None, flatten)


def read_images(folder: str | Path,
                manifest: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify every image of a ROM folder.

    Returns ``(manifest, {memory: array (NL, depth)})``. Refuses, naming the file, any image that
    is missing or whose width, depth or sha256 disagrees with the manifest, and any manifest whose
    fields disagree with one another.
    """
    rom = _read(folder, manifest)
    return rom.man, rom.contents


def model_from_images(folder: str | Path) -> QuantModel:
    """Rebuild the :class:`QuantModel` that a ROM folder encodes (the inverse of the writer)."""
    folder = Path(folder)
    rom = _read(folder)
    nl = rom.cfg.total_lanes
    layers = []
    for i, (spec, place) in enumerate(zip(rom.specs, rom.places)):
        (mb, nb), p, b = spec.blocks, spec.p, place.slots
        where = f"{folder}: the images of layer {i} ({spec.name})"
        part = {}
        for mem in MEMORIES:
            base, depth = getattr(place, f"{mem}_base"), getattr(place, f"{mem}_depth")
            part[mem] = _from_lanes(rom.contents[mem][:, base:base + depth], mem, b, rom.cfg,
                                    nb, p, rom.cfg.groups_of(i))
        k, colq, bias = part["k"], part["weight"], part["bias"]
        kl = rom.cfg.groups_of(i)
        if kl > 1:
            lanes = rom.contents["bias"][:, place.bias_base:place.bias_base + place.bias_depth]
            lanes = lanes[np.argsort(lane_order(rom.cfg, kl))]
            if np.any(lanes != np.tile(lanes[:nl // kl], (kl, 1))):
                raise PermdealError(f"{where}: the bias memories of the lane groups differ (every "
                                    "group holds group 0's words)")
        for mem, pad, what in (("k", k[mb:], f"slots past block-row {mb}"),
                               ("weight", colq[mb:], f"slots past block-row {mb}"),
                               ("k", k[:, nb:], f"block-columns past {nb}"),
                               ("weight", colq[:, nb:], f"block-columns past {nb}"),
                               ("bias", bias[spec.n_out:], f"rows past output {spec.n_out}")):
            if np.any(pad):
                raise PermdealError(f"{where}: the {mem} memory holds non-zero words in the {what}, "
                                    "which must be zero")
        # Row view again: row r of block (I, J) holds the weight of column (r + k) mod p.
        c = diag_col(np.arange(p), k[..., None], p)
        q = np.take_along_axis(colq, c, axis=-1)
        layers.append(build_layer(spec, k[:mb, :nb], q[:mb, :nb], bias[:spec.n_out], where))
    if rom.conv is not None:
        from . import conv_folder
        layers = [conv_folder.build(s, ml, f"{folder}: the images of layer {i} ({ml.name})")
                  for i, (s, ml) in enumerate(zip(rom.conv, layers))]
        return conv_folder.make_net(layers, "permdiag", None, rom.man_path, rom.flatten)
    return model_from_specs(layers, rom.man_path)
