# amaranth: UnusedElaboratable=no
"""Read-only memories initialised from ``$readmemh`` image files (docs/design.md section 6).

:class:`ImageRom` instantiates the hand-written Verilog module ``permdeal_rom``
(``hdl/permdeal_rom.v``, :data:`ROM_SOURCE`), which loads its contents with ``$readmemh`` at
simulation (or synthesis) time, so that the generated Verilog carries the file name instead of
the words. Any Verilog that instantiates it must be built together with :data:`ROM_SOURCE`
(:func:`rom_sources` says whether a Verilog text needs it). Amaranth's own simulator cannot run
a design holding an :class:`ImageRom` (it is a Verilog instance); Icarus and Verilator can.

:func:`check_image` is the generation-time check of one image against the memory it initialises:
the file exists, holds exactly ``depth`` fixed-width hex words of ``width`` bits and, when a
``manifest.json`` beside it (``golden.rom.write_images``) lists it, agrees with the manifest's
memory, width, depth and sha256. A mismatched image fails here, naming the file, never silently in
simulation. Without a manifest, a word width that differs from the memory's but needs as many hex
digits (say 10 and 12 bits) cannot be told from the file alone.

The ``INIT_FILE`` parameter is by default the path as given, made absolute (:func:`verilog_path`):
the Verilog text then depends on the image folder's location. With ``rom_dir`` it is the file's
name in that folder as written, so a generated design folder can be moved: ``$readmemh`` resolves
a relative name from the simulator's (or synthesis tool's) working folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import ClockSignal, Instance, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from permdeal.atomic import MANIFEST_NAME
from permdeal.checks import integer
from permdeal.errors import PermdealError
from permdeal.golden.rom import decode_hex, hex_digits, read_image_bytes

__all__ = ["ROM_MODULE", "ROM_SOURCE", "ImageRom", "check_image", "rom_sources", "verilog_path"]

#: The Verilog module :class:`ImageRom` instantiates.
ROM_MODULE = "permdeal_rom"
#: The one Verilog source of :data:`ROM_MODULE`: add it to a simulator's or synthesis tool's
#: sources whenever a design instantiates an :class:`ImageRom`.
ROM_SOURCE = Path(__file__).resolve().with_name("permdeal_rom.v")
#: The manifest that ``golden.rom.write_images`` writes beside the images.


def rom_sources(verilog: str) -> list[Path]:
    """``[ROM_SOURCE]`` if the Verilog text ``verilog`` instantiates :data:`ROM_MODULE`, else
    ``[]``: the extra sources a simulator or synthesis run of that text needs."""
    return [ROM_SOURCE] if re.search(rf"^\s*{ROM_MODULE}\s*#\(", verilog, re.M) else []


def addr_bits(depth: int) -> int:
    """Width of an address for ``depth`` words (at least 1 bit, so no port is empty)."""
    return max(1, (depth - 1).bit_length())


def verilog_path(path: str | Path, rom_dir: str | None = None) -> str:
    """The ``INIT_FILE`` string of an image, as Verilog-safe text: ``path`` made absolute, or with
    ``rom_dir`` (a string) the file's name in that folder as written (``""``: the bare name, which
    ``$readmemh`` resolves from the simulator's working folder)."""
    if rom_dir is None:
        text = str(Path(path).absolute())
    else:
        text = f"{rom_dir.rstrip('/')}/{Path(path).name}" if rom_dir else Path(path).name
    if any(ch in '"\\' or not " " <= ch <= "~" for ch in text):
        raise PermdealError(f"{text}: an image path must be printable ASCII without '\"' or "
                            "'\\' (it becomes a Verilog string)")
    return text


def _manifest_entry(path):
    """The ``images`` entry of ``path`` in the ``manifest.json`` beside it (None without a
    manifest); an image the manifest does not list is refused."""
    man_path = path.parent / MANIFEST_NAME
    if not man_path.is_file():
        return None, man_path
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PermdealError(f"{man_path}: cannot read the manifest of {path.name} ({e})") from None
    images = man.get("images") if isinstance(man, dict) else None
    if not isinstance(images, list):
        raise PermdealError(f"{man_path}: no images list (the manifest of {path.name})")
    found = [img for img in images if isinstance(img, dict) and img.get("file") == path.name]
    if not found:
        raise PermdealError(f"{path}: not listed in {man_path}, the manifest beside it")
    return found[0], man_path


def check_image(path: str | Path, memory: str, width: int, depth: int, signed: bool,
                limit: int | None = None) -> np.ndarray:
    """Check the image ``path`` for a ``memory`` of ``depth`` ``width``-bit words; return its
    words (an int64 array, two's complement decoded when ``signed``).

    ``limit``: every word must be below it (the k memory: the largest block size). Raises
    :class:`PermdealError` naming the file on any disagreement.
    """
    path = Path(path)
    data = read_image_bytes(path, f"the lane's {memory} image")
    kind = f"{depth} {'signed' if signed else 'unsigned'} {width}-bit words"
    entry, man_path = _manifest_entry(path)
    if entry is not None:
        for key, want in (("memory", memory), ("width", width), ("depth", depth)):
            if entry.get(key) != want:
                raise PermdealError(f"{path}: {man_path.name} lists it with {key} "
                                    f"{entry.get(key)!r}, the lane's {memory} memory has {want} "
                                    f"({kind})")
        if entry.get("sha256") != hashlib.sha256(data).hexdigest():
            raise PermdealError(f"{path}: sha256 does not match {man_path}; the image was changed")
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if n_lines != depth:
        raise PermdealError(f"{path}: {n_lines} words, the lane's {memory} memory holds {kind}")
    first = data.split(b"\n", 1)[0]
    if len(first) != hex_digits(width):
        raise PermdealError(f"{path}: words of {len(first)} hex digits, the lane's {memory} "
                            f"memory holds {kind} ({hex_digits(width)} digits)")
    words = decode_hex(data, width, depth, signed, path)
    if limit is not None and words.size and int(words.max()) >= limit:
        i = int(np.argmax(words >= limit))
        raise PermdealError(f"{path}: line {i + 1}: {memory} word {int(words[i])} is not below "
                            f"{limit}")
    return words


class ImageRom(wiring.Component):
    """A ``depth``-word read-only memory of ``shape`` loaded from ``init_file`` by ``$readmemh``.

    Instantiates :data:`ROM_MODULE` (build the Verilog together with :data:`ROM_SOURCE`). The
    image is not read here; :func:`check_image` is the caller's generation-time check.

    Members
    -------
    addr : ``In(max(1, ceil(log2 depth)))``
        Read address.
    data : ``Out(shape)``
        ``mem[addr]`` of the address at the previous rising edge of ``domain`` (registered, not
        transparent, no reset): the timing of an ``amaranth.lib.memory.Memory`` read port.
        A signed ``shape`` reads the file's two's complement words as signed values.
    """

    def __init__(self, shape, depth, init_file, *, rom_dir=None, domain="sync"):
        self._shape = Shape.cast(shape)
        self._depth = integer(depth, "ROM depth", 1)
        self._init_file = verilog_path(init_file, rom_dir)
        self._domain = domain
        super().__init__({"addr": In(addr_bits(self._depth)), "data": Out(self._shape)})

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def init_file(self) -> str:
        """The ``INIT_FILE`` parameter (:func:`verilog_path`)."""
        return self._init_file

    def read_port(self) -> ImageRom:
        """The ROM's one read port (``addr``, ``data``): the component itself, so that a lane
        uses an :class:`ImageRom` as it uses a ``Memory``'s synchronous read port."""
        return self

    def elaborate(self, platform: Any) -> Instance:
        # The instance itself, not a module around it: one Verilog instance per ROM.
        return Instance(
            ROM_MODULE,
            p_WIDTH=self._shape.width, p_DEPTH=self._depth, p_ADDR_BITS=len(self.addr),
            p_INIT_FILE=self._init_file,
            i_clk=ClockSignal(self._domain), i_addr=self.addr, o_data=self.data)
