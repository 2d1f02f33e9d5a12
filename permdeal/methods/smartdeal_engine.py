"""``permdeal power`` of a SmartDeal engine design folder (``gen.smartdeal_engine_design``):
:func:`power_subject`, which the SmartDeal method gives for that kind of folder.

The engine's memories are modules of their own (``hdl.smartdeal_memories``): the lists and
every lane's Ce and basis ROMs are black boxes whose reads (their ``r_en``) and writes are
counted from the trace and charged per access; the register files read in the cycle of their
address are logic, in OpenSTA's figure (the block ``register files``). The bench is ``permdeal
sim``'s cycle test of the engine (``verif/tb_smartdeal_engine.py``): inputs one at a time,
outputs against the golden model, cycles against ``golden.smartdeal_engine_cycles``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from permdeal.errors import PermdealError

from .base import PowerSubject

__all__ = ["power_subject"]


def power_subject(design_dir: str | Path) -> PowerSubject:
    """What ``permdeal power`` measures of the SmartDeal engine design ``design_dir``."""
    from permdeal.golden import smartdeal_engine_cycles as ec
    from permdeal.synth import power
    from permdeal.synth.smartdeal_engine import BLOCKS, EngineDesign
    from permdeal.verif.activity import Bench
    from permdeal.verif.tb_smartdeal_engine import bench_config

    design = EngineDesign(design_dir)
    model, _ = design.load_model()
    engine = design.engine(model)
    lanes, batch = design.lanes, design.batch
    rams = {module: {"kind": m["kind"], "width": m["width"], "depth": m["depth"],
                     "granularity": m["width"], "rom": m["rom"]}
            for module, m in engine.memories.items()}

    def rom_kind(instance: str) -> tuple[str, int, int]:
        raise PermdealError(f"ROM instance {instance}: the SmartDeal engine has no "
                            "permdeal_rom (its ROMs are modules of their own)")

    def bench(codes: Any) -> Bench:
        # (a batch is one bench vector: its interleaved streams, verif.tb_smartdeal_engine)
        config = bench_config(model, codes, lanes, batch)
        return Bench("permdeal.verif.tb_smartdeal_engine", "test_cycles", config,
                     np.asarray(config["expected"], dtype=np.int64), config["vector_cycles"])

    def macs(codes: Any) -> float:
        return float(np.mean([c.macs for c in ec.model_cycles(model, codes, lanes, batch=batch)])
                     / batch)

    return PowerSubject(
        design, model, design.rom_dir, rams, rom_kind, BLOCKS, bench, macs,
        {"method": "smartdeal engine", "lanes": lanes, "batch": batch,
         "layers": [f"{l.shape[0]}x{l.shape[1]} S={l.codes.S}" for l in model.layers]},
        f"SmartDeal engine, {lanes} lanes" + (f", batch {batch}" if batch > 1 else ""),
        ("the lists and every lane's Ce and basis ROMs are charged per access (their read "
         "enables: a lane's ROMs are read only for an issued input); the register files "
         "(cstart, out_mem, run_rom, bias_mem) are logic, in OpenSTA's figure",
         power.notes("")[1],
         "MACs per inference: every non-zero input issued to every real row of its tile "
         "(golden.smartdeal_engine_cycles macs)"), batch)
