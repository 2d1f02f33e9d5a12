"""Sane limits on the work one command may start, and the estimates behind them.

Before a command writes files, builds a design or starts a simulation it estimates the work (ROM
image files, memory words, simulated cycles and the simulator's time) and refuses what is past a
limit, saying the estimate, the limit and the flag that lifts it (``--allow-large`` on the command
line, :func:`lifted` in Python). A simulation that is long but within the limit gets a warning
with its estimate. Part of the core: imports nothing of the project but the errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

from .errors import PermdealError

#: Lanes of one engine (PEs x lanes): the paper's design has 256; each lane writes three ROM
#: images and adds a multiplier, an accumulator set and an activation bank to the Verilog.
MAX_LANES = 1024
#: Activations the non-zero detector scans per cycle: its priority encoder grows with it.
MAX_SCAN_WIDTH = 256
#: Weights of one layer the flow draws at random (``verify`` without a model): 8 bytes each.
MAX_RANDOM_WEIGHTS = 1 << 24
#: Memory one array the flow makes from a count the user gives may take.
MAX_ARRAY_BYTES = 2 << 30
#: Estimated simulator time past which a simulation is refused, and past which it is announced.
MAX_SIM_SECONDS = 2 * 3600
WARN_SIM_SECONDS = 10 * 60
#: The flag that lifts every limit here.
FLAG = "--allow-large"

_LIFTED: contextvars.ContextVar[bool] = contextvars.ContextVar("permdeal_limits_lifted",
                                                               default=False)


@contextlib.contextmanager
def lifted(on: bool = True) -> Iterator[None]:
    """Within the block, the limits are lifted (``on``): what ``--allow-large`` does."""
    token = _LIFTED.set(bool(on) or _LIFTED.get())
    try:
        yield
    finally:
        _LIFTED.reset(token)


def _refuse(what: str, limit: str) -> None:
    if not _LIFTED.get():
        raise PermdealError(f"{what}, past the limit of {limit}; pass {FLAG} to lift it")


def check_engine(n_pe: int, lanes: int, scan_width: int) -> None:
    """An engine of ``n_pe`` x ``lanes`` lanes scanning ``scan_width`` activations a cycle."""
    total = n_pe * lanes
    if total > MAX_LANES:
        _refuse(f"--pes {n_pe} x --lanes {lanes} = {total} lanes (an engine of {3 * total} ROM "
                f"images and {total} multipliers, accumulator sets and banks)",
                f"{MAX_LANES} lanes")
    if scan_width > MAX_SCAN_WIDTH:
        _refuse(f"--scan-width {scan_width} makes a {scan_width}-input priority encoder",
                f"{MAX_SCAN_WIDTH}")


def check_random_weights(m: int, n: int, what: str) -> None:
    """A random ``m x n`` layer the flow would draw (``what`` names it)."""
    if m * n > MAX_RANDOM_WEIGHTS:
        _refuse(f"{what}: {m} x {n} = {m * n} random weights ({8 * m * n / 2**20:.0f} MiB)",
                f"{MAX_RANDOM_WEIGHTS} weights")


def check_array(rows: int, cols: int, what: str, itemsize: int = 8) -> None:
    """An array of ``rows x cols`` numbers the flow would make (``what`` names the flags)."""
    nbytes = rows * cols * itemsize
    if nbytes > MAX_ARRAY_BYTES:
        _refuse(f"{what}: {rows} x {cols} values ({nbytes / 2**30:.1f} GiB)",
                f"{MAX_ARRAY_BYTES >> 30} GiB")


#: Simulated clock cycles per second of wall time, for an engine of ``L`` lanes in all: fitted
#: to the README's bench-engine figures (1 x 8, 8 x 8 and 32 x 8 lanes on the project's machine).
SIM_RATE = {"icarus": lambda lanes: 6000.0 / max(1, lanes),
            "verilator": lambda lanes: 38000.0 / math.sqrt(max(1, lanes))}


def sim_seconds(cycles: float, sim: str, lanes: int) -> float:
    """Estimated wall seconds to simulate ``cycles`` clock cycles of an engine of ``lanes``."""
    rate = SIM_RATE.get(sim, SIM_RATE["icarus"])(lanes)
    return cycles / rate


def check_simulation(cycles: float, sim: str, lanes: int, what: str) -> str | None:
    """Refuse a simulation estimated past :data:`MAX_SIM_SECONDS`; returns a warning (or None)
    for one past :data:`WARN_SIM_SECONDS`. ``what`` names it."""
    seconds = sim_seconds(cycles, sim, lanes)
    estimate = (f"{what}: about {cycles:,.0f} simulated cycles, an estimated "
                f"{_duration(seconds)} on {sim}")
    if seconds > MAX_SIM_SECONDS:
        _refuse(estimate, _duration(MAX_SIM_SECONDS))
    if seconds > WARN_SIM_SECONDS:
        return f"{estimate} (Verilator is faster on large engines)" if sim == "icarus" \
            else estimate
    return None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
