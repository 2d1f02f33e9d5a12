"""The cycle model's default latencies are the RTL's: a change on either side must show here."""

from permdeal.golden.cycles import EngineConfig
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.hdl import lane
from permdeal.hdl.writeback import Writeback

#: Register stages the engine's controller puts between the detector and the lanes (the broadcast).
BROADCAST_STAGES = 1


def test_default_latencies_match_the_rtl_blocks():
    cfg = EngineConfig(1, 1)
    fmts = LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), 4)
    # Write-back: one cycle to read (and clear) an accumulator, then the write-back unit.
    assert cfg.writeback_latency == lane.DRAIN_LATENCY + Writeback(fmts, relu=True).latency
    # Pipeline: the broadcast register, then the lane until its sum can be drained.
    assert cfg.pipeline_cycles == BROADCAST_STAGES + lane.LATENCY
