"""``permdeal compare`` (permdeal/api/compare.py) against arithmetic written here.

Every column of the table is checked on small layers against an independent count: storage by
formula and by loops over block positions, multiplies by brute-force loops over the actual
matrices and sparse inputs (EIE's padding by walking each PE's column slices), the FFT cost model
against an instrumented radix-2 FFT, cycles against direct calls of the golden cycle models,
crossbar counts by the mapping formula. Then the command end to end (totals, JSON written
atomically, -o DIR, outputs refused) and its error messages. Random cases use fixed seeds.
"""

import argparse
import dataclasses
import cmath
import json
import math
import os
import re
import types

import numpy as np
import pytest

from permdeal import atomic
from permdeal.errors import PermdealError
from permdeal import methods
from permdeal.api import compare as cmp
from permdeal.cli import compare_flags
from permdeal.methods import baselines
from permdeal.golden import cycles as pd_cycles
from permdeal.golden import eie, eie_cycles, sme, smartdeal as sd, smartdeal_cycles
from permdeal.golden.circulant import BlockCirculant
from permdeal.golden.permdiag import PermDiag


def parse(*argv):
    """The options of ``permdeal compare`` with the flags ``argv`` (the command line's parser)."""
    p = argparse.ArgumentParser()
    compare_flags(p)
    return cmp.CompareOptions(**vars(p.parse_args(list(argv))))


def st_of(*argv, kind="model"):
    return cmp.settings(parse(*argv), kind)


def figures(name, obj, X, st, in_block=None):
    """One layer's figures of the registered method ``name``."""
    return methods.get(name).figures(obj, X, st, in_block)


def sparse_inputs(n, count, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((count, n))
    X[rng.random((count, n)) < 0.5] = 0.0
    X[0, : n // 2] = 0.0  # a run of zeros: whole zero blocks for the circulant count
    return X


# -- storage --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(10, 14), (16, 8), (7, 7)])
def test_storage_of_dense_pd_circulant_by_formula(shape):
    m, n = shape
    p = k = 4
    rng = np.random.default_rng(1)
    W = rng.standard_normal(shape)
    X = sparse_inputs(n, 3, 2)
    st = st_of("--p", "4", "--k", "4")
    assert figures("dense", W, X, st)["storage_bits"] == m * n * 16
    pd = PermDiag.from_dense(W, p)
    inside = sum(1 for I in range(-(-m // p)) for J in range(-(-n // p)) for r in range(p)
                 if I * p + r < m and J * p + (r + int(pd.k[I, J])) % p < n)
    blocks = -(-m // p) * -(-n // p)
    got = figures("permdiag", pd, X, st)
    assert got["storage_bits"] == inside * 16 + blocks * 2
    assert got["index_bits"] == blocks * 2
    bc = BlockCirculant.from_dense(W, k)
    diagonals = {(r // k, s // k, (r - s) % k) for r in range(m) for s in range(n)}
    got = figures("circulant", bc, X, st)
    assert (got["storage_bits"], got["index_bits"]) == (len(diagonals) * 16, 0)
    if m % k == 0 and n % k == 0:
        assert got["storage_bits"] == m * n // k * 16


def test_smartdeal_storage_is_the_rom_encoding():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((6, 10))
    dec = sd.decompose(W, S=3, E=3)
    enc = sd.quantize(dec, 8)
    got = figures("smartdeal", (dec, enc), sparse_inputs(10, 2, 4), st_of())
    r = -(-10 // 3)                        # 4 chunks per row, one block per row
    ce_elements, b_elements = 6 * r * 3, 6 * 3 * 3
    assert got["storage_bits"] == ce_elements * (3 + 2) + b_elements * 8
    assert got["index_bits"] == ce_elements


# -- multiplies -----------------------------------------------------------------------------------

def test_multiplies_dense_and_pd_by_brute_force():
    m, n, p = 11, 13, 4
    rng = np.random.default_rng(5)
    W = rng.standard_normal((m, n))
    X = sparse_inputs(n, 5, 6)
    st = st_of()
    want = np.mean([sum(1 for i in range(m) for j in range(n) if x[j] != 0) for x in X])
    got = figures("dense", W, X, st)
    assert got["multiplies"] == want
    assert got["multiplies_no_skip"] == m * n
    pd = PermDiag.from_dense(W, p)
    mb, nb = pd.blocks
    counts = []
    for x in X:  # every stored slot (padded rows too) whose input is non-zero
        c = 0
        for I in range(mb):
            for J in range(nb):
                for r in range(p):
                    col = J * p + (r + int(pd.k[I, J])) % p
                    c += col < n and x[col] != 0
        counts.append(c)
    assert figures("permdiag", pd, X, st)["multiplies"] == np.mean(counts)


def eie_entries_by_walking(W, x, n_pe, run=16):
    """CSC entries (and padding) of the columns with a non-zero input, walking every PE's slice:
    a gap of g zeros before a non-zero costs g // run padding entries."""
    entries = padding = 0
    for j in np.flatnonzero(x):
        for k in range(n_pe):
            gap = 0
            for i in range(k, W.shape[0], n_pe):
                if W[i, j] == 0:
                    gap += 1
                    continue
                padding += gap // run
                entries += 1 + gap // run
                gap = 0
    return entries, padding


def test_multiplies_eie_by_walking_slices():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((150, 9))
    x = np.zeros(9)
    x[[0, 2, 3, 7, 8]] = rng.random(5) + 0.1
    st = st_of("--pes", "1", "--lanes", "2")
    em = eie.compress(W, 0.06, n_pe=st.multipliers)
    Wp = eie.prune(W, 0.06)
    entries, padding = eie_entries_by_walking(Wp, x, 2)
    assert padding > 0  # the case must exercise the padding entries
    got = figures("eie", em, x[None], st)
    assert (got["multiplies"], got["padding_multiplies"]) == (entries, padding)
    assert got["nonzero_weights"] == np.count_nonzero(Wp)
    s = em.storage()
    assert (got["storage_bits"], got["index_bits"]) == (s["total_bits"],
                                                        s["index_overhead_bits"])


class Counted:
    """A complex number that counts the real multiplies of complex products."""

    count = 0

    def __init__(self, v):
        self.v = complex(v)

    def __add__(self, o):
        return Counted(self.v + o.v)

    def __sub__(self, o):
        return Counted(self.v - o.v)

    def times(self, w):
        Counted.count += 4
        return Counted(self.v * w)


def radix2_fft(a):
    """Textbook radix-2 decimation-in-time FFT, every twiddle multiplied."""
    k = len(a)
    if k == 1:
        return a
    even, odd = radix2_fft(a[0::2]), radix2_fft(a[1::2])
    out = [None] * k
    for t in range(k // 2):
        tw = odd[t].times(cmath.exp(-2j * math.pi * t / k))
        out[t], out[t + k // 2] = even[t] + tw, even[t] - tw
    return out


@pytest.mark.parametrize("k", [1, 2, 4, 8, 16])
def test_fft_cost_model_counts_a_radix2_fft(k):
    x = np.random.default_rng(k).standard_normal(k)
    Counted.count = 0
    y = radix2_fft([Counted(v) for v in x])
    assert np.allclose([c.v for c in y], np.fft.fft(x))
    assert baselines.fft_mults(k) == Counted.count
    spectrum = np.fft.rfft(x)
    real_bins = sum(1 for f in range(len(spectrum)) if f == 0 or 2 * f == k)
    assert baselines.pointwise_mults(k) == 4 * (len(spectrum) - real_bins) + real_bins


@pytest.mark.parametrize("k", [1, 2, 4])
def test_multiplies_circulant(k):
    m, n = 12, 10
    W = np.random.default_rng(8).standard_normal((m, n))
    X = sparse_inputs(n, 4, 9)
    st = st_of("--k", str(k))
    bc = BlockCirculant.from_dense(W, k)
    mb, nb = -(-m // k), -(-n // k)
    fft = 2 * k * math.ceil(math.log2(k)) if k > 1 else 0
    pw = {1: 1, 2: 2, 4: 6}[k]
    want = []
    for x in X:
        live = sum(1 for J in range(nb) if any(x[j] != 0 for j in range(J * k, min(n, J * k + k))))
        want.append(live * (fft + mb * pw) + (mb * fft if live else 0))
    got = figures("circulant", bc, X, st)
    assert got["multiplies"] == np.mean(want)
    if k == 1:  # one block per weight: the dense zero-skipping count
        assert got["multiplies"] == figures("dense", W, X, st)["multiplies"]
    assert got["cycles"] == np.mean([-(-w // st.multipliers) for w in want])


def test_multiplies_smartdeal_by_brute_force():
    m, n, S = 5, 11, 3
    rng = np.random.default_rng(10)
    W = rng.standard_normal((m, n))
    W[1, 3:9] = 0.0  # whole zero chunks: skipped slots
    dec = sd.decompose(W, S=S, E=3)
    enc = sd.quantize(dec, 8)
    X = sparse_inputs(n, 3, 11)
    r = -(-n // S)
    ce = dec.ce.reshape(m, r, S)  # one block per output row: chunk c is row c of the block
    macs, skip = 0, np.zeros(len(X))
    for i in range(m):
        for c in range(r):
            if np.any(ce[i, c] != 0) or c == r - 1:
                cols = range(c * S, min(n, c * S + S))
                macs += len(cols)
                skip += [sum(1 for j in cols if x[j] != 0) for x in X]
    got = figures("smartdeal", (dec, enc), X, st_of())
    assert got["multiplies"] == macs < m * n
    assert got["multiplies_zero_skip"] == np.mean(skip)
    assert got["shift_add_terms"] == S * sum(1 for v in dec.ce.ravel() if v != 0)


# -- cycles ---------------------------------------------------------------------------------------

def test_cycles_are_the_golden_models():
    m, n = 24, 20
    rng = np.random.default_rng(12)
    W = rng.standard_normal((m, n))
    X = sparse_inputs(n, 3, 13)
    st = st_of("--pes", "2", "--lanes", "3", "--scan-width", "4", "--fifo-depth", "2")
    cfg = pd_cycles.EngineConfig(2, 3, 4)
    pd = PermDiag.from_dense(W, 4)
    for in_block in (None, 4):
        got = figures("permdiag", pd, X, st, in_block)["cycles"]
        assert got == np.mean([pd_cycles.layer_cycles(x, 6, 4, cfg, in_block).total for x in X])
        got = figures("dense", W, X, st, in_block)["cycles"]
        assert got == np.mean([pd_cycles.layer_cycles(x, m, 1, cfg, in_block).total for x in X])
    em = eie.compress(W, 0.3, n_pe=6)
    want = np.mean([eie_cycles.layer_cycles(em.csc, x, 2).actual for x in X])
    assert figures("eie", em, X, st)["cycles"] == want
    dec = sd.decompose(W, S=3, E=3)
    enc = sd.quantize(dec, 8)
    one_unit = smartdeal_cycles.layer_cycles(types.SimpleNamespace(codes=enc)).compute
    got = figures("smartdeal", (dec, enc), X, st)
    assert (got["cycles"], got["units"]) == (-(-one_unit // 2), 2)  # 6 multipliers // S = 2


# -- crossbars ------------------------------------------------------------------------------------

def test_crossbars_by_formula():
    m, n = 40, 70
    W = np.random.default_rng(14).standard_normal((m, n))
    X = sparse_inputs(n, 1, 15)
    st = st_of("--xbar-rows", "32", "--xbar-cols", "48", "--cell-bits", "2",
               "--xbar-weight-bits", "8", "--input-bits", "6", "--dac-bits", "2")
    cells = math.ceil(7 / 2)
    got = figures("dense", W, X, st)
    assert got["crossbars"] == 2 * math.ceil(n / 32) * math.ceil(m * cells / 48)
    assert got["crossbar_reads"] == 3
    assert got["used_cells"] == 2 * m * n * cells


def test_sme_storage_counts_cells_of_kept_crossbars():
    m, n = 20, 30
    W = np.random.default_rng(16).uniform(-1, 1, (m, n))  # every bit slice well filled
    R, C, bits = 8, 8, 6
    st = st_of("--xbar-rows", str(R), "--xbar-cols", str(C), "--xbar-weight-bits", str(bits))
    full = sme.sme_layer(W, bits, None, 1, R, C)
    got = figures("sme", full, None, st)
    tiles = (bits - 1) * 2 * math.ceil(n / R) * math.ceil(m / C)
    assert full.crossbars_squeezed == tiles  # every tile holds a set bit
    assert got["storage_bits"] == (bits - 1) * 2 * m * n
    assert (got["index_bits"], got["crossbars"]) == (tiles, tiles)
    squeezed = sme.sme_layer(W, bits, 2, 12, R, C)
    got = figures("sme", squeezed, None, st)
    mag, sign = squeezed.codes.mag, squeezed.codes.sign
    cells = kept = 0
    for j in range(bits - 1):
        for pol in (1, -1):
            for t in range(0, n, R):
                for u in range(0, m, C):
                    block = ((mag[u:u + C, t:t + R] >> j) & 1) * (sign[u:u + C, t:t + R] == pol)
                    if block.any():
                        kept += 1
                        cells += block.size
    assert kept == squeezed.crossbars_squeezed < tiles
    assert got["storage_bits"] == cells
    assert (got["multiplies"], got["cycles"]) == (None, None)


# -- the command ----------------------------------------------------------------------------------

def tiny_model(path, sizes=(12, 9, 5), seed=17):
    rng = np.random.default_rng(seed)
    arrays = {}
    for i, (n, m) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"l{i}.weight"] = rng.standard_normal((m, n))
        arrays[f"l{i}.bias"] = rng.standard_normal(m) * 0.1
    np.savez(path, **arrays)
    return path


def run(*argv):
    return cmp.run(**dataclasses.asdict(parse(*argv)))


def test_run_totals_json_and_text(tmp_path, capsys, monkeypatch):
    model = tiny_model(tmp_path / "m.npz")
    out = tmp_path / "c.json"
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((str(src), str(dst)))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    assert run("--model", str(model), "--p", "3", "--k", "3", "--vectors", "2",
               "--json", str(out)) == 0
    printed = capsys.readouterr().out
    # the JSON appears by a rename of a temporary file beside it
    src = [s for s, d in renames if d == str(out)]
    assert len(src) == 1 and os.path.dirname(src[0]) == str(tmp_path) and src[0] != str(out)
    assert sorted(os.listdir(tmp_path)) == ["c.json", "m.npz"]
    res = json.loads(out.read_text())
    assert [f["format"] for f in res["formats"]] == methods.names()
    for f in res["formats"]:
        assert len(f["layers"]) == 2
        for key in ("storage_bits", "index_bits", "multiplies", "cycles", "crossbars"):
            vals = [l.get(key) for l in f["layers"]]
            want = None if None in vals else sum(vals)
            assert f["total"][key] == want, (f["format"], key)
        assert f["accuracy"] is None
    dense = res["formats"][0]
    assert dense["total"]["storage_bits"] == (12 * 9 + 9 * 5) * 16
    assert "per layer" in printed and "total over 2 layer(s)" in printed
    row = next(line for line in printed.splitlines() if line.startswith("dense 16-bit "))
    assert f"{(12 * 9 + 9 * 5) * 16:,}" in row
    # the first layer's inputs have the asked density: round(0.5 * 12) = 6 of 12
    assert dense["layers"][0]["input_density"] == 0.5


def test_run_with_digits_data_output_folder(tmp_path, capsys):
    model = tiny_model(tmp_path / "d.npz", sizes=(64, 8, 10))
    out = tmp_path / "o"
    assert run("--model", str(model), "--data", "digits", "--finetune-epochs", "1",
               "-o", str(out)) == 0
    assert sorted(os.listdir(out)) == sorted([*cmp.OUTPUT_FILES.values(),
                                              atomic.MARKER_NAME])
    res = json.loads((out / "compare.json").read_text())
    txt = (out / "compare.txt").read_text()
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for f in res["formats"]:
        acc = f["accuracy"]["float"]
        assert 0 <= acc <= 1
        assert f"{100 * acc:.1f}%" in txt
    assert capsys.readouterr().out.startswith(txt)


def test_outputs_refused(tmp_path):
    model = tiny_model(tmp_path / "m.npz")
    with pytest.raises(PermdealError, match="is one of the inputs"):
        run("--model", str(model), "--json", str(model))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(PermdealError, match="exists; pass --force"):
        run("--model", str(model), "--json", str(tmp_path / "x.json"))
    with pytest.raises(PermdealError, match="holds the input"):
        run("--model", str(model), "-o", str(tmp_path))
    with pytest.raises(PermdealError, match="give -o DIR or --json/--plot, not both"):
        run("--model", str(model), "-o", str(tmp_path / "o"), "--json", str(tmp_path / "j"))
    assert (tmp_path / "x.json").read_text() == "{}"


def exact(msg):
    return "^" + re.escape(msg) + "$"


@pytest.mark.parametrize("argv, msg", [
    (["--p", "0"], "--p must be an integer >= 1, not 0"),
    (["--p", "13"], "--p 13 does not fit layer l0 (12 inputs x 9 outputs): a block may not exceed "
                    "its longer side, 12"),
    (["--k", "10"], "--k 10 does not fit layer l1 (9 inputs x 5 outputs): a block may not exceed "
                    "its longer side, 9"),
    (["--density", "0"], "--density must be a number in (0, 1] or 'eie', not '0'"),
    (["--density", "1.5"], "--density must be a number in (0, 1] or 'eie', not '1.5'"),
    (["--density", "eie"], "--density eie (the published densities) needs --eie-layers"),
    (["--cell-bits", "9"], "--cell-bits must be an integer in [1, 8], not 9"),
    (["--adc-bits", "0"], "--adc-bits must be an integer in [1, 32], not 0"),
    (["--xbar-weight-bits", "1"], "--xbar-weight-bits must be an integer in [2, 32], not 1"),
    (["--S", "17"], "--S must be an integer in [1, 16], not 17"),
    (["--E", "6"], "--E must be an integer in [1, 5], not 6"),
    (["--sme-cap", "x"], "--sme-cap must be an integer >= 1 or 'none', not 'x'"),
    (["--input-density", "2"], "--input-density must be a number in (0, 1], not '2'"),
    (["--data", "digits"], "--data digits needs a model of 64 inputs and 10 outputs; {model} is "
                           "12-9-5"),
    (["--eie-layers", "Alex-9"], "--eie-layers: unknown EIE layer 'Alex-9'; the layers are "
                                 "Alex-6, Alex-7, Alex-8, VGG-6, VGG-7, VGG-8, NT-We, NT-Wd, "
                                 "NT-LSTM"),
])
def test_bad_input_messages(tmp_path, argv, msg):
    model = str(tiny_model(tmp_path / "m.npz"))
    if "--eie-layers" not in argv:
        argv = ["--model", model, *argv]
    with pytest.raises(PermdealError, match=exact(msg.format(model=model))):
        run(*argv)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


@pytest.mark.parametrize("argv", [
    ["--data", "digits", "--vectors", "2"],          # --model on digits
    ["--vectors", "2"],                              # the digits MLP trained here
    ["--input-density", "0.3"],
])
def test_random_input_flags_are_refused_on_digits(tmp_path, monkeypatch, argv):
    def never(*args, **kwargs):
        raise AssertionError("trained before the flags were checked")
    monkeypatch.setattr(cmp, "train", never)
    flag = argv[-2]
    if "--data" in argv:
        argv = ["--model", str(tiny_model(tmp_path / "m.npz")), *argv]
    msg = (f"{flag} sets the random inputs, but the inputs here are the digits test images "
           "(random inputs come with --eie-layers, or --model without --data digits)")
    with pytest.raises(PermdealError, match=exact(msg)):
        run(*argv)


def test_model_and_eie_layers_exclusive(tmp_path):
    with pytest.raises(PermdealError, match=exact("give --model or --eie-layers, not both")):
        run("--model", str(tiny_model(tmp_path / "m.npz")), "--eie-layers", "Alex-7")
