"""Hostile but realistic input, by class: every case asserts the exit status, exactly one line on
stderr naming the culprit, and that the folders the command was pointed at are unchanged, file by
file (their sha256). The classes:

1. a user's file inside an earlier output (added or edited, at any depth) is never deleted;
2. manifests are checked field by field (types, ranges, cross-checks) and every path they name
   stays inside its folder;
3. unbounded work (sizes, simulated cycles) is refused past a limit, naming the flag that lifts it;
4. every argument is checked at the edge (seeds, names the file system refuses);
5. SIGTERM and SIGINT leave nothing behind (tests/test_signals.py);
6. flags that do not apply are refused, not ignored;
7. errors are one line, also when a tool's log is behind them.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from permdeal.cli import main


def tree(folder):
    """``{relative path: sha256}`` of every file below ``folder`` (and ``{}`` for none)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": hashlib.sha256(folder.read_bytes()).hexdigest()}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def refused(capsys, argv, culprit, watch=(), code=2):
    """Run ``permdeal argv``: exit ``code``, one line on stderr naming ``culprit``, every folder
    of ``watch`` unchanged. Returns the line."""
    before = {str(w): tree(w) for w in watch}
    got = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert got == code, (got, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"permdeal {argv[0]}: error: "), err
    assert culprit in lines[0], err
    for w in watch:
        assert tree(w) == before[str(w)], f"{w} changed"
    return lines[0]


# -- fixtures: small folders of every kind -------------------------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A float model, its PD and SmartDeal compressions, their ROM images and designs, inputs."""
    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    np.savez(d / "m.npz", **{"fc1.weight": rng.standard_normal((8, 12)) * 0.3,
                             "fc1.bias": rng.standard_normal(8) * 0.1,
                             "fc2.weight": rng.standard_normal((5, 8)) * 0.3,
                             "fc2.bias": np.zeros(5)})
    np.save(d / "x.npy", rng.standard_normal((2, 12)))
    np.save(d / "y.npy", np.array([1, 3]))
    for argv in (["compress", d / "m.npz", "--p", "4", "-o", d / "pd"],
                 ["compress", d / "m.npz", "--method", "smartdeal", "-o", d / "sd"],
                 ["rom", d / "pd", "--pes", "1", "--lanes", "2", "-o", d / "rom"],
                 ["gen", "--model", d / "pd", "--pes", "1", "--lanes", "2", "-o", d / "gpd"],
                 ["gen", "--model", d / "sd", "-o", d / "gsd"]):
        assert main([str(a) for a in argv]) == 0, argv
    return d


def copy(folders, name, tmp_path):
    """A private copy of the fixture folder ``name`` to edit."""
    dst = tmp_path / name
    shutil.copytree(folders / name, dst, symlinks=True)
    return dst


def edit_manifest(folder, change):
    path = folder / "manifest.json"
    man = json.loads(path.read_text())
    change(man)
    path.write_text(json.dumps(man))
    return folder
