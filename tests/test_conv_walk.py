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
