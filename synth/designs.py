"""Synthesize any generated design folder: the flow of its kind (the PermDNN engine's
:func:`.flow.synthesize_engine`, a SmartDeal design's :func:`.smartdeal.synthesize`), and the
report folder (:func:`run`)."""

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from permdeal import atomic
from permdeal.errors import PermdealError
from permdeal.gen.design import DESIGN_KIND
from permdeal.gen.smartdeal_design import DESIGN_KIND as SD_DESIGN_KIND
from permdeal.gen.smartdeal_engine_design import DESIGN_KIND as SDE_DESIGN_KIND
from permdeal.golden.manifest import read_manifest

from . import flow, smartdeal, smartdeal_engine
from .report import text

__all__ = ["FLOWS", "run", "synthesize"]

#: The synthesis flow of each kind of design folder.
FLOWS = {DESIGN_KIND: flow.synthesize_engine, SD_DESIGN_KIND: smartdeal.synthesize,
         SDE_DESIGN_KIND: smartdeal_engine.synthesize}


def synthesize(design_dir: str | Path, targets: Sequence[str], opts: flow.SynthOptions,
               log_dir: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Synthesize the design in ``design_dir`` for ``targets`` with the flow of its kind
    (:data:`FLOWS`); returns the report dict.

    Tool logs go to ``log_dir``. ``progress(text)`` (optional) is called as each step starts.
    Raises :class:`~.tools.SynthFailed` (or another ``PermdealError``) on the first failure.
    """
    man = read_manifest(Path(design_dir) / atomic.MANIFEST_NAME, tuple(FLOWS))
    return FLOWS[man["kind"]](design_dir, targets, opts, log_dir, progress)


def run(design_dir: str | Path | None, targets: Sequence[str], opts: flow.SynthOptions,
        out: str | Path, progress: Callable[[str], None] | None = None,
        make_design: Callable[[Path], Any] | None = None,
        inputs: Iterable[str | Path] = ()) -> dict:
    """:func:`synthesize` into the new folder ``out`` (atomically: nothing is left there after a
    failure): ``report.json``, ``report.txt`` (:func:`.report.text`) and ``logs/``. Returns the
    report.

    Without ``design_dir``, ``make_design(folder)`` generates the design into ``out/design``.
    """
    inputs = [*inputs, *([design_dir] if design_dir is not None else [])]
    try:
        with atomic.output_dir(out, inputs=inputs) as tmp:
            if design_dir is None:
                if progress:
                    progress("generating the design")
                make_design(tmp / "design")
                design_dir = tmp / "design"
            report = synthesize(design_dir, targets, opts, tmp / "logs", progress)
            if design_dir == tmp / "design":
                report["design"]["folder"] = str(Path(out).resolve() / "design")
            atomic.write_text(tmp / "report.json", json.dumps(report, indent=2) + "\n")
            atomic.write_text(tmp / "report.txt", text(report))
    except PermdealError as e:
        raise flow.keep_work(e, out) from None
    return report
