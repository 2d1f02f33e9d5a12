# amaranth: UnusedElaboratable=no
"""The lane groups' adder tree (hdl/group_sum.py) in Amaranth's simulator: every output the sum of
its lanes across the groups, modulo the width, after log2 K cycles."""

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from permdeal.errors import PermdealError
from permdeal.hdl.group_sum import GroupSum

ACC = data.StructLayout({"valid": 1, "value": signed(12)})


def wrap(v, bits=12):
    return (v + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))


@pytest.mark.parametrize("lanes, groups", [(8, 1), (8, 2), (8, 8), (12, 4)])
def test_group_sum_adds_lane_h_of_every_group(lanes, groups):
    seed = 40 + lanes + groups
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-2048, 2048, size=(6, lanes))
    dut = GroupSum(lanes, groups, ACC)
    g = lanes // groups
    # the sum of lane h of every group, computed here from the lanes' values
    want = [[wrap(int(v.reshape(groups, g)[:, h].sum())) for h in range(g)] for v in vectors]
    seen = []

    async def bench(ctx):
        for step in range(len(vectors) + dut.latency):
            if step < len(vectors):
                for lane in range(lanes):
                    ctx.set(dut.i[lane].value, int(vectors[step][lane]))
                    ctx.set(dut.i[lane].valid, 1)
            if step >= dut.latency:
                seen.append([ctx.get(dut.o[h].value) for h in range(g)])
                assert all(ctx.get(dut.o[h].valid) for h in range(g))
            if dut.latency:
                await ctx.tick()
            else:
                await ctx.delay(1e-6)    # (one group: no register, no clock domain)

    sim = Simulator(dut)
    if dut.latency:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert dut.latency == groups.bit_length() - 1
    assert seen == want, f"seed {seed}"


def test_group_sum_parameters_are_checked():
    for lanes, groups in ((8, 3), (6, 4), (0, 1)):
        with pytest.raises(PermdealError, match="group sum"):
            GroupSum(lanes, groups, ACC)


@pytest.mark.parametrize("lanes, groups", [(8, 2), (8, 4), (12, 4)])
def test_masked_group_sum_adds_only_valid_lanes(lanes, groups):
    """``masked`` (per-layer group counts, docs/design.md 4.2): hardware groups take turns, so a
    lane not drained counts 0 whatever its value, and ``valid`` is any lane's."""
    seed = 60 + lanes + groups
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-2048, 2048, size=(8, lanes))
    valids = rng.integers(0, 2, size=(8, groups)).repeat(lanes // groups, axis=1)
    dut = GroupSum(lanes, groups, ACC, masked=True)
    g = lanes // groups
    want = [([wrap(int((v * ok).reshape(groups, g)[:, h].sum())) for h in range(g)],
             [bool(ok.reshape(groups, g)[:, h].any()) for h in range(g)])
            for v, ok in zip(vectors, valids)]
    seen = []

    async def bench(ctx):
        for step in range(len(vectors) + dut.latency):
            if step < len(vectors):
                for lane in range(lanes):
                    ctx.set(dut.i[lane].value, int(vectors[step][lane]))
                    ctx.set(dut.i[lane].valid, int(valids[step][lane]))
            if step >= dut.latency:
                seen.append(([ctx.get(dut.o[h].value) for h in range(g)],
                             [bool(ctx.get(dut.o[h].valid)) for h in range(g)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == want, f"seed {seed}"
