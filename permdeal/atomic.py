"""Atomic output: a file or a whole output folder appears complete or not at all.

``write_bytes``/``write_text`` write to a temporary name beside the target and rename it into
place. ``output_dir`` builds a folder under a temporary name and renames it into place when the
``with`` block ends without an exception; on an exception the temporary folder (and any parent
folder it had to create) is removed and whatever stood at the target before is left untouched.

Nothing a user had is lost: an output folder records in ``.permdeal-output.json`` every file
permdeal wrote into it, at every depth, with its sha256, and every folder; an existing folder is
replaced only when it is empty or such an earlier output holding nothing else, none of its files
changed (a file added or edited makes the folder the user's); no output may contain one of the
command's inputs; and
:func:`check_new_file` refuses to overwrite an existing file unless asked to.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import PermdealError

#: The file every permdeal output folder carries, describing its contents.
MANIFEST_NAME = "manifest.json"
#: What permdeal wrote into an output folder; its presence marks the folder as ours to replace.
MARKER_NAME = ".permdeal-output.json"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _oserror(path, e, doing="write"):
    return PermdealError(f"{path}: cannot {doing} ({e.strerror or e})")


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _oserror(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _oserror(path, e) from None
        raise


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def check_new_file(path, force=False, inputs=()):
    """Refuse a single-file output that would overwrite a file (unless ``force``) or an input."""
    path = Path(path)
    if path.is_dir():
        raise PermdealError(f"output {path}: is a folder; name a file")
    if any(Path(i).resolve() == path.resolve() for i in inputs):
        raise PermdealError(f"output {path}: is one of the inputs; choose another name")
    if path.exists() and not force:
        raise PermdealError(f"output {path}: exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise PermdealError(f"output {path}: folder {path.parent} does not exist")


#: The format of the ownership record (:data:`MARKER_NAME`): 2 records every file, at every
#: depth, with its sha256, and every folder.
MARKER_FORMAT = 2


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree(folder):
    """``(files, dirs, links)``: the relative paths (``/``-separated) of every file, folder and
    symbolic link below ``folder``, links not followed."""
    files, dirs, links = {}, [], []
    for root, dnames, fnames in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for d in list(dnames):
            if (Path(root) / d).is_symlink():
                links.append((rel / d).as_posix())
                dnames.remove(d)
            else:
                dirs.append((rel / d).as_posix())
        for f in fnames:
            path, name = Path(root) / f, (rel / f).as_posix()
            if path.is_symlink():
                links.append(name)
            else:
                files[name] = path
    return files, sorted(dirs), sorted(links)


def ownership_record(folder):
    """The record of everything in ``folder`` (the output permdeal just wrote): every file with
    its sha256 and every folder."""
    files, dirs, links = _tree(folder)
    return {"format": MARKER_FORMAT,
            "files": {rel: _sha256(path) for rel, path in sorted(files.items())
                      if rel != MARKER_NAME},
            "dirs": dirs,
            "links": {rel: os.readlink(Path(folder) / rel) for rel in links}}


def _not_ours(target):
    """Why the existing folder ``target`` may not be replaced (None: it may be): it is empty,
    or an earlier output whose every file and folder permdeal wrote and no file of which was
    changed since."""
    if not any(target.iterdir()):
        return None
    try:
        record = json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "is not an earlier permdeal output"
    if not isinstance(record, dict) or record.get("format") != MARKER_FORMAT \
            or not isinstance(record.get("files"), dict) \
            or not isinstance(record.get("dirs"), list):
        return (f"has an ownership record ({MARKER_NAME}) of another format (an older permdeal's,"
                " without checksums)")
    files, dirs, links = _tree(target)
    made = record.get("links") if isinstance(record.get("links"), dict) else {}
    for rel in links:
        if made.get(rel) != os.readlink(target / rel):
            return f"holds {rel}, a symbolic link permdeal did not make"
    for rel in dirs:
        if rel not in record["dirs"]:
            return f"holds the folder {rel}, which permdeal did not write"
    for rel, path in files.items():
        if rel == MARKER_NAME:
            continue
        want = record["files"].get(rel)
        if want is None:
            return f"holds {rel}, which permdeal did not write"
        if _sha256(path) != want:
            return f"holds {rel}, changed since permdeal wrote it"
    return None


def _check_replaceable(target, inputs):
    if target.exists() and not target.is_dir():
        raise PermdealError(f"output {target}: exists and is not a folder; not overwriting it")
    for inp in inputs:
        inp = Path(inp).resolve()
        if inp == target or target in inp.parents:
            raise PermdealError(
                f"output {target}: holds the input {inp}; choose another output folder")
    why = _not_ours(target) if target.is_dir() else None
    if why:
        raise PermdealError(f"output {target}: folder exists and {why}; not overwriting it "
                            "(choose another output folder, or remove it yourself)")
    if target == Path.cwd() or target in Path.cwd().parents:
        raise PermdealError(f"output {target}: is the current folder or holds it; choose another")


def _make_parents(folder):
    """Create ``folder`` and missing parents; return the ones created, deepest first."""
    created = []
    for d in [folder, *folder.parents]:
        if d.exists():
            break
        created.append(d)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _oserror(folder, e, "create folder") from None
    return created


@contextlib.contextmanager
def output_dir(target, inputs=()):
    """Build an output folder atomically.

    Yields the temporary folder to write into. ``inputs`` are the paths the command reads: the
    target may not contain any of them.
    """
    target = Path(target).resolve()
    _check_replaceable(target, inputs)
    created = _make_parents(target.parent)
    tmp = None
    try:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        except OSError as e:
            raise _oserror(target, e, "create") from None
        yield tmp
        write_text(tmp / MARKER_NAME, json.dumps(ownership_record(tmp), indent=1) + "\n")
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        why = _not_ours(target) if target.is_dir() else None
        if why:  # the folder changed while the command ran: the user's now
            raise PermdealError(f"output {target}: {why} (added while the command ran); not "
                                "overwriting it")
        try:
            if target.exists():
                old = target.with_name(f".{target.name}.{os.getpid()}.old")
                os.rename(target, old)
            os.rename(tmp, target)
        except OSError as e:
            if old is not None and not target.exists():
                with contextlib.suppress(OSError):
                    os.rename(old, target)  # put the earlier output back
            raise _oserror(target, e, "replace") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


#: The suffix of the folder that keeps a failed run's logs beside the output it did not write.
FAILED_SUFFIX = ".failed"


def keep_failed(target, files):
    """Keep a failed run's ``files`` (logs, scripts; missing ones skipped) in the folder
    ``<target>.failed`` beside the output ``target`` that was not written (an earlier one of
    permdeal's is replaced); returns its path, for the one-line error to name, or None when a
    folder of the user's stands there (nothing of it is touched)."""
    target = Path(target).resolve()
    kept = target.with_name(target.name + FAILED_SUFFIX)
    try:
        _check_replaceable(kept, ())
    except PermdealError:
        return None  # a folder of the user's stands there: the logs are not kept
    with output_dir(kept) as tmp:
        for f in files:
            f = Path(f)
            if f.is_file() and not f.is_symlink():
                shutil.copyfile(f, tmp / f.name)
    return kept
