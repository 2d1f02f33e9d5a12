"""Verilog emission: one Amaranth component to one Verilog module, byte for byte reproducible.

Amaranth records the Python source location of every signal in ``src`` attributes, which would put
absolute paths (and so the checkout's location) into the text; :func:`emit` leaves them out, so the
same component configuration always gives the same Verilog.
"""

from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from permdeal.atomic import write_text
from permdeal.hdl.blackbox import leaf_modules


def emit(component: wiring.Component, name: str, path: str | Path | None = None) -> str:
    """Convert ``component`` (a ``wiring.Component``) to Verilog with top module ``name``.

    The modules of the design's :class:`~permdeal.hdl.blackbox.Blackbox` instances are emitted
    after it, once each, so the text is the whole design. Returns the text. When ``path`` is given the text is also written there atomically; a file that
    already holds exactly this text is left untouched, so that simulator builds stay up to date.
    """
    text = verilog.convert(component, name=name, emit_src=False)
    for module, inner in leaf_modules(component).items():
        text += verilog.convert(inner, name=module, emit_src=False)
    if path is not None:
        path = Path(path)
        try:
            unchanged = path.read_text(encoding="utf-8") == text
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, text)
    return text
