# amaranth: UnusedElaboratable=no
"""The Python API: the ``permdeal`` commands as functions, for notebooks and scripts.

The command line (``permdeal.cli``) is a thin layer over these functions, so the two give the
same results::

    import permdeal.api as pd
    mlp = pd.train_digits(hidden=(32,), p=4, epochs=10)       # permdeal train
    model = pd.compress(mlp, p=4, calibration=pd.digits()[0])  # permdeal compress
    design = pd.generate(model, pes=2, lanes=2)                # permdeal gen
    result = design.predict(pd.digits()[2][:10], sim="icarus") # permdeal sim
    result.predictions, result.cycles, result.golden_equal
    pd.cycles(model, pd.digits()[2], pes=2, lanes=2).mean      # permdeal cycles
    pd.synthesize(design, targets=("generic", "asic"))         # permdeal synth
    pd.energy(design, pd.digits()[2][:50])["pj_per_mac"]      # permdeal power
    pd.import_onnx("net.onnx", "net.npz").layers              # permdeal import

Models are the golden model's own objects: a float :class:`~permdeal.golden.train.MLP`, a
compressed :class:`~permdeal.golden.model.QuantModel` (permuted-diagonal) or
:class:`~permdeal.golden.smartdeal_model.SmartDealModel`. Wherever a function takes one, a folder
path of ``permdeal compress`` works too; where it takes inputs, a ``(batch, n)`` or ``(n,)``
array of floats (quantized to the model's input format), of integer codes of that format, or the
path of a ``.npy`` file holding either. Outputs go to the folder given as ``output``, or to a
fresh temporary folder when it is left out. Bad input raises
:class:`~permdeal.errors.PermdealError` with a message naming the parameter.

The modules: :mod:`.models` (data, training, compression, folders, ROM images, accuracy),
:mod:`.settings` (a design's typed settings), :mod:`.designs` (cycles, generation, simulation,
synthesis of a design), :mod:`.verify`, :mod:`.synthesis`, :mod:`.bench`,
:mod:`.engine_bench`, :mod:`.bench_smartdeal`, :mod:`.compare`, :mod:`.power` and
:mod:`.demo`. The
compression methods come from the registry :mod:`permdeal.methods`.
"""

from permdeal import methods
from permdeal.errors import PermdealError

from .designs import Cycles, Design, Result, cycles, generate, simulate, synthesize
from .models import compress, digits, evaluate, import_onnx, load, train_digits
from .power import energy

__all__ = ["METHODS", "Cycles", "Design", "PermdealError", "Result", "compress", "cycles",
           "digits", "energy", "evaluate", "generate", "import_onnx", "load", "simulate",
           "synthesize", "train_digits"]


def __getattr__(name):
    if name == "METHODS":  # the methods compress takes, as registered now
        return tuple(methods.names(compressing=True))
    raise AttributeError(f"module 'permdeal.api' has no attribute {name!r}")
