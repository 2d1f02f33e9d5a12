"""The engine's conv walk (docs/design.md 15): the windows of every output pixel, read from a
feature map laid out in banks by the section's rule (written here, not taken from the code),
give exactly the pixel's patch in the patch order (``golden.conv.im2col``)."""

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.conv import ConvShape, im2col, patch_channels
from permdeal.golden.conv_walk import ConvWalk

# (C, H, W), kernel, stride, padding, p (the layer's), q (the producer block), banks, D, pool
CASES = [
    ((1, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), 1, 1, 8, 8, None),     # the digits CNN's first
    ((8, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), 4, 1, 8, 8, (2, 2)),   # its second, pooled
    ((16, 4, 4), (4, 4), (1, 1), (0, 0, 0, 0), 4, 4, 8, 8, None),    # an FC as a whole-map conv
    ((6, 7, 5), (3, 2), (2, 1), (0, 2, 1, 0), 3, 3, 2, 2, None),     # q > D, P > NL, asymmetric
    ((5, 6, 6), (2, 3), (1, 2), (1, 0, 0, 1), 4, 8, 4, 8, (2, 1)),   # channel padding, q = C'
    ((3, 5, 9), (1, 1), (1, 3), (0, 0, 0, 0), 2, 2, 1, 3, None),     # 1x1, one bank
]


def bank_image(fmap, words, q, banks, d):
    """Banks as ``{(bank, row): D words}`` by docs/design.md 15's rule: pixel ``y*W + x``'s
    block ``J`` in bank ``J mod NL``, rows from ``(pixel*ceil(P/NL) + J div NL) * S``."""
    c, h, w = fmap.shape
    blocks, s_count = words // q, -(-q // d)
    nb = -(-blocks // banks)
    image = {}
    for y in range(h):
        for x in range(w):
            pix = np.zeros(words, np.int64)
            pix[:c] = fmap[:, y, x]
            for blk in range(blocks):
                for s in range(s_count):
                    row = ((y * w + x) * nb + blk // banks) * s_count + s
                    word = np.zeros(d, np.int64)
                    lo = blk * q + s * d
                    size = min(d, q - s * d)
                    word[:size] = pix[lo:lo + size]
                    assert (blk % banks, row) not in image
                    image[blk % banks, row] = word
    return image


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_windows_read_the_patch(case):
    chw, kernel, stride, padding, p, q, banks, d, pool = case
    rng = np.random.default_rng(7)
    fmap = rng.integers(-3, 4, chw)
    shape = ConvShape(chw, 4, kernel, stride, padding)
    words = patch_channels(chw[0], p)
    walk = ConvWalk(shape, words, q, pool)
    image = bank_image(fmap, words, q, banks, d)
    patches = im2col(shape, fmap.reshape(1, -1), p)[0]          # (OH*OW, KH*KW*C')
    ow = shape.out_hw[1]
    for i, j in walk.pixels():
        got = np.zeros(patches.shape[1], np.int64)
        seen = np.zeros(patches.shape[1], bool)
        for bank, row, base, mask in walk.windows(i, j, banks, d):
            assert 0 <= bank < banks
            for k in range(d):
                if mask >> k & 1:
                    assert not seen[base + k]
                    seen[base + k] = True
                    got[base + k] = image[bank, row][k]
        np.testing.assert_array_equal(got, patches[i * ow + j], err_msg=f"pixel {(i, j)}")
        z = walk.window_nnz(fmap, i, j, d)
        expect = [sum(1 for k in range(d) if mask >> k & 1 and image[b, r][k] != 0)
                  if mask else 0 for b, r, _, mask in walk.windows(i, j, banks, d)]
        np.testing.assert_array_equal(z, expect)


def test_pixel_order_with_pooling():
    shape = ConvShape((2, 7, 7), 2, (3, 3), (1, 1), (1, 1, 1, 1))   # 7x7 out, 2x2 pool -> 3x3
    walk = ConvWalk(shape, 2, 2, (2, 2))
    expect = []
    for a in range(3):
        for b in range(3):
            for di in range(2):
                for dj in range(2):
                    expect.append((2 * a + di, 2 * b + dj))
    assert walk.pixels() == expect
    assert ConvWalk(shape, 2, 2).pixels() == [(i, j) for i in range(7) for j in range(7)]


def test_padding_position_is_one_empty_window():
    shape = ConvShape((8, 4, 4), 8, (3, 3), (1, 1), (1, 1, 1, 1))
    walk = ConvWalk(shape, 8, 4)
    ws = walk.windows(0, 0, 2, 8)          # corner: positions (0,*) and (*,0) in the padding
    assert [m for _, _, _, m in ws[:3]] == [0, 0, 0]
    assert [b for _, _, b, _ in ws[:3]] == [0, 8, 16]
    assert len(ws) == 5 + 4 * 2            # 5 padding positions, 4 inside of 2 blocks each


def test_walk_refuses_a_pixel_of_partial_blocks():
    shape = ConvShape((6, 4, 4), 8, (3, 3))
    with pytest.raises(PermdealError, match="no whole number of blocks of 4"):
        ConvWalk(shape, 6, 4)


# -- the cycle count of a conv layer ----------------------------------------------------------

def test_conv_layer_is_one_fc_pass_per_pixel():
    """With whole windows (``q = C' = D``) and no padding, each pixel's windows are those of an FC
    layer whose input is the pixel's patch (``im2col``) in blocks of ``D``: pixel ``k``'s pass
    gives ``F_k`` and ``D0_k`` (``pass_times``, ``D0`` = ``layer_cycles``' issue); the next pass
    starts in ``S_{k+1} = max(S_k + F_k, DS_{k-1} + B*p)`` and this one drains from ``DS_k =
    max(S_k + D0_k, S_{k+1})`` (docs/design.md 15); the layer ends ``B*p + 4`` after the last
    drain's start."""
    from permdeal.golden.conv_walk import conv_layer_cycles
    from permdeal.golden.cycles import EngineConfig, layer_cycles, pass_times, window_nnz
    rng = np.random.default_rng(3)
    print("seed 3")
    shape = ConvShape((8, 5, 4), 12, (2, 3), (1, 1))
    fmap = rng.integers(0, 3, (8, 5, 4)) * (rng.random((8, 5, 4)) < 0.4)
    cfg = EngineConfig(2, 2)
    walk = ConvWalk(shape, 8, 8)
    got = conv_layer_cycles(fmap, walk, 3, 4, cfg)
    patches = im2col(shape, fmap.reshape(1, -1), 4)[0]
    passes = [layer_cycles(patch, 3, 4, cfg, 8) for patch in patches]
    times = [pass_times(window_nnz(patch, 8, 8), 1, cfg) for patch in patches]
    assert [d0 for _, d0 in times] == [c.issue for c in passes]
    bp = 1 * 4     # B = ceil(3 / 4) = 1, p = 4
    start, ds = 0, None
    for free, d0 in times:
        nxt = start + free if ds is None else max(start + free, ds + bp)
        ds, start = max(start + d0, nxt), nxt
    assert got.issue == ds
    assert got.writeback == passes[0].writeback == bp + 4
    assert got.total == ds + bp + 4
    # overlapped: less than the passes one after the other, by at least every drain but the last
    assert got.total <= sum(c.total for c in passes) - (len(passes) - 1) * (bp + 4)
    assert got.nnz == int((patches != 0).sum())


def test_conv_issue_done_before_the_ops_settle():
    """One non-zero a pixel, B = 1 (1 PE x 1 lane: RL = 4, L = 6): a pass's pair in 5, its op in
    8; the next pass may start in 8 + 2 = 10, while the op reaches the accumulators; the drain
    starts in 8 + 6 = 14 (one request, B*p = 1); three pixels: S = 0, 10, 20; DS = 14, 24, 34;
    the layer ends 34 + 1 + 4 = 39 (one after the other, drains hidden or not: 3 * 14 + 5 = 47
    with the drain hidden behind the next pass, 3 * 19 = 57 without)."""
    from permdeal.golden.conv_walk import conv_layer_cycles
    from permdeal.golden.cycles import EngineConfig, pass_times
    shape = ConvShape((8, 1, 3), 1, (1, 1))     # 3 pixels of one window each
    fmap = np.zeros((8, 1, 3), np.int64)
    fmap[0] = 1
    cfg = EngineConfig(1, 1)
    assert pass_times(np.array([1]), 1, cfg) == (10, 14)
    got = conv_layer_cycles(fmap, ConvWalk(shape, 8, 8), 1, 1, cfg)
    assert (got.issue, got.total) == (34, 39)


def test_conv_drain_waits_for_the_drain_before():
    """A drain longer than the next pass's issue: the next pass waits for it (it takes that
    drain's set), the drains go back to back, ``B*p`` apart."""
    from permdeal.golden.conv_walk import conv_layer_cycles
    from permdeal.golden.cycles import EngineConfig, pass_times
    shape = ConvShape((8, 1, 3), 8, (1, 1))     # 3 pixels of one window each
    fmap = np.zeros((8, 1, 3), np.int64)
    cfg = EngineConfig(1, 1)
    walk = ConvWalk(shape, 8, 8)
    got = conv_layer_cycles(fmap, walk, 8, 4, cfg)   # B = 8, B*p = 32
    # an empty window: W + RL = 1 + 4, the issue path done then too
    assert pass_times(np.zeros(1, np.int64), 8, cfg) == (5, 5)
    # S = 0, 5, 37; DS = 5, 37, 69 (S_2 waits for drain 0's 32 requests, 5 .. 36)
    assert got.issue == 69 and got.total == 69 + 32 + 4


def test_engine_walks_refuse_what_the_engine_does_not_run():
    from permdeal.golden.conv import Pool
    from permdeal.golden.conv_model import compress_network
    from permdeal.golden.compress import QuantSpec
    from permdeal.golden.conv_walk import engine_walks
    from permdeal.golden.float_model import FloatLayer
    r = np.random.default_rng(5)
    c1 = ConvShape((1, 6, 6), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    c2 = ConvShape((4, 6, 6), 6, (3, 3))

    def net(pool=None, p=(1, 2, 2), fc_in=96, last_conv=False):
        layers = [FloatLayer("c1", r.normal(0, 0.5, c1.weight_shape), np.zeros(4), c1, pool),
                  FloatLayer("c2", r.normal(0, 0.3, c2.weight_shape), np.zeros(6), c2)]
        if not last_conv:
            layers.append(FloatLayer("fc", r.normal(0, 0.3, (5, fc_in)), np.zeros(5)))
        return compress_network(layers, "permdiag", p=list(p[:len(layers)]),
                                spec=QuantSpec(act=12, weight=10, bias=12),
                                calibration=r.normal(0, 1, (8, 36)))

    walks = engine_walks(net())
    assert [w.block for w in walks] == [1, 1, 2] and walks[2].shape.kernel == (4, 4)
    with pytest.raises(PermdealError, match="layer c2: its input pixels hold 4 words .* "
                                            "patch 8 channels"):
        engine_walks(net(p=(1, 8, 2)))
    with pytest.raises(PermdealError, match="layer fc: the engine walks its input as the 6x4x4 "
                                            "map of 8 words .* need 6 words a pixel"):
        engine_walks(net(p=(1, 4, 2)))
    assert engine_walks(net(p=(1, 2, 8)))[2].words == 6    # any p for the FC layer
    with pytest.raises(PermdealError, match="layer c2: the engine's network ends in a fully"):
        engine_walks(net(last_conv=True))
    c1p = ConvShape((1, 6, 6), 4, (3, 3), (1, 1), (1, 1, 1, 1))
    assert c1p.out_hw == (6, 6)
    with pytest.raises(PermdealError, match="layer c1: pooling window \\[3, 3\\] with stride "
                                            "\\[1, 1\\]"):
        engine_walks(compress_network(
            [FloatLayer("c1", r.normal(0, 0.5, c1.weight_shape), np.zeros(4), c1,
                        Pool("max", (3, 3), (1, 1))),
             FloatLayer("fc", r.normal(0, 0.3, (5, 64)), np.zeros(5))],
            "permdiag", p=[1, 1], spec=QuantSpec(act=12, weight=10, bias=12),
            calibration=r.normal(0, 1, (8, 36))))


def test_engine_walks_refuse_a_map_flattened_chw():
    """A folder of an older permdeal (format 2) flattens the map into its FC layer in (C, H, W)
    order; the engine reads (H, W, C), so it is refused (a 1x1 map reads the same either way)."""
    from permdeal.golden.compress import QuantSpec
    from permdeal.golden.conv_model import ConvNet, compress_network
    from permdeal.golden.conv_walk import engine_walks
    from permdeal.golden.float_model import FloatLayer
    r = np.random.default_rng(9)
    c1 = ConvShape((2, 4, 4), 4, (3, 3))
    net = compress_network([FloatLayer("c1", r.normal(0, 0.5, c1.weight_shape), np.zeros(4), c1),
                            FloatLayer("fc", r.normal(0, 0.3, (3, 16)), np.zeros(3))],
                           "permdiag", p=[2, 2], spec=QuantSpec(act=12, weight=10, bias=12),
                           calibration=r.normal(0, 1, (8, 32)))
    assert engine_walks(net)[1].shape.kernel == (2, 2)
    old = ConvNet(net.layers, net.method, flatten="chw")
    with pytest.raises(PermdealError, match="layer fc: takes the 4x2x2 map in \\(chw\\) order"):
        engine_walks(old)
