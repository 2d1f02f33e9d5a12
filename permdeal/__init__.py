"""permdeal: RTL generator and verification flow for compressed-DNN accelerators.

The distribution maps the project's top-level folders onto subpackages:
``permdeal.golden`` (numpy golden model), ``permdeal.hdl`` (Amaranth generators),
``permdeal.gen`` (front end and CLI), ``permdeal.verif`` (cocotb benches and runner) and
``permdeal.synth`` (synthesis flows).
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("permdeal")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .errors import PermdealError

__all__ = ["PermdealError", "__version__"]
