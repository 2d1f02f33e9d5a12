"""``permdeal synth``: synthesize a design folder, a design generated from settings (a model of
any method with hardware, or the PermDNN engine of layer shapes), one generated block, or a sweep
of PermDNN engines over one parameter."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

from permdeal.errors import PermdealError
from permdeal.executor import Executor
from permdeal.gen.design import write_design
from permdeal.synth import block, designs, flow
from permdeal.synth import sweep as sw

from .designs import design_maker, model_folder
from .models import load, method_of
from .settings import GEN_SETTINGS, DesignSettings, flag

Progress = Callable[[str], None] | None


def synth_block(name: str, block_params: str | None, targets: list, opts: Any, output: str,
                progress: Progress = None) -> dict:
    """One generated block (``--block``) with its ``KEY=V,...`` parameters."""
    if output is None:
        raise PermdealError("-o/--output (the report folder) is required")
    params = block.parse_params(name, block_params)
    return block.run(name, params, targets, opts, output, progress=progress)


def synth_design(design: str | None, given: dict, targets: list, opts: Any, output: str | None,
                 *, config: str | None = None, progress: Progress = None) -> tuple[dict, str]:
    """A design folder (``design``) as it is, or the design of the settings ``given`` over
    ``config`` generated into ``OUT/design``: ``(report, the report folder)``."""
    flow.check_tools(targets, opts)
    inputs = [config] if config else []
    if design is not None:
        if output is None:
            raise PermdealError("-o/--output (the report folder) is required")
        return designs.run(design, targets, opts, output, inputs=inputs, progress=progress), \
            output
    st, model, make = design_maker(given, config)
    if st.model is not None:
        inputs.append(st.model)
    return designs.run(None, targets, opts, st.output, inputs=inputs, progress=progress,
                       make_design=make), st.output


def _make_point(values: dict, folder: Path, model: Any = None) -> None:
    """The design of one sweep point's settings ``values`` (and ``--model``'s loaded ``model``,
    carried by the task: a worker need not see the file) into ``folder``."""
    s = DesignSettings(**values)
    if model is not None:
        method_of(model).generate(model, folder, pes=s.pes, lanes=s.lanes,
                                  scan_width=s.scan_width, multiplier=s.multiplier,
                                  groups=s.groups, name=s.name)
    else:
        write_design(folder, s.engine, s.layers(), model=None, name=s.name)


def synth_sweep(sweep: str, given: dict, targets: list, opts: Any, *, config: str | None = None,
                executor: Executor | None = None) -> tuple[list, float, DesignSettings, str, list]:
    """``--sweep PARAM=V1,V2,...``: one PermDNN engine per value of ``pes``, ``lanes`` or ``p``
    (``sweep.csv``, ``sweep.json``, ``sweep.png``), each point a task of ``executor``:
    ``(rows, wall seconds, settings, param, values)``."""
    flow.check_tools(targets, opts)
    param, values = sw.parse_sweep(sweep)
    if given.get(param) is not None:
        raise PermdealError(f"--{param} is the swept parameter ({sweep}); leave it out")
    inputs = [config] if config else []
    folder = model_folder(given, config)
    method = None if folder is None else method_of(load(folder))
    if method is not None and not method.sweeps:
        raise PermdealError(f"--sweep varies a PermDNN engine (pes, lanes, p); a "
                            f"{method.label} --model is synthesized as one "
                            "design")
    st, _, _ = design_maker(given, config, {param: values[0]},
                            required=("pes", "lanes", "output"))
    if param == "p" and st.model is not None:
        raise PermdealError("--sweep p: the block sizes come from --model; sweep pes or lanes")
    if st.model is not None:
        inputs.append(st.model)
    point = {f.name: getattr(st, f.name) for f in dataclasses.fields(st)}
    make = functools.partial(_make_point, model=None if st.model is None else load(st.model))
    rows, wall = sw.run_sweep(param, values, point, make, targets, opts, st.output,
                              inputs=inputs, executor=executor)
    return rows, wall, st, param, values


__all__ = ["GEN_SETTINGS", "flag", "synth_block", "synth_design", "synth_sweep"]
