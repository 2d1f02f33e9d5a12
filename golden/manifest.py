"""Reading ``manifest.json`` files strictly: JSON fields of the right type, compared exactly.

Every permdeal output folder describes itself in a ``manifest.json``; readers check each field they
use with :func:`json_field` and compare whatever they can recompute with :func:`json_diff`, so a
hand-edited or corrupted manifest is refused with a message naming the file and the field.
"""

import json
import re
from pathlib import Path
from typing import Any

from permdeal.errors import PermdealError

#: A sha256 as manifests write it.
SHA256 = re.compile(r"[0-9a-f]{64}")


_TYPE_NAMES = {int: "an integer", str: "a string", bool: "true or false", list: "a list",
               dict: "an object"}


def show_json(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_field(obj: Any, key: str, kind: type, where: str | Path,
               minimum: int | None = None) -> Any:
    """``obj[key]`` of JSON type ``kind`` (``int`` excludes ``true``/``false`` and ``8.0``).

    ``minimum`` bounds integers from below. Errors read ``where: key must be ...``.
    """
    if not isinstance(obj, dict):
        raise PermdealError(f"{where}: must be an object, not {show_json(obj)}")
    if key not in obj:
        raise PermdealError(f"{where}: missing field {key!r}")
    v = obj[key]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise PermdealError(f"{where}: {key} must be {_TYPE_NAMES[kind]}, not {show_json(v)}")
    if minimum is not None and v < minimum:
        raise PermdealError(f"{where}: {key} must be an integer >= {minimum}, not {v}")
    return v


def json_same(a: Any, b: Any) -> bool:
    """JSON equality that also tells ``1`` from ``1.0`` and ``true``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def json_diff(got: Any, want: Any, name: str) -> str | None:
    """The first difference between JSON values ``got`` and ``want``, as a message fragment about
    the field ``name`` (``None`` when they are the same)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{name} must be an object, not {show_json(got)}"
        for k in want:
            if k not in got:
                return f"{name}: missing field {k!r}"
        for k in got:
            if k not in want:
                return f"{name}: unexpected field {k!r}"
        for k in want:
            d = json_diff(got[k], want[k], f"{name}.{k}")
            if d:
                return d
        return None
    if not json_same(got, want):
        return f"{name} is {show_json(got)}, expected {show_json(want)}"
    return None


def read_manifest(path: str | Path, kind: str | tuple[str, ...]) -> dict:
    """Load a ``manifest.json`` of the given kind (or one of a tuple of kinds), with a clear error
    for anything else."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    path = Path(path)
    if path.is_dir():
        raise PermdealError(f"{path}: is a folder, expected a permdeal manifest file")
    if not path.is_file():
        raise PermdealError(f"{path}: missing; is {path.parent} a permdeal output folder?")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PermdealError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise PermdealError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:
        raise PermdealError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(man, dict) or man.get("kind") not in kinds:
        raise PermdealError(f"{path}: not a {' or '.join(kinds)} manifest (kind is "
                            f"{man.get('kind') if isinstance(man, dict) else None!r})")
    return man


def inside(folder: str | Path, rel: Any, where: str | Path, subfolder: str | None = None) -> Path:
    """``folder / rel`` for a path a manifest names: a string of ``/``-separated plain names (no
    empty, ``.`` or ``..`` part, not absolute, no backslash), directly under ``subfolder`` where
    given, that stays inside ``folder`` with every symbolic link followed. Anything else is refused
    naming ``where``."""
    folder = Path(folder)
    if not isinstance(rel, str):
        raise PermdealError(f"{where}: a path must be a string, not {show_json(rel)}")
    parts = rel.split("/")
    if (not rel or rel.startswith("/") or "\\" in rel or "\0" in rel
            or any(p in ("", ".", "..") for p in parts)):
        raise PermdealError(f"{where}: {rel!r} must be a relative path inside {folder} (plain "
                            "names separated by '/', no '..', not absolute)")
    if subfolder is not None and (len(parts) != 2 or parts[0] != subfolder):
        raise PermdealError(f"{where}: {rel!r} must be a file directly in {subfolder}/")
    path = folder / rel
    base, real = folder.resolve(), path.resolve()
    if real != base and base not in real.parents:
        raise PermdealError(f"{where}: {rel!r} leads outside {folder} (through a symbolic link)")
    return path
