"""Weight ROM images and their manifest (DESIGN.md section 6).

Every lane ``(pe, lane)`` of the engine (see :mod:`.cycles` for which block-rows it holds) has
three memories, each initialised from one ``$readmemh`` text file (one word per line, fixed-width
lower-case hex, two's complement):

``weight``  address ``base + j*B + t``: the weight that input ``j`` meets in the lane's slot ``t``,
            i.e. ``q[I, J, r]`` with ``I = t*NL + g``, ``j = J*p + c``, ``r = (c - k[I, J]) mod p``;
``k``       address ``base + J*B + t``: the permutation value ``k[I, J]``;
``bias``    address ``base + t*p + r``: the bias of output row ``I*p + r``.

Slots beyond ``M'`` and rows beyond ``m`` hold zeros. The layers of a network follow one another
in each memory; each layer's bases are in the manifest. Files are named
``pe{PE}_lane{L}_{memory}.hex`` and listed in ``manifest.json`` with width, depth and sha256; the
reader refuses any file that does not match, naming it.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from permdeal import __version__, atomic
from permdeal.errors import PermdealError

from .cycles import EngineConfig
from .model import QuantModel, layer_from_json, layer_to_json, read_manifest
from .permdiag import diag_col, diag_row, index_bits

ROM_KIND = "permdeal-rom"
ROM_FORMAT_VERSION = 1
MEMORIES = ("weight", "k", "bias")
SIGNED = frozenset({"weight", "bias"})

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UNHEX = np.full(256, 255, dtype=np.uint8)
_UNHEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_UNHEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def image_name(pe, lane, memory, cfg):
    """File name of one image, zero-padded so that names sort in PE and lane order."""
    dp, dl = len(str(cfg.n_pe - 1)), len(str(cfg.lanes - 1))
    return f"pe{pe:0{dp}d}_lane{lane:0{dl}d}_{memory}.hex"


def hex_digits(width):
    return -(-width // 4)


def encode_hex(values, width, signed):
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


def decode_hex(data, width, depth, signed, name):
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


@dataclass(frozen=True)
class LayerPlacement:
    """Where one layer lives in the lanes' memories."""

    slots: int
    weight_base: int
    k_base: int
    bias_base: int
    weight_depth: int
    k_depth: int
    bias_depth: int

    def to_json(self):
        return self.__dict__.copy()


def placements(model, cfg):
    """Base addresses and depths of every layer in the lane memories, in order."""
    out, bases = [], {"weight": 0, "k": 0, "bias": 0}
    for layer in model.layers:
        mb, nb = layer.matrix.blocks
        b, p = cfg.slots(mb), layer.matrix.p
        depth = {"weight": nb * p * b, "k": nb * b, "bias": b * p}
        out.append(LayerPlacement(b, bases["weight"], bases["k"], bases["bias"],
                                  depth["weight"], depth["k"], depth["bias"]))
        for mem in MEMORIES:
            bases[mem] += depth[mem]
    return out


def memory_widths(model):
    """Word width of each memory: the widest layer's format (1 bit of k for ``p = 1``)."""
    return {"weight": max(l.fmts.weight.bits for l in model.layers),
            "k": max(1, max(index_bits(l.matrix.p) for l in model.layers)),
            "bias": max(l.fmts.bias.bits for l in model.layers)}


def lane_contents(model, cfg):
    """The words of every memory of every lane: ``{memory: array (NL, depth)}``, lane ``g``."""
    nl = cfg.total_lanes
    parts = {mem: [] for mem in MEMORIES}
    for layer in model.layers:
        mat = layer.matrix
        (mb, nb), p = mat.blocks, mat.p
        b = cfg.slots(mb)
        rows = b * nl
        k = np.zeros((rows, nb), np.int64)
        k[:mb] = mat.k
        q = np.zeros((rows, nb, p), np.int64)
        q[:mb] = mat.q
        # Column view: the weight that column c of block (I, J) meets sits in row (c - k) mod p.
        r = diag_row(np.arange(p), k[..., None], p)
        colq = np.take_along_axis(q, r, axis=-1)                      # (I, J, c)
        bias = np.zeros(rows * p, np.int64)
        bias[:mat.shape[0]] = layer.bias
        parts["weight"].append(colq.reshape(b, nl, nb, p).transpose(1, 2, 3, 0).reshape(nl, -1))
        parts["k"].append(k.reshape(b, nl, nb).transpose(1, 2, 0).reshape(nl, -1))
        parts["bias"].append(bias.reshape(b, nl, p).transpose(1, 0, 2).reshape(nl, -1))
    return {mem: np.concatenate(parts[mem], axis=1) for mem in MEMORIES}


def rom_manifest(model, cfg, images):
    widths = memory_widths(model)
    layers = []
    for layer, place in zip(model.layers, placements(model, cfg)):
        d = layer_to_json(layer)
        d.pop("arrays")
        d["placement"] = place.to_json()
        layers.append(d)
    depth = {mem: sum(l["placement"][f"{mem}_depth"] for l in layers) for mem in MEMORIES}
    return {
        "kind": ROM_KIND, "format_version": ROM_FORMAT_VERSION,
        "generator": f"permdeal {__version__}", "config": cfg.to_json(), "method": model.method,
        "input_format": model.input_format.to_json(), "output_format": model.output_format.to_json(),
        "memories": {mem: {"width": widths[mem], "depth": depth[mem], "signed": mem in SIGNED}
                     for mem in MEMORIES},
        "layers": layers, "images": images,
    }


def write_images(folder, model, cfg):
    """Write every lane's images into ``folder`` (which must exist) and return the manifest dict.

    The manifest is also written as ``manifest.json`` unless a caller that merges it into a larger
    manifest passes through :func:`build_images` instead.
    """
    man = build_images(folder, model, cfg)
    atomic.write_text(Path(folder) / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man


def build_images(folder, model, cfg):
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


def read_images(folder, manifest=None):
    """Read and verify every image of a ROM folder.

    Returns ``(manifest, {memory: array (NL, depth)})``. Refuses, naming the file, any image that
    is missing or whose width, depth or sha256 disagrees with the manifest.
    """
    folder = Path(folder)
    man_path = folder / atomic.MANIFEST_NAME
    man = manifest if manifest is not None else read_manifest(man_path, ROM_KIND)
    try:
        cfg = EngineConfig(**man["config"])
        mems = man["memories"]
        images = man["images"]
    except (KeyError, TypeError) as e:
        raise PermdealError(f"{man_path}: missing or malformed field {e}") from None
    contents = {mem: np.zeros((cfg.total_lanes, mems[mem]["depth"]), np.int64) for mem in MEMORIES}
    seen = set()
    for img in images:
        path = folder / img["file"]
        mem, g = img["memory"], img["pe"] * cfg.lanes + img["lane"]
        spec = mems.get(mem)
        if spec is None or not (0 <= img["pe"] < cfg.n_pe and 0 <= img["lane"] < cfg.lanes):
            raise PermdealError(f"{path}: manifest entry names an unknown memory or lane")
        if img["width"] != spec["width"] or img["depth"] != spec["depth"]:
            raise PermdealError(f"{path}: width {img['width']}/depth {img['depth']} differ from the "
                                f"{mem} memory's {spec['width']}/{spec['depth']} in {man_path}")
        if not path.is_file():
            raise PermdealError(f"{path}: image missing (listed in {man_path})")
        data = path.read_bytes()
        values = decode_hex(data, spec["width"], spec["depth"], spec["signed"], path)
        if hashlib.sha256(data).hexdigest() != img["sha256"]:
            raise PermdealError(f"{path}: sha256 does not match {man_path}; the image was changed")
        contents[mem][g] = values
        seen.add((mem, g))
    missing = [(m, g) for m in MEMORIES for g in range(cfg.total_lanes) if (m, g) not in seen]
    if missing:
        mem, g = missing[0]
        raise PermdealError(f"{man_path}: lists no {mem} image for PE {g // cfg.lanes} lane "
                            f"{g % cfg.lanes} ({len(missing)} image(s) missing)")
    return man, contents


def model_from_images(folder):
    """Rebuild the :class:`QuantModel` that a ROM folder encodes (the inverse of the writer)."""
    folder = Path(folder)
    man, contents = read_images(folder)
    cfg = EngineConfig(**man["config"])
    nl = cfg.total_lanes
    layers = []
    for i, d in enumerate(man["layers"]):
        place = d["placement"]
        (mb, nb), p, b = d["blocks"], d["p"], place["slots"]
        w = contents["weight"][:, place["weight_base"]:place["weight_base"] + place["weight_depth"]]
        k = contents["k"][:, place["k_base"]:place["k_base"] + place["k_depth"]]
        bias = contents["bias"][:, place["bias_base"]:place["bias_base"] + place["bias_depth"]]
        k = k.reshape(nl, nb, b).transpose(2, 0, 1).reshape(b * nl, nb)
        colq = w.reshape(nl, nb, p, b).transpose(3, 0, 1, 2).reshape(b * nl, nb, p)
        # Row view again: row r of block (I, J) holds the weight of column (r + k) mod p.
        c = diag_col(np.arange(p), k[..., None], p)
        q = np.take_along_axis(colq, c, axis=-1)
        bias = bias.reshape(nl, b, p).transpose(1, 0, 2).reshape(-1)
        layers.append(layer_from_json(d, k[:mb], q[:mb], bias[:d["out"]],
                                      what=f"{folder / atomic.MANIFEST_NAME}: layer {i}"))
    return QuantModel(layers, man.get("method", "permdiag"))
