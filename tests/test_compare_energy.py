"""The energy column of ``permdeal compare`` (permdeal/methods/energy.py, docs/design.md 13.1)
against arithmetic written here.

The prices are checked against Horowitz's table as the docs quote it; each format's counted
energy on small layers is recomputed here from brute-force counts (loops over the matrices and
inputs) and the table's numbers; DRAM mode streams each stored bit at most once; the claims'
verdicts; then one measured run (``--measure-energy``) of the PD engine on two inputs, and the
bad-input messages. Random cases use fixed seeds.
"""

import json
import math
import re

import numpy as np
import pytest

from test_compare import (eie_entries_by_walking, radix2_fft, run, sparse_inputs, st_of,
                          tiny_model)  # the same helpers

from permdeal import methods
from permdeal.api import compare as cmp
from permdeal.errors import PermdealError
from permdeal.golden import eie, smartdeal as sd
from permdeal.golden.circulant import BlockCirculant
from permdeal.golden.permdiag import PermDiag
from permdeal.synth import energy as prices

N45 = prices.NODE_45NM
# 16 bits is halfway from 8 to 32 on a log scale: the geometric mean of the table's two points
MULT16, ADD16, ADD32 = math.sqrt(0.2 * 3.1), math.sqrt(0.03 * 0.1), 0.1


def sram(width, bank_bits):
    """One access of ``width`` bits to a memory of ``bank_bits`` (below 8 KB: the energy halves
    for every factor of 4 in size, the table's 8 KB -> 32 KB slope)."""
    size = max(1, math.ceil(bank_bits / width)) * width / 8
    slope = math.log(2) / math.log(4)
    return 10.0 * (size / 8192) ** slope * width / 64


def test_prices_are_the_table():
    assert prices.op_pj("mult", 8, N45) == pytest.approx(0.2)
    assert prices.op_pj("mult", 32, N45) == pytest.approx(3.1)
    assert prices.op_pj("mult", 16, N45) == pytest.approx(MULT16)
    assert prices.op_pj("add", 32, N45) == pytest.approx(0.1)
    assert prices.op_pj("add", 16, N45) == pytest.approx(ADD16)
    assert prices.access_pj(64, 8 * 1024 // 8, N45) == pytest.approx(10.0)
    assert prices.access_pj(64, 1024 * 1024 // 8, N45) == pytest.approx(100.0)
    assert prices.dram_pj(64) == pytest.approx(1300.0)
    # 0.18 um: the same rule as the memories, 16 times the 45 nm figure
    assert prices.op_pj("mult", 16) == pytest.approx(16 * MULT16)
    with pytest.raises(ValueError, match="op must be one of"):
        prices.op_pj("div", 16)


def test_pd_energy_by_hand():
    m, n, p = 12, 16, 4
    W = np.random.default_rng(3).standard_normal((m, n))
    pd = PermDiag.from_dense(W, p)
    X = sparse_inputs(n, 4, 4)
    st = st_of("--pes", "2", "--lanes", "2")
    banks = 4
    nnz = np.mean([sum(1 for v in x if v != 0) for x in X])
    macs = (m // p) * nnz
    want = {
        "arithmetic": macs * (MULT16 + ADD32),
        "weights": macs * sram(16, m * n // p * 16 / banks),
        "index": macs * sram(2, (m // p) * (n // p) * 2 / banks),
        "activations": nnz * sram(16, n * 16) + m * sram(16, m * 16),
        "accumulators": 2 * macs * sram(32, m * 32 / banks),
    }
    got = methods.get("permdiag").figures(pd, X, st, None)
    for part, v in want.items():
        assert got["energy"][part] == pytest.approx(v, abs=2e-3), part
    assert got["energy_pj"] == pytest.approx(sum(want.values()), abs=1e-2)


def test_dense_dram_streams_each_stored_bit_at_most_once():
    m, n = 6, 10
    W = np.random.default_rng(5).standard_normal((m, n))
    X = sparse_inputs(n, 3, 6)
    nnz = np.mean([sum(1 for v in x if v != 0) for x in X])
    for where in ("sram", "dram"):
        got = methods.get("dense").figures(W, X, st_of("--weight-memory", where), None)
        if where == "sram":
            sram_weights = got["energy"]["weights"]
            assert sram_weights == pytest.approx(m * nnz * sram(16, m * n * 16 / 8), abs=2e-3)
        else:
            assert got["energy"]["weights"] == pytest.approx(
                min(m * nnz * 16, m * n * 16) * 1300 / 64, abs=2e-3)
            assert got["energy"]["weights"] > 100 * sram_weights
    # every input non-zero: a weight read once per inference at most, whatever the count
    full = methods.get("dense").figures(W, np.ones((1, n)), st_of("--weight-memory", "dram"),
                                        None)
    assert full["energy"]["weights"] == pytest.approx(m * n * 16 * 1300 / 64, abs=2e-3)


def test_pd_dram_caps_the_index_at_its_memory():
    """Every input non-zero: each stored weight is read once, each block's index p times; from
    DRAM an inference streams each stored bit once, so the index costs its memory, not p times
    it."""
    m, n, p = 8, 12, 4
    pd = PermDiag.from_dense(np.random.default_rng(2).standard_normal((m, n)), p)
    got = methods.get("permdiag").figures(pd, np.ones((1, n)), st_of("--weight-memory", "dram"),
                                          None)
    blocks = (m // p) * (n // p)
    assert got["energy"]["weights"] == pytest.approx(blocks * p * 16 * 1300 / 64, abs=2e-3)
    assert got["energy"]["index"] == pytest.approx(blocks * 2 * 1300 / 64, abs=2e-3)


class Ops:
    """A complex number that counts real multiplies and adds: a complex product is 4 multiplies
    and 2 adds, a complex sum 2 adds."""

    mults = adds = 0

    def __init__(self, v):
        self.v = complex(v)

    def __add__(self, o):
        Ops.adds += 2
        return Ops(self.v + o.v)

    def __sub__(self, o):
        Ops.adds += 2
        return Ops(self.v - o.v)

    def times(self, w):
        Ops.mults += 4
        Ops.adds += 2
        return Ops(self.v * w)


@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_fft_adds_count_a_radix2_fft(k):
    Ops.mults = Ops.adds = 0
    radix2_fft([Ops(v) for v in range(k)])
    lg = (k - 1).bit_length()
    assert (Ops.mults, Ops.adds) == (2 * k * lg, 3 * k * lg)


def test_circulant_energy_by_hand():
    m, n, k = 8, 12, 4
    rng = np.random.default_rng(12)
    bc = BlockCirculant((m, n), k, rng.standard_normal((m // k, n // k, k)))
    X = sparse_inputs(n, 4, 13)
    X[1, :8] = 0.0  # two whole zero blocks
    st = st_of()
    B, mb, nb, lg = 8, m // k, n // k, 2
    pointwise = 4 * 1 + 2   # k = 4: bins 0 and 2 real, bin 1 complex
    want = dict.fromkeys(("arithmetic", "weights", "activations", "accumulators"), 0.0)
    for x in X:
        live = sum(1 for J in range(nb) if np.any(x[J * k:(J + 1) * k] != 0))
        pairs, iffts = live * mb, mb if live else 0
        mults = (live + iffts) * 2 * k * lg + pairs * pointwise
        adds = (live + iffts) * 3 * k * lg + pairs * pointwise
        want["arithmetic"] += mults * MULT16 + adds * ADD32
        want["weights"] += pairs * k * sram(16, mb * nb * k * 16 / B)
        want["activations"] += (live * k * sram(16, n * 16) + m * sram(16, m * 16)
                                + (live * k + pairs * k) * sram(16, nb * k * 16))
        want["accumulators"] += 2 * pairs * k * sram(32, mb * k * 32 / B)
    got = methods.get("circulant").figures(bc, X, st, None)
    for part, v in want.items():
        assert got["energy"][part] == pytest.approx(v / len(X), abs=2e-3), part


def test_smartdeal_energy_by_hand():
    m, n, S = 5, 11, 3
    W = np.random.default_rng(10).standard_normal((m, n))
    dec = sd.decompose(W, S=S, E=3)
    enc = sd.quantize(dec, 8)
    X = sparse_inputs(n, 3, 11)
    st = st_of()                       # 4 x 2 = 8 multipliers, 2 rebuild units of S
    units, B = 8 // S, 8
    r = -(-n // S)
    ce = dec.ce.reshape(m, r, S)
    nz = sum(1 for v in dec.ce.ravel() if v != 0)
    macs, rebuilt = 0.0, 0
    for i in range(m):
        for c in range(r):
            if np.any(ce[i, c] != 0) or c == r - 1:
                cols = range(c * S, min(n, c * S + S))   # the last chunk ends at the matrix
                rebuilt += len(cols)
                macs += np.mean([sum(1 for j in cols if x[j] != 0) for x in X])
    nnz = np.mean([sum(1 for v in x if v != 0) for x in X])
    want = {
        "arithmetic": macs * (MULT16 + ADD32) + 2 * S * nz * ADD16,
        "weights": dec.ce.size * sram(5, dec.ce.size * 5 / units)
        + dec.b.size * sram(8, dec.b.size * 8 / units)
        + (rebuilt + macs) * sram(16, 2 * B * 16 / B),
        "activations": nnz * sram(16, n * 16) + m * sram(16, m * 16),
        "accumulators": 2 * macs * sram(32, m * 32 / B),
    }
    got = methods.get("smartdeal").figures((dec, enc), X, st, None)
    for part, v in want.items():
        assert got["energy"][part] == pytest.approx(v, abs=2e-3), part
    assert got["energy"]["index"] == 0


def test_eie_energy_counts_pointers_fifos_and_entries():
    m, n = 16, 10
    W = np.random.default_rng(7).standard_normal((m, n))
    X = sparse_inputs(n, 3, 8)
    st = st_of("--pes", "2", "--lanes", "2")
    eie_m = methods.get("eie")
    obj = eie_m.build(cmp.Net(cmp.dense_mlp([(W, np.zeros(m))]), ["l"], X), None, st).layers[0]
    fig = eie_m.figures(obj, X, st, None)
    s, pes = obj.storage(), 4
    nnz = np.mean([sum(1 for v in x if v != 0) for x in X])
    entries = np.mean([eie_entries_by_walking(eie.prune(W, 0.25), x, pes)[0] for x in X])
    assert fig["multiplies"] == entries
    want_index = 2 * pes * nnz * sram(s["pointer_width"], s["pointer_bits"] / pes)
    want_weights = entries * (sram(8, s["entry_storage_bits"] / pes)
                              + sram(16, s["codebook_storage_bits"]))
    assert fig["energy"]["index"] == pytest.approx(want_index, abs=2e-3)
    assert fig["energy"]["weights"] == pytest.approx(want_weights, abs=2e-3)
    assert fig["energy"]["activations"] == pytest.approx(
        nnz * sram(16, n * 16) + m * sram(16, m * 16)
        + 2 * pes * nnz * sram(16, st.fifo_depth * 16), abs=2e-3)
    assert fig["energy"]["arithmetic"] == pytest.approx(entries * (MULT16 + ADD32), abs=2e-3)
    assert fig["energy"]["accumulators"] == pytest.approx(
        2 * entries * sram(32, m * 32 / pes), abs=2e-3)
    assert fig["energy_pj"] == pytest.approx(sum(fig["energy"][k] for k in (
        "arithmetic", "weights", "index", "activations", "accumulators")), abs=1e-2)


def test_claims_verdicts():
    def fmt(name, pj):
        return {"format": name, "total": {"energy_pj": pj}}
    out = cmp.claims([fmt("dense", 30.0), fmt("permdiag", 10.0), fmt("eie", 35.0),
                      fmt("circulant", 20.0), fmt("smartdeal", 12.0)])
    got = {(c["format"], c["over"]): (c["ours"], c["verdict"]) for c in out}
    assert got[("permdiag", "circulant")] == (2.0, "below")
    assert got[("permdiag", "eie")] == (3.5, "within")
    assert got[("smartdeal", "dense")] == (2.5, "above")
    assert cmp.claims([fmt("dense", 30.0)])[0]["ours"] is None


def test_dram_favours_the_smaller_store(tmp_path):
    """In DRAM the weights' traffic dominates, so the format that stores fewer bits gains: each
    format's DRAM/SRAM energy grows, and SmartDeal (fewer bits than dense) closes on dense."""
    model = str(tiny_model(tmp_path / "m.npz", sizes=(24, 18, 6)))
    res = {}
    for where in ("sram", "dram"):
        out = tmp_path / f"{where}.json"
        assert run("--model", model, "--p", "3", "--k", "3", "--vectors", "2",
                   "--weight-memory", where, "--json", str(out)) == 0
        res[where] = {f["format"]: f["total"] for f in json.loads(out.read_text())["formats"]}
    for name, tot in res["sram"].items():
        if tot["energy_pj"] is not None:
            assert res["dram"][name]["energy_pj"] > tot["energy_pj"]
    ratio = {w: res[w]["dense"]["energy_pj"] / res[w]["smartdeal"]["energy_pj"] for w in res}
    assert res["sram"]["smartdeal"]["storage_bits"] < res["sram"]["dense"]["storage_bits"]
    assert ratio["dram"] > ratio["sram"]
    assert res["sram"]["sme"]["energy_pj"] is None  # analog: not counted


def test_measure_energy_of_the_hardware(tmp_path, capsys):
    model = str(tiny_model(tmp_path / "m.npz"))
    out = tmp_path / "c.json"
    assert run("--model", model, "--p", "3", "--k", "3", "--vectors", "2",
               "--measure-energy", "2", "--json", str(out)) == 0
    res = json.loads(out.read_text())
    fmts = {f["format"]: f for f in res["formats"]}
    assert [k for k, f in fmts.items() if f.get("measured_energy")] == ["permdiag", "smartdeal"]
    printed = capsys.readouterr().out
    for name, design in (("permdiag", "4 PE x 2 lanes"),
                         ("smartdeal", "SmartDeal, 2 layer unit(s) of 3 shift-add lanes")):
        me = fmts[name]["measured_energy"]
        assert me["design"] == design
        assert me["inputs"] == 2 and me["golden_match"] is True
        # the same two inputs: the counted model's figure on them is the table's
        assert me["counted_same_inputs_pj"] == pytest.approx(fmts[name]["total"]["energy_pj"],
                                                             abs=1e-2)
        assert me["energy_pj"] == pytest.approx(me["energy_per_inference_pj_180nm"] / 16,
                                                rel=1e-3)
        assert me["energy_pj"] > 0
        assert (f"measured, {fmts[name]['label']} hardware ({design}; permdeal power, first 2 "
                "input(s)") in printed


@pytest.mark.parametrize("argv, msg", [
    (["--measure-energy", "-1"], "--measure-energy must be an integer >= 0, not -1"),
    (["--eie-layers", "Alex-7", "--measure-energy", "1"],
     "--measure-energy simulates whole designs, and EIE's layers are too big for that: "
     "`permdeal bench --parts power` measures them at reduced scale"),
])
def test_bad_energy_flags(tmp_path, argv, msg):
    model = str(tiny_model(tmp_path / "m.npz"))
    if "--eie-layers" not in argv:
        argv = ["--model", model, *argv]
    with pytest.raises(PermdealError, match="^" + re.escape(msg) + "$"):
        run(*argv)
    with pytest.raises(PermdealError, match="--weight-memory must be one of sram, dram, not 'rom'"):
        cmp.run(model=model, weight_memory="rom")
