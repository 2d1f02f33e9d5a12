"""permdeal: RTL generator and verification flow for compressed-DNN accelerators.

The distribution maps the project's top-level folders onto subpackages:
``permdeal.golden`` (numpy golden model), ``permdeal.hdl`` (Amaranth generators),
``permdeal.gen`` (front end and CLI), ``permdeal.verif`` (cocotb benches and runner) and
``permdeal.synth`` (synthesis flows). The Python API (``permdeal.api``: ``compress``,
``generate``, ``simulate``, ...) is importable from here too; it loads on first use.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("permdeal")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .errors import PermdealError

#: The names of ``permdeal.api`` available as ``permdeal.NAME`` (imported on first use, so that
#: ``import permdeal`` stays light).
API_NAMES = ("Cycles", "Design", "Result", "compress", "cycles", "digits", "evaluate", "generate",
             "load", "simulate", "synthesize", "train_digits")

__all__ = ["Cycles", "Design", "PermdealError", "Result", "__version__", "compress", "cycles",
           "digits", "evaluate", "generate", "load", "simulate", "synthesize", "train_digits"]


def __getattr__(name):
    if name in API_NAMES:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'permdeal' has no attribute {name!r}")
