"""cocotb testbench: the SmartDeal engine (``hdl.smartdeal_engine``) against the golden model, output
by output, and against its cycle model (``golden.smartdeal_engine_cycles``), vector by vector.

Run it through :func:`permdeal.verif.runner.run` with ``config = {"layer": str (the last layer's
name, for the messages), "in_bits", "out_bits", "inputs": [[code, ...], ...], "expected": [[code,
...], ...], "vector_cycles": [int, ...] (the model's count of every vector), "cycles" (the largest:
the drivers' time limits), "idle", "backpressure"}``
(:func:`bench_config`). The engine's count depends on the input (zero-activation skipping), so
every vector has its own. With a batch (``batch`` vectors in flight) a "vector" of the bench is a
batch's interleaved stream (:func:`interleave`): the engine takes and gives a batch as one
packet, ``last`` on its final output.

``test_streams`` sends every vector back to back with random idle on the input and random
back-pressure on the output (``verif/tb_smartdeal_layer.py``'s drivers); every output is compared
in order and ``last`` must be on each vector's final output. ``test_cycles`` sends the vectors one
at a time with no idle and the output always ready: vector ``v`` must take exactly
``vector_cycles[v]``. ``test_reset`` resets the engine halfway through loading, then halfway
through computing, and then runs ``test_cycles``' check. The seed (``cocotb.RANDOM_SEED``) is
logged by the TB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from permdeal.verif.runner import tb_config, tb_report
from permdeal.verif.streams import reset
from permdeal.verif.tb_smartdeal_layer import TB as LayerTB
from permdeal.verif.tb_smartdeal_layer import check_streams

if TYPE_CHECKING:
    from permdeal.golden.smartdeal_model import SmartDealModel


def interleave(a: npt.ArrayLike, batch: int) -> np.ndarray:
    """Vectors ``a`` (vectors x k, whole batches) as the engine's streams carry them: per batch of
    ``batch`` vectors, element ``j`` of each, then element ``j + 1`` (docs/design.md 11.1); one
    row per batch."""
    a = np.asarray(a, dtype=np.int64)
    return a.reshape(-1, batch, a.shape[1]).transpose(0, 2, 1).reshape(-1, batch * a.shape[1])


def deinterleave(a: npt.ArrayLike, batch: int) -> np.ndarray:
    """The inverse of :func:`interleave`: batches' streams back to vectors x k."""
    a = np.asarray(a, dtype=np.int64)
    return a.reshape(a.shape[0], -1, batch).transpose(0, 2, 1).reshape(-1, a.shape[1] // batch)


def bench_config(model: SmartDealModel, x: npt.ArrayLike, lanes: int, batch: int = 1,
                 **extra: Any) -> dict:
    """The bench's ``config`` for ``model`` on ``lanes`` lanes, ``batch`` vectors at a time, and
    input codes ``x`` (whole batches): per batch its interleaved inputs, the golden outputs in the
    same order and the cycle model's count. ``extra`` adds ``idle`` or ``backpressure``."""
    from permdeal.golden.smartdeal_engine_cycles import model_cycles
    x = np.asarray(x, dtype=np.int64)
    cycles = [c.total for c in model_cycles(model, x, lanes, batch=batch)]
    return {"layer": model.layers[-1].name, "in_bits": model.input_format.bits,
            "out_bits": model.output_format.bits, "inputs": interleave(x, batch).tolist(),
            "expected": interleave(model.forward(x), batch).tolist(),
            "vector_cycles": cycles, "cycles": max(cycles), **extra}


class TB(LayerTB):
    """The layer bench's TB with one cycle count per vector."""

    def __init__(self, dut, idle, backpressure):
        self.vector_cycles = [int(c) for c in tb_config()["vector_cycles"]]
        super().__init__(dut, idle, backpressure)

    def model_cycles(self, v: int) -> int:
        """The cycle model's count of vector ``v`` (the engine's depends on the input)."""
        return self.vector_cycles[v]


@cocotb.test()
async def test_streams(dut: Any) -> None:
    """Every vector with random idle on the input and back-pressure on the output."""
    await check_streams(dut, TB)


async def count_fetches(dut: Any, box: list[int | None]) -> None:
    """Count the cycles in which lane 0 reads its ROMs for a new column (its ``fetch``): the
    weights it rebuilds (docs/design.md 11.1: one per column with an entry, reused across the
    batch). A netlist without that signal (a gate-level run) leaves the count ``None``."""
    try:
        fetch = dut.lane0.fetch
    except AttributeError:
        box[0] = None
        return
    while True:
        await RisingEdge(dut.clk)
        box[0] += int(fetch.value)


@cocotb.test()
async def test_cycles(dut: Any) -> None:
    """One vector (or batch) at a time, no idle, no back-pressure: the cycle model's count,
    exactly; and lane 0's rebuilt weights counted."""
    tb = TB(dut, 0.0, 0.0)
    fetches: list[int | None] = [0]
    counter = cocotb.start_soon(count_fetches(dut, fetches))
    measured = await tb.run_cycles()
    counter.cancel()
    tb_report("test_cycles", checked=tb.checked, outputs=sum(map(len, tb.expected)),
              mismatches=len(tb.errors), errors=tb.errors[:10], vectors=len(tb.inputs),
              observed=tb.observed, rtl_cycles=measured, model_cycles=tb.vector_cycles,
              lane0_fetches=fetches[0], seed=cocotb.RANDOM_SEED)
    assert not tb.errors, f"{len(tb.errors)} errors; the first: {tb.errors[0]}"
    assert tb.checked == sum(map(len, tb.expected)) > 0, "not every output was checked"
    assert measured == tb.vector_cycles, (measured, tb.vector_cycles)


@cocotb.test()
async def test_reset(dut: Any) -> None:
    """A reset while loading and one while computing abandon the inference and leave nothing
    behind: afterwards every vector gives its outputs and exactly its cycles."""
    tb = TB(dut, 0.0, 0.0)
    await reset(dut)
    x = tb.inputs[0]
    limit = 4 * tb.cycles + 400
    await tb.send(x[:max(1, len(x) // 2)], limit)            # half an inference loaded
    await reset(dut)
    await tb.send(x, limit)                                  # loaded, then computing ...
    await ClockCycles(dut.clk, max(1, tb.vector_cycles[0] // 2))
    measured = await tb.run_cycles()                         # ... reset (its first step)
    tb_report("test_reset", checked=tb.checked, outputs=sum(map(len, tb.expected)),
              mismatches=len(tb.errors), errors=tb.errors[:10], rtl_cycles=measured,
              model_cycles=tb.vector_cycles)
    assert not tb.errors, f"{len(tb.errors)} errors; the first: {tb.errors[0]}"
    assert tb.checked == sum(map(len, tb.expected)) > 0, "not every output was checked"
    assert measured == tb.vector_cycles, (measured, tb.vector_cycles)
