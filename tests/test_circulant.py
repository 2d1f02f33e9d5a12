"""Block-circulant matrices (golden/circulant.py) and their training (golden/circulant_train.py)
against loop-built references over Python numbers and a brute-force least-squares projection."""

import random
import re

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.circulant import BlockCirculant, diagonal_sums, used_mask
from permdeal.golden.circulant_train import (CirculantMLP, circulant_accuracy,
                                             circulant_digits_study, circulant_loss_and_grads,
                                             circulant_mlp, init_circulant_mlp, train_circulant)
from permdeal.golden.formats import Fixed
from permdeal.golden.permdiag import PermDiag
from permdeal.golden.train import MLP, accuracy, init_mlp, load_digits_split, loss_and_grads, train

# Corners: k = 1 (dense), a side below k, 1 x N, N x 1, non-multiples of k, last blocks that are
# mostly padding (3 x 5 with k = 4: the corner block has 3 + 1 - 1 = 3 of 4 diagonals).
CORNER_SHAPES = [
    (1, 1, 1), (1, 9, 9), (9, 1, 9), (1, 12, 4), (12, 1, 4), (3, 5, 4), (5, 3, 4), (4, 4, 4),
    (8, 8, 2), (10, 7, 4), (7, 10, 3), (10, 64, 8), (13, 29, 5), (16, 16, 16), (17, 15, 16),
    (2, 9, 8), (6, 6, 1),
]


def random_shapes(n_cases, seed0):
    out = []
    for s in range(n_cases):
        rng = random.Random(seed0 + s)
        m, n = rng.randint(1, 20), rng.randint(1, 20)
        out.append((m, n, rng.randint(1, max(m, n)), seed0 + s))
    return out


CASES = [(m, n, k, 1000 + i) for i, (m, n, k) in enumerate(CORNER_SHAPES)] + random_shapes(40, 0)
IDS = [f"{m}x{n}-k{k}-seed{s}" for m, n, k, s in CASES]


def exact(msg):
    return "^" + re.escape(msg) + "$"


def blocks(m, n, k):
    return -(-m // k), -(-n // k)


def reaches(m, n, k, I, J, d):
    """Whether first-column value d of block (I, J) lands inside the m x n matrix (by a loop)."""
    return any(I * k + r < m and J * k + s < n and (r - s) % k == d
               for r in range(k) for s in range(k))


def random_c(m, n, k, seed, integers=False):
    """Random first columns as nested lists; values wholly in the padding are 0."""
    rng = random.Random(seed)
    mb, nb = blocks(m, n, k)
    return [[[(rng.randint(-2 ** 12, 2 ** 12) if integers else rng.uniform(-2.0, 2.0))
              if reaches(m, n, k, I, J, d) else 0 for d in range(k)]
             for J in range(nb)] for I in range(mb)]


def ref_dense(m, n, k, c):
    """W[i][j] = c[I][J][(r - s) mod k] with i = I*k + r, j = J*k + s, built entry by entry."""
    return [[c[i // k][j // k][(i % k - j % k) % k] for j in range(n)] for i in range(m)]


def ref_matvec(W, x):
    return [sum(w * v for w, v in zip(row, x)) for row in W]


def basis(m, n, k):
    """The m n x (M' N' k) matrix whose column (I, J, d) is the indicator of that diagonal."""
    mb, nb = blocks(m, n, k)
    A = np.zeros((m * n, mb * nb * k))
    for i in range(m):
        for j in range(n):
            I, r, J, s = i // k, i % k, j // k, j % k
            A[i * n + j, (I * nb + J) * k + (r - s) % k] = 1.0
    return A


# -- structure -------------------------------------------------------------------------------------

def assert_circulant(D, k):
    """Inside every block, D[r+1][s+1] == D[r][s] (indices wrapped mod k), wherever both entries
    lie in the matrix: the circulant property, checked without first columns."""
    m, n = D.shape
    for i in range(m):
        for j in range(n):
            I, r, J, s = i // k, i % k, j // k, j % k
            i2, j2 = I * k + (r + 1) % k, J * k + (s + 1) % k
            if i2 < m and j2 < n:
                assert D[i2, j2] == D[i, j], (i, j)


@pytest.mark.parametrize("m,n,k,seed", CASES, ids=IDS)
def test_to_dense_matches_loop_reference_and_is_circulant(m, n, k, seed):
    c = random_c(m, n, k, seed)
    D = BlockCirculant((m, n), k, np.array(c)).to_dense()
    assert D.shape == (m, n)
    assert D.tolist() == ref_dense(m, n, k, c)
    assert_circulant(D, k)


@pytest.mark.parametrize("m,n,k,seed", CASES, ids=IDS)
def test_counts_and_used_mask(m, n, k, seed):
    bc = BlockCirculant((m, n), k, np.array(random_c(m, n, k, seed)))
    mb, nb = blocks(m, n, k)
    want = [[[reaches(m, n, k, I, J, d) for d in range(k)] for J in range(nb)] for I in range(mb)]
    assert used_mask((m, n), k).tolist() == want
    assert bc.n_weights == sum(map(sum, (map(sum, row) for row in want)))
    assert bc.n_stored == mb * nb * k
    assert bc.compression == m * n / bc.n_weights
    assert bc.storage_bits(16) == 16 * bc.n_weights
    if m % k == 0 and n % k == 0:
        assert bc.n_weights == m * n // k and bc.compression == k


def test_adjoint_identity():
    """<to_dense(c), W> == <c, diagonal_sums(W)> for random c and W (diagonal_sums is the adjoint)."""
    rng = np.random.default_rng(11)
    for m, n, k in [(10, 7, 4), (12, 12, 3), (5, 13, 8), (9, 9, 1)]:
        c = rng.normal(size=blocks(m, n, k) + (k,)) * used_mask((m, n), k)
        W = rng.normal(size=(m, n))
        lhs = float(np.sum(BlockCirculant((m, n), k, c).to_dense() * W))
        assert lhs == pytest.approx(float(np.sum(c * diagonal_sums(W, k))), rel=1e-12, abs=1e-12)


# -- projection ------------------------------------------------------------------------------------

@pytest.mark.parametrize("m,n,k,seed", CASES, ids=IDS)
def test_projection_of_circulant_is_exact(m, n, k, seed):
    c = np.array(random_c(m, n, k, seed, integers=True), dtype=np.float64)
    W = BlockCirculant((m, n), k, c).to_dense()
    back = BlockCirculant.from_dense(W, k)
    assert back.c.dtype == np.float64
    assert np.array_equal(back.c, c)  # integer values: every mean is exact
    assert np.array_equal(back.to_dense(), W)


@pytest.mark.parametrize("m,n,k,seed", CASES, ids=IDS)
def test_projection_is_least_squares_and_residual_orthogonal(m, n, k, seed):
    W = np.random.default_rng(seed).normal(size=(m, n))
    bc = BlockCirculant.from_dense(W, k)
    A = basis(m, n, k)
    # Brute force: minimum-norm least squares over all first columns (diagonals wholly in the
    # padding are zero columns of A and get 0).
    c_ls = np.linalg.lstsq(A, W.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(bc.c.reshape(-1), c_ls, rtol=0, atol=1e-12)
    # The residual is orthogonal to every basis matrix of the block-circulant subspace.
    np.testing.assert_allclose(A.T @ (W - bc.to_dense()).reshape(-1), 0.0, atol=1e-12)


def test_projection_keeps_float32_and_takes_integers():
    W = np.arange(35, dtype=np.float32).reshape(5, 7)
    assert BlockCirculant.from_dense(W, 2).c.dtype == np.float32
    Wi = np.arange(35).reshape(5, 7)
    bc = BlockCirculant.from_dense(Wi, 2)
    assert bc.c.dtype == np.float64
    # Block (0, 0) is [[0, 1], [7, 8]]: diagonal 0 holds 0 and 8, diagonal 1 holds 7 and 1.
    assert bc.c[0, 0].tolist() == [4.0, 4.0]
    # Block (2, 3) is the corner [[34]] alone (row 4, column 6): diagonal 0 holds 34, 1 nothing.
    assert bc.c[2, 3].tolist() == [34.0, 0.0]


# -- arithmetic ------------------------------------------------------------------------------------

@pytest.mark.parametrize("m,n,k,seed", CASES, ids=IDS)
def test_fft_and_expanded_matvec_match_loop_reference(m, n, k, seed):
    c = random_c(m, n, k, seed)
    bc = BlockCirculant((m, n), k, np.array(c))
    rng = random.Random(seed + 7)
    xs = [[rng.uniform(-1.0, 1.0) for _ in range(n)] for _ in range(3)]
    ref = [ref_matvec(ref_dense(m, n, k, c), x) for x in xs]
    X = np.array(xs)
    for got in (bc.matvec(X), bc.expanded_matvec(X)):
        assert got.shape == (3, m)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bc.matvec(X), bc.expanded_matvec(X), rtol=1e-12, atol=1e-12)
    one = bc.matvec(X[0])
    assert one.shape == (m,)
    np.testing.assert_allclose(one, ref[0], rtol=1e-12, atol=1e-12)


def test_fft_matvec_large_layer():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(300, 517))
    for k in (8, 16):
        bc = BlockCirculant.from_dense(W, k)
        X = rng.normal(size=(4, 517))
        np.testing.assert_allclose(bc.matvec(X), X @ bc.to_dense().T, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m,n,k,seed", CASES[::3], ids=IDS[::3])
def test_int_matvec_equals_exact_integer_product(m, n, k, seed):
    fmt = Fixed(16, 12)
    bc, n_sat = BlockCirculant((m, n), k, np.array(random_c(m, n, k, seed))).quantize(fmt)
    assert n_sat == 0 and bc.c.dtype == np.int64
    rng = random.Random(seed + 3)
    xs = [[rng.randint(-2 ** 15, 2 ** 15 - 1) for _ in range(n)] for _ in range(2)]
    codes = bc.c.tolist()
    ref = [ref_matvec(ref_dense(m, n, k, codes), x) for x in xs]  # Python integers: exact
    got = bc.int_matvec(np.array(xs, dtype=np.int64))
    assert got.dtype == np.int64 and got.tolist() == ref
    assert bc.int_matvec(np.array(xs[0])).tolist() == ref[0]


def test_int_matvec_refuses_possible_overflow():
    bc = BlockCirculant((2, 4), 2, np.full((1, 2, 2), 2 ** 31, np.int64))
    with pytest.raises(PermdealError, match=exact(
            f"int_matvec: sums of up to {2 ** 31 * 2 ** 31 * 4} do not fit int64; use narrower "
            "weight or activation codes")):
        bc.int_matvec(np.full(4, 2 ** 31, np.int64))


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,msg", [
    (0, "block size k must be an integer >= 1, not 0"),
    (2.5, "block size k must be an integer >= 1, not 2.5"),
    (True, "block size k must be an integer >= 1, not True"),
    ("4", "block size k must be an integer >= 1, not '4'"),
    (9, "block size k=9 does not fit the 5 x 8 matrix: a block may not exceed its longer side, 8"),
])
def test_bad_block_size(k, msg):
    with pytest.raises(PermdealError, match=exact(msg)):
        BlockCirculant.from_dense(np.ones((5, 8)), k)
    with pytest.raises(PermdealError, match=exact(msg)):
        BlockCirculant((5, 8), k, np.zeros((1, 1, 8)))


def test_padding_too_large():
    msg = ("block size k=5000 pads the 1 x 5000 matrix to 5000 x 5000, more than 4 times its "
           "size; choose a block size near or below the matrix's shorter side")
    with pytest.raises(PermdealError, match=exact(msg)):
        BlockCirculant.from_dense(np.ones((1, 5000)), 5000)


@pytest.mark.parametrize("args,msg", [
    (((5,), 2, np.zeros((3, 4, 2))), "shape must be (m, n), not (5,)"),
    (((0, 8), 2, np.zeros((0, 4, 2))), "shape must be positive, not 0 x 8"),
    (((5, 8), 2, np.zeros((3, 3, 2))),
     "c must have shape (3, 4, 2) for 5 x 8 with k=2, not (3, 3, 2)"),
    (((5, 8), 2, np.full((3, 4, 2), "a")), "c must be integer or float, not <U1"),
    (((5, 8), 2, np.full((3, 4, 2), np.nan)), "c holds NaN or infinite weights"),
    (((3, 5), 4, np.ones((1, 2, 4))),
     "c has non-zero weights whose diagonal lies wholly in the zero padding beyond the matrix"),
])
def test_bad_constructor(args, msg):
    with pytest.raises(PermdealError, match=exact(msg)):
        BlockCirculant(*args)


def test_bad_dense_input():
    with pytest.raises(PermdealError, match=exact("matrix holds NaN or infinite weights")):
        BlockCirculant.from_dense(np.array([[1.0, np.inf]]), 1)
    with pytest.raises(PermdealError, match=exact(
            "from_dense needs a non-empty 2-D matrix, not shape (4,)")):
        BlockCirculant.from_dense(np.ones(4), 2)
    with pytest.raises(PermdealError, match=exact("from_dense needs a real matrix, not complex128")):
        BlockCirculant.from_dense(np.ones((2, 2), complex), 2)


def test_bad_x():
    bc = BlockCirculant.from_dense(np.ones((5, 7)), 2)
    for f in (bc.matvec, bc.expanded_matvec):
        with pytest.raises(PermdealError, match=exact("x has 6 values, the matrix takes 7")):
            f(np.ones(6))
        with pytest.raises(PermdealError, match=exact(
                "x must have shape (7,) or (batch, 7), not (2, 2, 7)")):
            f(np.ones((2, 2, 7)))
        with pytest.raises(PermdealError, match=exact("x holds NaN or infinite values")):
            f(np.full(7, np.nan))
    with pytest.raises(PermdealError, match=exact(
            "int_matvec needs integer weight codes c: quantize the matrix first")):
        bc.int_matvec(np.ones(7, np.int64))
    q, _ = bc.quantize(Fixed(8, 4))
    with pytest.raises(PermdealError, match=exact(
            "int_matvec needs integer activation codes x, not float64")):
        q.int_matvec(np.ones(7))
    with pytest.raises(PermdealError, match=exact("x has 8 values, the matrix takes 7")):
        q.int_matvec(np.ones(8, np.int64))
    with pytest.raises(PermdealError, match=exact(
            "weight_bits must be an integer in [1, 64], not 0")):
        bc.storage_bits(0)


# -- training --------------------------------------------------------------------------------------

TINY = (7, 10, 3)  # 7 -> 10 -> 3 with k = 4: every side is padded


def _tiny():
    model = init_circulant_mlp(TINY, 4, seed=2)
    rng = np.random.default_rng(3)
    model = CirculantMLP(model.layers, tuple(rng.normal(size=b.shape) * 0.1 for b in model.biases))
    X = rng.normal(size=(9, TINY[0]))
    y = rng.integers(0, TINY[-1], size=9)
    return model, X, y


def test_gradient_matches_finite_differences():
    model, X, y = _tiny()
    loss, dcs, dbs = circulant_loss_and_grads(model, X, y)
    # The loss is train.py's on the expanded (dense) model.
    dense = MLP(tuple(PermDiag.from_dense(np.array(ref_dense(*w.shape, w.k, w.c.tolist())), 1)
                      for w in model.layers), model.biases)
    assert loss == pytest.approx(loss_and_grads(dense, X, y)[0], rel=1e-13)
    eps = 1e-6
    for l, w in enumerate(model.layers):
        num = np.zeros_like(w.c)
        for idx in np.ndindex(w.c.shape):
            if not used_mask(w.shape, w.k)[idx]:
                continue  # a value wholly in the padding must stay 0; its gradient is 0 below
            losses = []
            for sign in (1, -1):
                c = w.c.copy()
                c[idx] += sign * eps
                layers = list(model.layers)
                layers[l] = w.with_c(c)
                losses.append(circulant_loss_and_grads(CirculantMLP(tuple(layers), model.biases),
                                                       X, y)[0])
            num[idx] = (losses[0] - losses[1]) / (2 * eps)
        np.testing.assert_allclose(dcs[l], num, rtol=1e-6, atol=1e-8)
        assert not np.any(dcs[l][~used_mask(w.shape, w.k)])
        assert np.any(dcs[l] != 0)
    for l, b in enumerate(model.biases):
        num = np.zeros_like(b)
        for i in range(len(b)):
            hi, lo = list(model.biases), list(model.biases)
            hi[l], lo[l] = b.copy(), b.copy()
            hi[l][i] += eps
            lo[l][i] -= eps
            num[i] = (circulant_loss_and_grads(CirculantMLP(model.layers, tuple(hi)), X, y)[0]
                      - circulant_loss_and_grads(CirculantMLP(model.layers, tuple(lo)), X, y)[0]
                      ) / (2 * eps)
        np.testing.assert_allclose(dbs[l], num, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(0)


def test_finetune_keeps_structure_and_beats_projection(digits):
    X_tr, y_tr, X_te, y_te = digits
    dense = train(init_mlp((64, 64, 10), seed=0), X_tr, y_tr, epochs=10, seed=0)
    proj = circulant_mlp(dense, 8)
    tuned = train_circulant(proj, X_tr, y_tr, epochs=6, seed=0)
    assert tuned.ks == (8, 8) and tuned.sizes == (64, 64, 10)
    for w0, w1 in zip(proj.layers, tuned.layers):
        assert w1.c.shape == w0.c.shape
        assert not np.any(w1.c[~used_mask(w1.shape, 8)])
        W = w1.to_dense()
        assert_circulant(W, 8)
        assert not np.allclose(W, w0.to_dense())  # it did train
    loss0 = circulant_loss_and_grads(proj, X_tr, y_tr)[0]
    loss1 = circulant_loss_and_grads(tuned, X_tr, y_tr)[0]
    acc0, acc1 = circulant_accuracy(proj, X_te, y_te), circulant_accuracy(tuned, X_te, y_te)
    print(f"k=8: loss {loss0:.3f} -> {loss1:.3f}, test accuracy {acc0:.3f} -> {acc1:.3f}, "
          f"dense {accuracy(dense, X_te, y_te):.3f}")
    assert loss1 < loss0 - 0.3
    assert acc1 > acc0 + 0.3


def test_study_rows():
    rows = circulant_digits_study(ks=(4,), hidden=(16,), epochs=2, finetune_epochs=1,
                                  scratch=False)
    # 64 -> 16 -> 10 with k = 4: 4 x 16 blocks and 3 x 4 blocks (10 outputs padded to 12).
    assert [r["k"] for r in rows] == [1, 4]
    assert rows[0]["weights"] == 64 * 16 + 16 * 10
    assert rows[1]["weights"] == rows[1]["stored"] == (4 * 16 + 3 * 4) * 4
    assert rows[1]["scratch"] is None and rows[0]["projected"] is None
    assert rows[0]["dense"] == rows[1]["dense"]
    for key in ("projected", "finetuned"):
        assert 0.0 <= rows[1][key] <= 1.0


def test_bad_training_input():
    model, X, y = _tiny()
    with pytest.raises(PermdealError, match=exact("got 1 block sizes k for 2 layers")):
        init_circulant_mlp(TINY, [4])
    with pytest.raises(PermdealError, match=exact("block size k of fc2 must be an integer >= 1, "
                                                  "not 0")):
        init_circulant_mlp(TINY, [4, 0])
    with pytest.raises(PermdealError, match=exact(
            "block size k=4 does not fit the 3 x 2 matrix: a block may not exceed its longer side, 3")):
        init_circulant_mlp((2, 3), 4)
    with pytest.raises(PermdealError, match=exact("lr must be a positive number, not 0")):
        train_circulant(model, X, y, lr=0)
    with pytest.raises(PermdealError, match=exact("epochs must be an integer >= 1, not 0")):
        train_circulant(model, X, y, epochs=0)
    with pytest.raises(PermdealError, match=exact(
            "train_circulant needs a CirculantMLP (see circulant_mlp), not MLP")):
        train_circulant(init_mlp(TINY), X, y)
    with pytest.raises(PermdealError, match=exact(
            "circulant_mlp needs a trained MLP (golden.train), not CirculantMLP")):
        circulant_mlp(model, 2)
    with pytest.raises(PermdealError, match=exact("X must have shape (samples, 7), not (9, 6)")):
        circulant_loss_and_grads(model, X[:, :6], y)
    with pytest.raises(PermdealError, match=exact("fc1: a layer must be a BlockCirculant, not "
                                                  "ndarray")):
        CirculantMLP((np.ones((3, 7)),), (np.zeros(3),))
    with pytest.raises(PermdealError, match=exact("fc2 takes 10 inputs but fc1 gives 3")):
        CirculantMLP((BlockCirculant.from_dense(np.ones((3, 7)), 1),
                      BlockCirculant.from_dense(np.ones((3, 10)), 1)), (np.zeros(3), np.zeros(3)))
    with pytest.raises(PermdealError, match=exact("scratch must be True or False, not 1")):
        circulant_digits_study(scratch=1)
