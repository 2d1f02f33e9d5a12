# amaranth: UnusedElaboratable=no
"""The cycle model's latencies are the RTL's: a change on either side must show here."""

from permdeal.golden import cycles
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.hdl import lane
from permdeal.hdl.issuer import Issuer
from permdeal.hdl.nz_detect import NonZeroDetector
from permdeal.hdl.window_reader import WindowReader
from permdeal.hdl.writeback import Writeback


def test_latencies_match_the_rtl_blocks():
    fmts = LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), 4)
    assert cycles.READ_LATENCY == WindowReader(1, 1, 16, 1, 4, 1).latency
    assert cycles.DETECT_LATENCY == NonZeroDetector(1, 16, 4).latency
    # The model's ops of a pair accepted in P come in P + ISSUE_LATENCY .. P + ISSUE_LATENCY + B - 1.
    assert cycles.ISSUE_LATENCY == Issuer(1, 4, 16, 4, 4, 4, 1).latency
    assert cycles.LANE_LATENCY == lane.LATENCY
    # The last drain request: its read (and clear), the write-back unit, the bank write; the next
    # layer's first bank read comes in the cycle after the write.
    assert cycles.WRITEBACK_LATENCY == lane.DRAIN_LATENCY + Writeback(fmts, relu=True).latency
