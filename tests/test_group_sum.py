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


@pytest.mark.parametrize("lanes, groups, k_min", [(8, 4, 1), (8, 8, 2), (12, 4, 2), (16, 8, 1)])
def test_per_layer_group_sum_adds_each_turns_groups(lanes, groups, k_min):
    """``min_groups`` (per-layer group counts, docs/design.md 4.2): for a layer of K_l groups,
    output w (group w*K_min) holds lane h summed over groups w*K_min .. w*K_min + K_l - 1 when
    w*K_min is a multiple of K_l; every layer count K_l from K_min to K, random values."""
    seed = 60 + lanes + groups + k_min
    rng = np.random.default_rng(seed)
    g, heads = lanes // groups, groups // k_min
    for kl in (k_min << e for e in range(heads.bit_length())):
        vectors = rng.integers(-2048, 2048, size=(6, lanes))
        dut = GroupSum(lanes, groups, ACC, min_groups=k_min)
        en = sum(1 << e for e in range(dut.en_bits) if kl > k_min << e)
        want = [[wrap(int(v.reshape(groups, g)[w * k_min:w * k_min + kl, h].sum()))
                 for w in range(heads) for h in range(g)] for v in vectors]
        heads_of_layer = [w * g + h for w in range(heads) for h in range(g) if (w * k_min) % kl == 0]
        seen = _run_per_layer(dut, en, vectors, heads * g)
        assert [[row[x] for x in heads_of_layer] for row in seen] == \
            [[row[x] for x in heads_of_layer] for row in want], f"seed {seed}, K_l {kl}"


def _run_per_layer(dut, en, vectors, outputs):
    """Every output's value, cycle by cycle from the tree's latency on, for ``vectors`` given one
    a cycle with ``en`` held (every lane valid; every output's valid checked)."""
    seen = []

    async def bench(ctx):
        ctx.set(dut.en, en)
        for step in range(len(vectors) + dut.latency):
            if step < len(vectors):
                for lane, v in enumerate(vectors[step]):
                    ctx.set(dut.i[lane].value, int(v))
                    ctx.set(dut.i[lane].valid, 1)
            if step >= dut.latency:
                seen.append([ctx.get(dut.o[x].value) for x in range(outputs)])
                assert all(ctx.get(dut.o[x].valid) for x in range(outputs))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen
