# amaranth: UnusedElaboratable=no
"""The cycle model's latencies are the RTL's: a change on either side must show here."""

from permdeal.golden import cycles
from permdeal.golden.formats import Fixed, LayerFormats
from permdeal.hdl import lane
from permdeal.hdl.act_banks import ActBanks
from permdeal.hdl.issuer import Issuer
from permdeal.hdl.nz_detect import NonZeroDetector
from permdeal.hdl.output_reader import OutputReader
from permdeal.hdl.window_reader import WindowReader
from permdeal.hdl.writeback import Writeback


def test_latencies_match_the_rtl_blocks():
    fmts = LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), 4)
    for nl, want in ((1, 3), (16, 3), (17, 4), (256, 4), (257, 5), (4096, 5)):
        cfg = cycles.EngineConfig(nl, 1)
        assert ActBanks(nl, 1, 16, 2).latency == cfg.bank_read_latency == want, nl
        assert cfg.read_latency == WindowReader(nl, 1, 16, 1, 4, 1).latency, nl
        # the reader's buffer: RL + 1 windows, the reads in flight counted (section 9, step 1)
        assert cfg.read_buffer == WindowReader(nl, 1, 16, 1, 4, 1).buffer == cfg.read_latency + 1
        assert cfg.output_latency == OutputReader(nl, 1, 16, 2, 16, 1, 1).latency, nl
    assert cycles.DETECT_LATENCY == NonZeroDetector(1, 16, 4).latency
    # The model's ops of a pair accepted in P come in P + ISSUE_LATENCY .. P + ISSUE_LATENCY + B - 1.
    assert cycles.ISSUE_LATENCY == Issuer(1, 4, 16, 4, 4, 4, 1).latency
    assert cycles.LANE_LATENCY == lane.LATENCY
    # The last drain request: its read (and clear), the write-back unit, the bank write; the next
    # layer's first bank read comes in the cycle after the write.
    assert cycles.WRITEBACK_LATENCY == lane.DRAIN_LATENCY + Writeback(fmts, relu=True).latency


def test_lane_group_latencies_match_the_rtl_blocks():
    """With K groups the banks' ports read G = NL/K banks each, and the groups' adder tree adds
    log2 K stages to the write-back."""
    from permdeal.hdl.group_sum import GroupSum
    from permdeal.hdl.pe_writeback import PEWriteback
    fmts = LayerFormats(Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), Fixed(16, 8), 4)
    acc = PEWriteback(1, [(fmts, True)], 1, external=True).acc_layout
    for n_pe, k in ((8, 1), (8, 2), (16, 4), (32, 32)):
        cfg = cycles.EngineConfig(n_pe, 4, groups=k)
        banks = ActBanks(n_pe * 4, 1, 16, 2, groups=k)
        assert banks.latency == cfg.bank_read_latency, (n_pe, k)
        assert cfg.output_latency == OutputReader(n_pe * 4, 1, 16, 2, 16, 1, 1, groups=k).latency
        assert cfg.writeback_latency == cycles.WRITEBACK_LATENCY + GroupSum(n_pe * 4, k,
                                                                            acc).latency
