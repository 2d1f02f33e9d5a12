# amaranth: UnusedElaboratable=no
"""The accumulator's two sets (docs/design.md 15): adds into one set while the other drains, in
Amaranth's simulator against a Python model, on both structures (standard cells and FPGA)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from permdeal.errors import PermdealError
from permdeal.hdl.accumulator import Accumulator
from permdeal.hdl.lane import Lane


@pytest.mark.parametrize("fpga, depths", [(False, None), (True, None), (False, (3, 2))])
def test_two_sets_add_and_drain_at_once(fpga, depths):
    """Random adds to either set, drains of the set not added in that cycle: every drained value
    is the sum of the adds to its set and address presented before the drain since the last
    drain of it, and a drain clears."""
    seed = 5
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    depth, cycles = 3, 400
    sizes = depths or (depth, depth)
    dut = Accumulator(24, 12, depth, fpga=fpga, sets=2, set_depths=depths)
    assert dut.addr_bits == 3 and dut.sets == 2
    plan = []
    for _ in range(cycles):
        add = None
        if rng.random() < 0.7:
            s = int(rng.integers(2))
            add = (s, int(rng.integers(sizes[s])), int(rng.integers(-2000, 2000)))
        drain = None
        if rng.random() < 0.4:
            s = int(rng.integers(2)) if add is None else 1 - add[0]
            drain = (s, int(rng.integers(sizes[s])))
        plan.append((add, drain))
    plan += [(None, (s, a)) for s in range(2) for a in range(sizes[s])] + [(None, None)] * 3
    sums = {(s, a): 0 for s in range(2) for a in range(sizes[s])}
    expected = []
    for add, drain in plan:
        if drain is not None:       # sees the adds presented before it
            expected.append(sums[drain])
            sums[drain] = 0
        if add is not None:
            sums[add[:2]] += add[2]
    got = []

    async def bench(ctx):
        values = [0, 0]
        for add, drain in plan:
            ctx.set(dut.add.valid, add is not None)
            ctx.set(dut.add.addr, 0 if add is None else add[1] | add[0] << 2)
            ctx.set(dut.drain.valid, drain is not None)
            ctx.set(dut.drain.addr, 0 if drain is None else drain[1] | drain[0] << 2)
            ctx.set(dut.value, values[0])   # the add of two cycles before's value
            await ctx.tick()
            if ctx.get(dut.acc.valid):
                got.append(ctx.get(dut.acc.value))
            values = [values[1], 0 if add is None else add[2]]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected


def test_sets_are_checked():
    for make, message in ((lambda: Accumulator(20, 14, 4, sets=3),
                           "accumulator sets must be 1 or 2, not 3"),
                          (lambda: Lane(4, 8, 8, 20, 8, 4, 8, external=True, acc_sets=0),
                           "lane acc_sets must be 1 or 2, not 0")):
        with pytest.raises(PermdealError) as e:
            make()
        assert str(e.value) == message
    lane = Lane(4, 8, 8, 20, 8, 4, 8, external=True, acc_sets=2)
    assert lane.acc_addr_bits == 4 and lane.accumulator.sets == 2
    acc = Accumulator(20, 10, 5, ram_module="a_ram", sets=2)
    assert [b.module for b in acc.blackboxes] == ["a_ram", "a_ram"]
    # sets of two depths: the smaller set's memory is a module of its own
    acc = Accumulator(20, 10, 5, ram_module="a_ram", sets=2, set_depths=(5, 3))
    assert [b.module for b in acc.blackboxes] == ["a_ram", "a_ram_set1"]
    assert acc.set_depths == (5, 3) and acc.addr_bits == 4
    for make, message in ((lambda: Accumulator(20, 10, 5, sets=2, set_depths=(6, 3)),
                           "accumulator set_depths must be two depths of at most 5, not (6, 3)"),
                          (lambda: Accumulator(20, 10, 5, set_depths=(5, 3)),
                           "accumulator set_depths need two sets")):
        with pytest.raises(PermdealError) as e:
            make()
        assert str(e.value) == message
