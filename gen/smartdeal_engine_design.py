# amaranth: UnusedElaboratable=no
"""A generated SmartDeal engine design folder: the engine's Verilog and a manifest.

Layout (as ``gen.design``'s and ``gen.smartdeal_design``'s)::

    OUT/manifest.json     kind "permdeal-smartdeal-engine-design": the configuration (lanes, the
                          compression settings), the ports, the layers (the SmartDeal headers and
                          formats), the cycle model's terms and every tile's runs of live chunks
                          (``golden.smartdeal_engine_cycles.tile_runs``), the Verilog with its
                          sha256, and the fingerprint
    OUT/rtl/<name>.v      the engine (top module <name>, ``hdl.smartdeal_engine``), its codes
                          baked into its memories' initial values (no ROM images to load)
    OUT/rom/              the model's ROM images (``golden.smartdeal_model.write_rom``): not read
                          by the Verilog; the model that synthesis and power rebuild it from

The engine's cycles depend on the input (docs/design.md 11.1), so the manifest gives the rule's
terms, not a count. Not yet reached from ``permdeal gen`` (the SmartDeal method generates the
layer-unit chain, ``gen.smartdeal_design``).
"""

import json
from collections.abc import Iterable
from pathlib import Path

from permdeal import __version__, atomic
from permdeal.golden import smartdeal_engine_cycles as ec
from permdeal.golden import smartdeal_model as sdm
from permdeal.hdl.smartdeal_engine import SmartDealEngine

from .design import ROM_DIR, RTL_DIR, source_list, stamp
from .verilog import emit

__all__ = ["DEFAULT_NAME", "DESIGN_KIND", "write_engine_design"]

DESIGN_KIND = "permdeal-smartdeal-engine-design"
DESIGN_FORMAT_VERSION = 1
#: The default top module name.
DEFAULT_NAME = "smartdeal_engine"


def write_engine_design(out: str | Path, model: sdm.SmartDealModel, lanes: int, *,
                        name: str = DEFAULT_NAME, inputs: Iterable[str | Path] = ()) -> dict:
    """Generate the design folder ``out`` (atomically) of the SmartDeal engine for ``model`` on
    ``lanes`` MAC lanes. Returns the manifest dict."""
    engine = SmartDealEngine(model.layers, lanes, name=name)
    with atomic.output_dir(out, inputs=inputs) as tmp:
        rtl = tmp / RTL_DIR
        rtl.mkdir()
        emit(engine, engine.name, rtl / f"{engine.name}.v")
        (tmp / ROM_DIR).mkdir()
        sdm.write_rom(tmp / ROM_DIR, model)
        man = {
            "kind": DESIGN_KIND, "format_version": DESIGN_FORMAT_VERSION,
            "generator": f"permdeal {__version__}", "method": sdm.METHOD,
            "config": {"lanes": engine.lanes, "name": engine.name,
                       "compression": model.config},
            "top": engine.name,
            "ports": {"in_bits": engine.in_bits, "out_bits": engine.out_bits,
                      "n_inputs": engine.n_inputs, "n_outputs": engine.n_outputs},
            "layers": [{"name": l.name, "in": l.shape[1], "out": l.shape[0], "relu": l.relu,
                        "formats": l.fmts.to_json(), "smartdeal": l.header,
                        "tile_runs": [[list(r) for r in runs]
                                      for runs in ec.tile_runs(l, engine.lanes)]}
                       for l in model.layers],
            "cycles": {"rule": "docs/design.md 11.1", "issue_to_acc": engine.issue_to_acc,
                       "layer_overhead": engine.layer_overhead},
            "rom_dir": ROM_DIR,
            "sources": source_list(rtl),
        }
        man = stamp(man)
        atomic.write_text(tmp / atomic.MANIFEST_NAME, json.dumps(man, indent=2) + "\n")
    return man
