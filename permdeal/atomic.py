"""Atomic output: a file or a whole output folder appears complete or not at all.

``write_bytes``/``write_text`` write to a temporary name beside the target and rename it into
place. ``output_dir`` builds a folder under a temporary name and renames it into place when the
``with`` block ends without an exception; on an exception the temporary folder is removed and
whatever stood at the target before is left untouched.

An existing target folder is replaced only when it is an earlier output of permdeal (it holds a
``manifest.json`` or is empty) and holds none of the command's inputs, so that nothing a user had
is lost.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import PermdealError

#: The file every permdeal output folder carries; its presence marks a folder as ours to replace.
MANIFEST_NAME = "manifest.json"


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def _check_replaceable(target, inputs):
    if target.exists() and not target.is_dir():
        raise PermdealError(f"output {target}: exists and is not a folder; not overwriting it")
    resolved = target.resolve()
    for inp in inputs:
        inp = Path(inp).resolve()
        if inp == resolved or resolved in inp.parents:
            raise PermdealError(
                f"output {target}: holds the input {inp}; choose another output folder")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_NAME).is_file():
        raise PermdealError(
            f"output {target}: folder exists and is not a permdeal output (no {MANIFEST_NAME});"
            " not overwriting it")


@contextlib.contextmanager
def output_dir(target, inputs=()):
    """Build an output folder atomically.

    Yields the temporary folder to write into. ``inputs`` are the paths the command reads: the
    target may not contain any of them.
    """
    target = Path(target)
    _check_replaceable(target, inputs)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermdealError(f"output {target}: cannot create folder {parent}: {e.strerror}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.rmdir(old)
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
