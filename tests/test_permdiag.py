"""Permuted-diagonal matrices (docs/design.md 4.1) against loop-built references over Python numbers."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from permdeal.errors import PermdealError
from permdeal.golden.formats import Fixed
from permdeal.golden.permdiag import PermDiag, index_bits

PS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17]

# Hand-picked corners: p = 1 (dense), m or n below p, 1 x N, N x 1, non-multiples of p.
CORNER_SHAPES = [
    (1, 1, 1), (1, 1, 2), (1, 1, 5), (1, 9, 1), (9, 1, 1), (1, 12, 4), (12, 1, 4), (1, 10, 3),
    (10, 1, 3), (2, 3, 5), (3, 2, 5), (4, 4, 7), (6, 6, 3), (7, 7, 3), (8, 5, 3), (5, 8, 3),
    (10, 14, 5), (13, 6, 4), (16, 16, 16), (15, 17, 16), (9, 9, 8), (3, 20, 7), (20, 3, 7),
    (11, 13, 1), (2, 2, 2), (31, 29, 6),
]


def random_shapes(n_cases, seed0):
    out = []
    for s in range(n_cases):
        rng = random.Random(seed0 + s)
        out.append((rng.randint(1, 24), rng.randint(1, 24), rng.choice(PS), seed0 + s))
    return out


CASES = [(m, n, p, 1000 + i) for i, (m, n, p) in enumerate(CORNER_SHAPES)] + random_shapes(60, 0)


def blocks(m, n, p):
    return (m + p - 1) // p, (n + p - 1) // p


def in_matrix(m, n, p, I, J, r, k):
    return I * p + r < m and J * p + (r + k) % p < n


def random_pd(m, n, p, seed, kind="float"):
    """Random k, and q with every in-matrix stored weight non-zero and distinct, padding zero."""
    rng = random.Random(seed)
    mb, nb = blocks(m, n, p)
    k = [[rng.randrange(p) for _ in range(nb)] for _ in range(mb)]
    q = [[[0] * p for _ in range(nb)] for _ in range(mb)]
    used = set()
    for I in range(mb):
        for J in range(nb):
            for r in range(p):
                if not in_matrix(m, n, p, I, J, r, k[I][J]):
                    continue
                while True:
                    if kind == "float":
                        v = rng.choice([-1, 1]) * rng.uniform(0.1, 4.0)
                    else:
                        v = rng.choice([-1, 1]) * rng.randint(1, 2 ** 15)
                    if v not in used:
                        break
                used.add(v)
                q[I][J][r] = v
    return k, q


def ref_dense(m, n, p, k, q):
    """W[i][j] = q[I][J][r] iff c == (r + k[I][J]) mod p (i = I*p + r, j = J*p + c), else 0."""
    W = [[0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            I, r, J, c = i // p, i % p, j // p, j % p
            if c == (r + k[I][J]) % p:
                W[i][j] = q[I][J][r]
    return W


def make(m, n, p, k, q, dtype=np.float64):
    return PermDiag((m, n), p, np.array(k, dtype=np.int64).reshape(blocks(m, n, p)),
                    np.array(q, dtype=dtype).reshape(blocks(m, n, p) + (p,)))


# -- structure -------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_to_dense_matches_formula(m, n, p, seed):
    k, q = random_pd(m, n, p, seed)
    P = make(m, n, p, k, q)
    D = P.to_dense()
    assert D.shape == (m, n), f"seed {seed}"
    assert D.tolist() == ref_dense(m, n, p, k, q), f"seed {seed}: {m}x{n} p={p}"
    assert P.shape == (m, n) and P.p == p and P.blocks == blocks(m, n, p)
    mb, nb = blocks(m, n, p)
    assert P.padded_shape == (mb * p, nb * p)


@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_column_view(m, n, p, seed):
    """In column c of block (I, J) the one non-zero sits in row (c - k) mod p."""
    k, q = random_pd(m, n, p, seed)
    D = make(m, n, p, k, q).to_dense()
    mb, _ = blocks(m, n, p)
    for j in range(n):
        J, c = j // p, j % p
        for I in range(mb):
            rows = [i for i in range(I * p, min(I * p + p, m)) if D[i][j] != 0]
            want_row = I * p + (c - k[I][J]) % p
            want = [want_row] if want_row < m else []
            assert rows == want, f"seed {seed}: column {j}, block-row {I}"


@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_counts(m, n, p, seed):
    k, q = random_pd(m, n, p, seed)
    P = make(m, n, p, k, q)
    W = ref_dense(m, n, p, k, q)  # every in-matrix stored weight is non-zero
    assert P.n_weights == sum(v != 0 for row in W for v in row), f"seed {seed}"
    assert P.max_terms == max(sum(v != 0 for v in row) for row in W), f"seed {seed}"
    mb, nb = blocks(m, n, p)
    bits = 0
    while 2 ** bits < p:
        bits += 1
    assert P.index_bits_total == mb * nb * bits


def test_n_weights_hand_worked():
    # 3 x 3 with p = 2: blocks 2 x 2; k = [[0, 1], [1, 0]].
    # block (0,0) k=0: (0,0),(1,1) both in; block (0,1) k=1: r=0 -> col 2+1=3 out, r=1 -> col 2 in;
    # block (1,0) k=1: r=0 -> row 2, col 1 in; r=1 -> row 3 out; block (1,1) k=0: r=0 -> (2,2) in.
    q = np.zeros((2, 2, 2))
    q[0, 0] = [1, 2]
    q[0, 1, 1] = 3
    q[1, 0, 0] = 4
    q[1, 1, 0] = 5
    P = PermDiag((3, 3), 2, [[0, 1], [1, 0]], q)
    assert P.n_weights == 5
    assert P.to_dense().tolist() == [[1, 0, 0], [0, 2, 3], [0, 4, 5]]
    assert P.max_terms == 2


@pytest.mark.parametrize("p, bits", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (7, 3), (8, 3),
                                     (9, 4), (16, 4), (17, 5), (1000, 10), (1024, 10), (1025, 11)])
def test_index_bits_hand(p, bits):
    assert index_bits(p) == bits


def ref_index_bits(p):
    b = 0
    while 2 ** b < p:
        b += 1
    return b


def test_index_bits_all_small():
    for p in range(1, 5000):
        assert index_bits(p) == ref_index_bits(p), f"p={p}"


def test_index_bits_large_p():
    """ceil(log2 p) for any integer p >= 1, also beyond float precision of log2."""
    for e in range(1, 63):
        for p in (2 ** e - 1, 2 ** e, 2 ** e + 1):
            assert index_bits(p) == ref_index_bits(p), f"p=2**{e}{p - 2 ** e:+d}"


# -- padding and bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("m, n, p", [(3, 3, 2), (1, 1, 5), (5, 7, 3), (2, 9, 4)])
def test_padding_must_be_zero(m, n, p):
    rng = random.Random(m * 100 + n * 10 + p)
    mb, nb = blocks(m, n, p)
    k = [[rng.randrange(p) for _ in range(nb)] for _ in range(mb)]
    pads = [(I, J, r) for I in range(mb) for J in range(nb) for r in range(p)
            if not in_matrix(m, n, p, I, J, r, k[I][J])]
    assert pads, "shape chosen to have padding"
    for I, J, r in pads:
        q = np.zeros((mb, nb, p))
        q[I, J, r] = 1.5
        with pytest.raises(PermdealError) as e:
            PermDiag((m, n), p, k, q)
        assert "padding" in str(e.value)
    # and the in-matrix positions are accepted
    q = np.zeros((mb, nb, p))
    for I in range(mb):
        for J in range(nb):
            for r in range(p):
                if in_matrix(m, n, p, I, J, r, k[I][J]):
                    q[I, J, r] = 1.0
    assert PermDiag((m, n), p, k, q).n_weights == int(q.sum())


@pytest.mark.parametrize("p", [0, -1, -7, 2.0, 1.5, "3", None, True, False, [2]])
def test_bad_p(p):
    with pytest.raises(PermdealError) as e:
        PermDiag((4, 4), p, np.zeros((1, 1), np.int64), np.zeros((1, 1, 4)))
    assert "block size p" in str(e.value)
    with pytest.raises(PermdealError) as e:
        PermDiag.from_dense(np.ones((4, 4)), p)
    assert "block size p" in str(e.value)


def test_numpy_integer_p_accepted():
    P = PermDiag((4, 4), np.int64(2), np.zeros((2, 2), np.int64), np.ones((2, 2, 2)))
    assert P.p == 2 and isinstance(P.p, int)


@pytest.mark.parametrize("shape", [(0, 4), (4, 0), (-1, 4), (4,), "ab", None, (4, "x")])
def test_bad_shape(shape):
    with pytest.raises(PermdealError) as e:
        PermDiag(shape, 2, np.zeros((2, 2), np.int64), np.zeros((2, 2, 2)))
    assert "shape" in str(e.value)


@pytest.mark.parametrize("k, q, word", [
    (np.zeros((2, 3), np.int64), np.zeros((2, 2, 2)), "k must have shape"),
    (np.zeros((2,), np.int64), np.zeros((2, 2, 2)), "k must have shape"),
    (np.zeros((2, 2), np.int64), np.zeros((2, 2, 3)), "q must have shape"),
    (np.zeros((2, 2), np.int64), np.zeros((2, 2)), "q must have shape"),
    (np.zeros((2, 2)), np.zeros((2, 2, 2)), "k must be integers"),
    (np.array([[0, 1], [2, 0]]), np.zeros((2, 2, 2)), "k values must lie in [0, 2)"),
    (np.array([[0, -1], [1, 0]]), np.zeros((2, 2, 2)), "k values must lie in [0, 2)"),
    (np.zeros((2, 2), np.int64), np.full((2, 2, 2), np.nan), "NaN"),
    (np.zeros((2, 2), np.int64), np.array([[[1, np.inf], [0, 0]], [[0, 0], [0, 0]]]), "NaN"),
    (np.zeros((2, 2), np.int64), np.zeros((2, 2, 2), bool), "q must be integer or float"),
    (np.zeros((2, 2), np.int64), np.full((2, 2, 2), "a"), "q must be integer or float"),
])
def test_bad_k_q(k, q, word):
    with pytest.raises(PermdealError) as e:
        PermDiag((4, 4), 2, k, q)
    assert word in str(e.value)


@pytest.mark.parametrize("W, word", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    (np.array([[1.0, 0.0], [-np.inf, 1.0]]), "NaN"),
    (np.ones(4), "2-D"),
    (np.ones((0, 3)), "2-D"),
    (np.ones((2, 2, 2)), "2-D"),
])
def test_from_dense_bad_input(W, word):
    with pytest.raises(PermdealError) as e:
        PermDiag.from_dense(W, 2)
    assert word in str(e.value)


# -- projection ------------------------------------------------------------------------------------

def ref_project(W, m, n, p):
    """Brute force: per block, the k of largest energy (first, i.e. smallest, on ties)."""
    mb, nb = blocks(m, n, p)
    at = lambda i, j: W[i][j] if i < m and j < n else 0.0
    K = [[0] * nb for _ in range(mb)]
    Q = [[[0.0] * p for _ in range(nb)] for _ in range(mb)]
    for I in range(mb):
        for J in range(nb):
            best, best_e = 0, None
            for k in range(p):
                e = 0.0
                for r in range(p):
                    v = at(I * p + r, J * p + (r + k) % p)
                    e += v * v
                if best_e is None or e > best_e:
                    best, best_e = k, e
            K[I][J] = best
            Q[I][J] = [at(I * p + r, J * p + (r + best) % p) for r in range(p)]
    return K, Q


@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_from_dense_brute_force(m, n, p, seed):
    rng = random.Random(seed)
    W = [[rng.gauss(0, 1) for _ in range(n)] for _ in range(m)]
    K, Q = ref_project(W, m, n, p)
    P = PermDiag.from_dense(np.array(W), p)
    assert P.shape == (m, n) and P.p == p
    assert P.k.tolist() == K, f"seed {seed}: {m}x{n} p={p}"
    assert P.q.tolist() == Q, f"seed {seed}: {m}x{n} p={p}"
    # keeps exactly the chosen entries and zeroes everything else
    want = [[W[i][j] if (j % p) == (i % p + K[i // p][j // p]) % p else 0.0 for j in range(n)]
            for i in range(m)]
    assert P.to_dense().tolist() == want, f"seed {seed}"


def test_from_dense_hand_worked():
    # p = 2: block k=0 keeps the main diagonal, k=1 the anti-diagonal.
    W = np.array([[1.0, 5.0, 0.0, 1.0],
                  [-6.0, 2.0, 3.0, 0.0]])
    P = PermDiag.from_dense(W, 2)
    # block 0: k=0 energy 1+4=5, k=1 energy 25+36=61 -> 1; block 1: k=0: 0+0, k=1: 1+9 -> 1
    assert P.k.tolist() == [[1, 1]]
    assert P.q.tolist() == [[[5.0, -6.0], [1.0, 3.0]]]
    assert P.to_dense().tolist() == [[0.0, 5.0, 0.0, 1.0], [-6.0, 0.0, 3.0, 0.0]]


def test_from_dense_ties_go_to_smallest_k():
    p = 3
    # diag k=0: [1, 1, 1] (3); k=1: [3, 0, 4] (25); k=2: [0, 5, 0] (25): tie 1 vs 2 -> 1
    def block(d0, d1, d2):
        B = [[0.0] * p for _ in range(p)]
        for k, d in enumerate((d0, d1, d2)):
            for r in range(p):
                B[r][(r + k) % p] = d[r]
        return B

    B = block([1, 1, 1], [3, 0, 4], [0, 5, 0])
    assert PermDiag.from_dense(np.array(B), p).k.tolist() == [[1]]
    # negative values count by their square: k=2 [-5, 0, 0] ties k=1 [0, -3, 4]
    B = block([0, 0, 0], [0, -3, 4], [-5, 0, 0])
    P = PermDiag.from_dense(np.array(B), p)
    assert P.k.tolist() == [[1]] and P.q.tolist() == [[[0.0, -3.0, 4.0]]]
    # three-way tie -> 0; all-zero block -> 0
    assert PermDiag.from_dense(np.ones((3, 3)), 3).k.tolist() == [[0]]
    assert PermDiag.from_dense(np.zeros((3, 3)), 3).k.tolist() == [[0]]
    # strictly largest at k=2 is found (the test above is not vacuous)
    B = block([1, 1, 1], [3, 0, 4], [0, 5, 0.5])
    assert PermDiag.from_dense(np.array(B), p).k.tolist() == [[2]]
    # integer matrix: p=2 tie between diagonals -> 0, q becomes float64
    P = PermDiag.from_dense(np.array([[2, -2], [2, 2]]), 2)
    assert P.k.tolist() == [[0]] and P.q.dtype == np.float64 and P.q.tolist() == [[[2.0, 2.0]]]


def test_from_dense_keeps_float_dtype():
    W = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert PermDiag.from_dense(W, 2).q.dtype == np.float32


@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_from_dense_inverts_to_dense(m, n, p, seed):
    k, q = random_pd(m, n, p, seed)
    P = make(m, n, p, k, q)
    R = PermDiag.from_dense(P.to_dense(), p)
    mb, nb = blocks(m, n, p)
    for I in range(mb):
        for J in range(nb):
            has_weight = any(in_matrix(m, n, p, I, J, r, k[I][J]) for r in range(p))
            # a block with no weight inside the matrix is all zero: its k is a tie -> 0
            want_k = k[I][J] if has_weight else 0
            assert R.k[I, J] == want_k, f"seed {seed}: block ({I}, {J})"
    assert R.q.tolist() == q, f"seed {seed}"


# -- arithmetic ------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_matvec(m, n, p, seed):
    k, q = random_pd(m, n, p, seed)
    P = make(m, n, p, k, q)
    W = ref_dense(m, n, p, k, q)
    rng = random.Random(seed + 7)
    X = [[rng.uniform(-2, 2) for _ in range(n)] for _ in range(3)]
    want = [[sum(W[i][j] * x[j] for j in range(n)) for i in range(m)] for x in X]
    y = P.matvec(np.array(X[0]))
    assert y.shape == (m,)
    np.testing.assert_allclose(y, want[0], rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}")
    Y = P.matvec(np.array(X))
    assert Y.shape == (3, m)
    np.testing.assert_allclose(Y, want, rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}")


@pytest.mark.parametrize("m, n, p, seed", CASES)
def test_int_matvec_exact(m, n, p, seed):
    k, q = random_pd(m, n, p, seed, kind="int")
    P = make(m, n, p, k, q, dtype=np.int64)
    W = ref_dense(m, n, p, k, q)
    rng = random.Random(seed + 11)
    X = [[rng.choice([0, rng.randint(-2 ** 31, 2 ** 31 - 1)]) for _ in range(n)] for _ in range(4)]
    want = [[sum(W[i][j] * x[j] for j in range(n)) for i in range(m)] for x in X]
    y = P.int_matvec(np.array(X[1], dtype=np.int64))
    assert y.dtype == np.int64 and y.tolist() == want[1], f"seed {seed}"
    Y = P.int_matvec(np.array(X, dtype=np.int64))
    assert Y.shape == (4, m) and Y.tolist() == want, f"seed {seed}"
    # narrower integer dtypes are widened, not wrapped
    X16 = [[rng.randint(-2 ** 15, 2 ** 15 - 1) for _ in range(n)] for _ in range(2)]
    want16 = [[sum(W[i][j] * x[j] for j in range(n)) for i in range(m)] for x in X16]
    assert P.int_matvec(np.array(X16, dtype=np.int16)).tolist() == want16, f"seed {seed}"


def test_int_matvec_refuses_floats():
    P = PermDiag((2, 2), 1, np.zeros((2, 2), np.int64), np.ones((2, 2, 1)))
    with pytest.raises(PermdealError) as e:
        P.int_matvec(np.array([1, 2]))
    assert "integer weight codes" in str(e.value)
    Pi = P.with_q(np.ones((2, 2, 1), np.int64))
    with pytest.raises(PermdealError) as e:
        Pi.int_matvec(np.array([1.0, 2.0]))
    assert "integer activation codes" in str(e.value)


@pytest.mark.parametrize("x", [np.ones(4), np.ones((2, 4)), np.ones(6), np.float64(1.0)])
def test_matvec_wrong_length(x):
    P = PermDiag((3, 5), 2, np.zeros((2, 3), np.int64), np.zeros((2, 3, 2)))
    with pytest.raises(PermdealError) as e:
        P.matvec(x)
    assert "the matrix takes 5" in str(e.value)


def test_quantize_structure():
    k, q = random_pd(7, 5, 3, 3)
    P = make(7, 5, 3, k, q)
    Q, n_sat = P.quantize(Fixed(8, 5))  # codes -128..127: |q| <= 4 -> up to 128 saturates
    assert Q.k.tolist() == k and Q.q.dtype == np.int64
    want_sat = 0
    for I in range(len(q)):
        for J in range(len(q[0])):
            for r in range(3):
                c = math.floor(Fraction(q[I][J][r]) * 32 + Fraction(1, 2))
                want_sat += c > 127 or c < -128
                assert Q.q[I, J, r] == min(max(c, -128), 127)
    assert n_sat == want_sat


def test_empty_batch_gives_empty_result():
    P = PermDiag.from_dense(np.arange(12.0).reshape(3, 4), 2)
    assert P.matvec(np.zeros((0, 4))).shape == (0, 3)
    Q, _ = P.quantize(Fixed(8, 2))
    assert Q.int_matvec(np.zeros((0, 4), np.int64)).shape == (0, 3)


def test_block_size_that_pads_absurdly_is_refused():
    with pytest.raises(PermdealError, match=r"p=100000 pads the 20 x 30 matrix to 100000 x 100000"):
        PermDiag.from_dense(np.ones((20, 30)), 100000)
    assert PermDiag.from_dense(np.ones((3, 5)), 7).blocks == (1, 1)  # small padding is fine
