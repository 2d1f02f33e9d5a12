# amaranth: UnusedElaboratable=no
"""`permdeal gen`, `check`, `rom` and `sim` on SmartDeal folders with the layer-unit chain
(``--arch units``), and their bad input (the engine: tests/test_cli_smartdeal_engine.py)."""

import hashlib
import json

import numpy as np
import pytest
from amaranth.hdl import Const

from permdeal.cli import main
from permdeal.golden.smartdeal_cycles import model_cycles
from permdeal.golden.smartdeal_model import SmartDealModel
from permdeal.hdl.shift_add import ShiftAdd

from test_smartdeal_model import reference_forward  # the same independent reference


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def pruned_model(tmp, seed, bits, prune, group):
    """A random two-layer float model, 13 -> 9 -> 5 (``tmp/m.npz``), and its SmartDeal
    compression at ``bits`` (activations ``bits:bits/2``, weights, biases) with ``prune`` of the
    Ce rows pruned in groups of ``group`` outputs (``tmp/sd``), via the CLI; returns the random
    generator for more."""
    rng = np.random.default_rng(seed)
    np.savez(tmp / "m.npz", **{"fc1.weight": rng.standard_normal((9, 13)) * 0.4,
                               "fc1.bias": rng.standard_normal(9) * 0.1,
                               "fc2.weight": rng.standard_normal((5, 9)) * 0.4,
                               "fc2.bias": rng.standard_normal(5) * 0.1})
    assert main(["compress", str(tmp / "m.npz"), "--method", "smartdeal", "--act-format",
                 f"{bits}:{bits // 2}", "--weight-bits", str(bits), "--bias-bits", str(bits),
                 "--prune", str(prune), "--prune-group", str(group), "-o", str(tmp / "sd")]) == 0
    return rng


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A float model, its SmartDeal compression (pruned) and a permdiag one, via the CLI."""
    tmp = tmp_path_factory.mktemp("sd")
    rng = pruned_model(tmp, 4, 12, 0.3, 2)
    assert main(["compress", str(tmp / "m.npz"), "--method", "smartdeal", "--E", "2",
                 "--act-format", "12:6", "-o", str(tmp / "sd_e2")]) == 0
    assert main(["compress", str(tmp / "m.npz"), "--p", "3", "--act-format", "12:6", "-o",
                 str(tmp / "pd")]) == 0
    x = rng.integers(-2048, 2048, (5, 13))
    x[rng.random(x.shape) < 0.3] = 0
    np.save(tmp / "x.npy", x)
    return tmp


@pytest.fixture(scope="module")
def design(folders):
    assert main(["gen", "--model", str(folders / "sd"), "--arch", "units", "--lanes", "2", "-o",
                 str(folders / "d")]) == 0
    return folders / "d"


def test_gen_writes_a_design(folders, design, capsys):
    man = json.loads((design / "manifest.json").read_text())
    assert man["kind"] == "permdeal-smartdeal-design" and man["top"] == "smartdeal_net"
    assert man["config"]["lanes"] == 2
    assert [s["file"] for s in man["sources"]] == ["rtl/permdeal_rom.v", "rtl/smartdeal_net.v"]
    for s in man["sources"]:
        assert hashlib.sha256((design / s["file"]).read_bytes()).hexdigest() == s["sha256"]
    text = (design / "rtl" / "smartdeal_net.v").read_text()
    assert "module smartdeal_net(" in text and "module smartdeal_net_l1(" in text
    assert '"rom/L1_ce.hex"' in text and "src =" not in text
    for i in range(2):
        for part in ("ce", "b", "bias"):
            assert (design / "rom" / f"L{i}_{part}.hex").read_bytes() == \
                (folders / "sd" / "rom" / f"L{i}_{part}.hex").read_bytes()
    model = SmartDealModel.read(folders / "sd")
    assert man["cycles"]["per_input"] == model_cycles(model, 2).total
    assert man["ports"] == {"in_bits": 12, "out_bits": model.output_format.bits,
                            "n_inputs": 13, "n_outputs": 5}
    code, out, err = run(["check", design], capsys)
    assert code == 0 and "SmartDeal design smartdeal_net" in out and " OK " in out, err
    # the same settings give the same files
    assert main(["gen", "--model", str(folders / "sd"), "--arch", "units", "--lanes", "2", "-o",
                 str(folders / "d_again")]) == 0
    assert (folders / "d_again" / "rtl" / "smartdeal_net.v").read_text() == text


def test_gen_from_a_config_file(folders, capsys):
    cfg = folders / "g.toml"
    cfg.write_text(f'model = "{folders / "sd"}"\nname = "net3"\narch = "units"\n')
    code, out, err = run(["gen", "--config", cfg, "-o", folders / "dc"], capsys)
    assert code == 0, err
    man = json.loads((folders / "dc" / "manifest.json").read_text())
    assert man["top"] == "net3" and man["config"]["lanes"] == 3   # the default: S
    assert "3 shift-add lanes each" in out


@pytest.mark.sim
def test_sim_matches_golden_and_the_reference(folders, design, capsys):
    code, out, err = run(["sim", "--design", design, "--inputs", folders / "x.npy", "--sim",
                          "icarus", "--seed", "3", "-o", folders / "s"], capsys)
    assert code == 0, err
    y = np.load(folders / "s" / "outputs.npy")
    np.testing.assert_array_equal(y, reference_forward(folders / "sd",
                                                       np.load(folders / "x.npy")))
    rep = json.loads((folders / "s" / "report.json").read_text())
    model = SmartDealModel.read(folders / "sd")
    assert rep["golden_match"] and rep["inputs_matching"] == 5 and rep["cycles_match_model"]
    assert rep["cycles"] == [model_cycles(model, 2).total] * 5
    assert "5 of 5 input vectors match the golden model" in out and "(equal)" in out


@pytest.mark.sim
def test_sim_reports_a_wrong_design(folders, capsys, monkeypatch):
    # Negative terms without their carry-in: rebuilt weights one LSB (shifted) short.
    monkeypatch.setattr(ShiftAdd, "_carry_in", lambda self, nz, sign: Const(0, 1))
    assert main(["gen", "--model", str(folders / "sd"), "--arch", "units", "-o",
                 str(folders / "bad")]) == 0
    code, out, err = run(["sim", "--design", folders / "bad", "--inputs", folders / "x.npy",
                          "--sim", "icarus", "--seed", "1", "-o", folders / "sb"], capsys)
    assert code == 1 and "MISMATCH" in err, out + err
    assert "layer fc2, output" in err
    rep = json.loads((folders / "sb" / "report.json").read_text())
    assert not rep["golden_match"] and rep["first_mismatches"][0]["layer"] == "fc2"


def test_rom_of_a_smartdeal_model(folders, capsys):
    code, out, err = run(["rom", folders / "sd", "-o", folders / "r"], capsys)
    assert code == 0, err
    assert "6 images for 2 SmartDeal layer(s)" in out
    for f in ("L0_ce.hex", "L1_bias.hex", "manifest.json"):
        assert (folders / "r" / f).read_bytes() == (folders / "sd" / "rom" / f).read_bytes()
    code, out, err = run(["check", folders / "r"], capsys)
    assert code == 0 and "6 SmartDeal ROM images OK" in out, err
    code, out, err = run(["check", folders / "sd"], capsys)
    assert code == 0 and "SmartDeal compressed model and its 6 ROM images" in out, err


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def _rewrite(folder, name, lines):
    """Replace image ``name`` and fix its sha256 in the manifest, so only the content is wrong."""
    path = folder / name
    path.write_text("".join(f"{v}\n" for v in lines))
    man = json.loads((folder / "manifest.json").read_text())
    for img in man["images"]:
        if img["file"] == name:
            img["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(man))


def test_check_refuses_codes_outside_the_range(folders, tmp_path, capsys):
    rom = _copy(folders / "sd" / "rom", tmp_path / "rom")
    lines = (rom / "L1_ce.hex").read_text().split()
    bad = list(lines)
    bad[4] = "0b"                          # nz = 0 with sign and exponent bits set
    _rewrite(rom, "L1_ce.hex", bad)
    code, _, err = run(["check", rom], capsys)
    assert code == 2
    assert err.strip() == (f"permdeal check: error: {rom / 'L1_ce.hex'}: line 5: Ce code 11 has "
                           "nz = 0 but other bits set; outside the 5-bit codes {nz, sign, e_idx} "
                           "(a zero entry is code 0)")
    bad[4] = "3f"                          # beyond the 5-bit word
    _rewrite(rom, "L1_ce.hex", bad)
    code, _, err = run(["check", rom], capsys)
    assert code == 2 and f"{rom / 'L1_ce.hex'}: line 5: value exceeds the 5-bit word width" in err
    _rewrite(rom, "L1_ce.hex", lines)
    b_lines = (rom / "L0_b.hex").read_text().split()
    (rom / "L0_b.hex").write_text("".join(f"{v}\n" for v in b_lines[:-1]))   # one word short
    code, _, err = run(["check", rom], capsys)
    assert code == 2 and f"{rom / 'L0_b.hex'}: {len(b_lines) - 1} lines" in err, err
    assert "(truncated?)" in err
    # the same checks in a model folder's rom/ and in a design's
    d = _copy(folders / "sd", tmp_path / "sd")
    bad[4] = "0b"
    _rewrite(d / "rom", "L1_ce.hex", bad)
    code, _, err = run(["check", d], capsys)
    assert code == 2 and f"{d / 'rom' / 'L1_ce.hex'}: line 5: Ce code 11" in err
    code, _, err = run(["gen", "--model", d, "--arch", "units", "-o", tmp_path / "dd"], capsys)
    assert code == 0, err                  # gen writes its own images from model.npz
    _rewrite(tmp_path / "dd" / "rom", "L1_ce.hex", bad)
    code, _, err = run(["check", tmp_path / "dd"], capsys)
    assert code == 2 and "L1_ce.hex: line 5: Ce code 11" in err


def test_check_refuses_an_edited_design(folders, design, tmp_path, capsys):
    d = _copy(design, tmp_path / "d")
    v = d / "rtl" / "smartdeal_net.v"
    v.write_text(v.read_text().replace("module smartdeal_net(", "module smartdeal_net2(", 1))
    code, _, err = run(["check", d], capsys)
    assert code == 2 and f"{v}: sha256 does not match" in err
    code, _, err = run(["sim", "--design", d, "--inputs", folders / "x.npy", "-o",
                        tmp_path / "s"], capsys)
    assert code == 2 and "sha256 does not match" in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv, message", [
    (["--pes", "2"], "--pes does not apply to a SmartDeal model with --arch units (the design "
                     "has one layer unit per layer; --lanes sets its shift-add unit's lanes)"),
    (["--scan-width", "4"], "--scan-width does not apply to a SmartDeal model"),
    (["--multiplier", "booth"], "--multiplier does not apply to a SmartDeal model with --arch "
                                "units (its MAC is the layer unit's own)"),
    (["--batch", "1"], "--batch does not apply to a SmartDeal model with --arch units"),
    (["--shape", "4x4"], "--shape describes the layers, which come from --model; leave it out"),
    (["--lanes", "4"], "--lanes (the shift-add unit's lanes, 1 to S = 3): lanes must be an "
                       "integer in [1, 3], not 4"),
    (["--name", "9net"], "network module name must be a Verilog identifier, not '9net'"),
])
def test_gen_bad_input(folders, tmp_path, capsys, argv, message):
    code, _, err = run(["gen", "--model", folders / "sd", "--arch", "units", *argv, "-o",
                        tmp_path / "d"], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "d").exists()


def test_gen_needs_an_output(folders, capsys):
    code, _, err = run(["gen", "--model", folders / "sd"], capsys)
    assert code == 2 and "--output is required" in err


def test_rom_bad_input(folders, tmp_path, capsys):
    code, _, err = run(["rom", folders / "sd", "--lanes", "2", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "--lanes does not apply to a SmartDeal model" in err
    code, _, err = run(["rom", folders / "pd", "--lanes", "2", "-o", tmp_path / "r"], capsys)
    assert code == 2 and "--pes is required for a permuted-diagonal model" in err
    assert not (tmp_path / "r").exists()
    code, _, err = run(["rom", folders / "pd", "--pes", "1", "--lanes", "2", "-o",
                        tmp_path / "r"], capsys)
    assert code == 0, err


def test_sim_bad_input(folders, design, tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.zeros((2, 12), np.int64))
    code, _, err = run(["sim", "--design", design, "--inputs", tmp_path / "wide.npy", "-o",
                        tmp_path / "s"], capsys)
    assert code == 2 and "expected (batch, 13) inputs, got shape (2, 12)" in err
    np.save(tmp_path / "big.npy", np.full((1, 13), 5000, np.int64))
    code, _, err = run(["sim", "--design", design, "--inputs", tmp_path / "big.npy", "-o",
                        tmp_path / "s"], capsys)
    assert code == 2 and "integer inputs must be codes of 12:6 (-2048..2047)" in err
    # images of another structure (E = 2) cannot drive this design
    code, _, err = run(["sim", "--design", design, "--inputs", folders / "x.npy", "--images",
                        folders / "sd_e2" / "rom", "-o", tmp_path / "s"], capsys)
    assert code == 2 and "not the structure it was generated for" in err, err
    assert not (tmp_path / "s").exists()


def _slots(folder):
    """Per layer ``(slots, skipped)`` by brute force from the Ce images: slot (i, c) is row
    ``c mod h`` of block ``i * ceil(r/h) + c div h``; it is skipped when its S codes have no
    ``nz`` bit and it is not its output's last chunk."""
    man = json.loads((folder / "manifest.json").read_text())
    out = []
    for i, d in enumerate(man["layers"]):
        h = d["smartdeal"]
        S, rows, E = h["S"], h["rows_per_block"], h["E"]
        codes = [int(v, 16) for v in (folder / "rom" / f"L{i}_ce.hex").read_text().split()]
        r = -(-d["in"] // S)
        bpr = -(-r // rows)
        skipped = 0
        for o in range(d["out"]):
            for c in range(r):
                base = ((o * bpr + c // rows) * rows + c % rows) * S
                if c != r - 1 and not any(codes[base + k] >> (E + 1) for k in range(S)):
                    skipped += 1
        out.append((d["out"] * r, skipped))
    return out


@pytest.fixture(scope="module")
def pruned(folders):
    """The float model compressed with 60% of the Ce rows pruned per 3 outputs: whole slots
    skipped."""
    assert main(["compress", str(folders / "m.npz"), "--method", "smartdeal", "--act-format",
                 "12:6", "--prune", "0.6", "--prune-group", "3", "-o",
                 str(folders / "sd_p")]) == 0
    return folders / "sd_p"


@pytest.mark.parametrize("lanes", [None, 1, 2])
def test_cycles_of_a_smartdeal_model(folders, pruned, capsys, lanes):
    argv = ["cycles", pruned, "--arch", "units", "--inputs", folders / "x.npy"]
    code, out, err = run(argv + (["--lanes", lanes] if lanes else []), capsys)
    assert code == 0, err
    model = SmartDealModel.read(pruned)
    S = model.layers[0].codes.S
    unit = ShiftAdd(S, model.config["E"], model.config["b_bits"], lanes=lanes or S)
    PT = unit.cycles_per_row                       # the RTL unit's own figure
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in ("fc1", "fc2")}
    cyc = model_cycles(model, lanes)
    assert len(rows) == 2
    for (slots, skipped), l, lc in zip(_slots(pruned), model.layers, cyc.layers):
        row = rows[l.name]
        assert row[4:9] == [str(slots), str(slots - skipped), str(skipped), str(PT),
                            f"{PT / S:.2f}"], row
        assert int(row[9]) == (slots - skipped) * PT          # ideal
        assert int(row[10]) == lc.compute and int(row[10]) > int(row[9])
        assert row[11] == f"{lc.compute / ((slots - skipped) * S):.2f}"
    assert sum(skipped for _, skipped in _slots(pruned)) > 0     # pruned rows skipped
    total = 13 + sum(lc.compute for lc in cyc.layers)         # n inputs loaded, then the layers
    assert f"per input vector: {total} cycles (load 13 + " in out
    assert f"5 input vector(s), one at a time: {5 * total} cycles" in out
    assert f"{lanes or S} shift-add lane(s) each" in out


def test_cycles_bad_input(folders, tmp_path, capsys):
    for argv, message in (
            (["--pes", "2"], "--pes does not apply to a SmartDeal model"),
            (["--scan-width", "4"], "--scan-width does not apply to a SmartDeal model"),
            (["--lanes", "4"], "--lanes (the shift-add unit's lanes, 1 to S = 3): lanes must be "
                               "an integer in [1, 3], not 4")):
        code, _, err = run(["cycles", folders / "sd", "--arch", "units", *argv], capsys)
        assert code == 2 and message in err, err
    np.save(tmp_path / "wide.npy", np.zeros((2, 12), np.int64))
    code, _, err = run(["cycles", folders / "sd", "--inputs", tmp_path / "wide.npy"], capsys)
    assert code == 2 and "expected (batch, 13) inputs, got shape (2, 12)" in err
    code, _, err = run(["cycles", folders / "pd", "--lanes", "2", "--inputs",
                        folders / "x.npy"], capsys)
    assert code == 2 and "--pes is required for a permuted-diagonal model" in err
    code, _, err = run(["cycles", folders / "pd", "--pes", "1", "--lanes", "2"], capsys)
    assert code == 2 and "--inputs is required for a permuted-diagonal model" in err
    code, out, err = run(["cycles", folders / "pd", "--pes", "1", "--lanes", "2", "--inputs",
                          folders / "x.npy"], capsys)
    assert code == 0 and "scan width 8" in out, err


def _edit_manifest(src, dst, edit):
    """A copy of the design ``src`` at ``dst`` whose manifest ``edit`` changed; the manifest's
    original value of the edited field is what ``edit`` returns."""
    d = _copy(src, dst)
    man = json.loads((d / "manifest.json").read_text())
    before = edit(man)
    (d / "manifest.json").write_text(json.dumps(man))
    return d, before


def test_check_refuses_edited_derived_fields_of_a_design(folders, design, tmp_path, capsys):
    def lanes(m):
        m["config"]["lanes"] = 4           # S = 3: the unit has 1 to 3 lanes
    def top(m):
        m["top"] = "x y"                   # not the configured name, no rtl/x y.v
    def cycles(m):
        before, m["cycles"]["per_input"] = m["cycles"]["per_input"], 5
        return before
    def ports(m):
        m["ports"]["n_inputs"] = 14        # the model has 13 inputs
    cases = [(lanes, "config: lanes is 4, but the shift-add unit has 1 to S = 3 lanes"),
             (top, "top 'x y' is not the configured name 'smartdeal_net' with its Verilog "
                   "rtl/x y.v among the sources"),
             (cycles, "manifest.cycles.per_input is 5, expected {}"),
             (ports, "manifest.ports.n_inputs is 14, expected 13")]
    for i, (edit, message) in enumerate(cases):
        d, before = _edit_manifest(design, tmp_path / f"d{i}", edit)
        code, _, err = run(["check", d], capsys)
        assert code == 2 and err.strip() == (f"permdeal check: error: {d / 'manifest.json'}: "
                                             + message.format(before)
                                             + ("" if edit in (lanes, top) else
                                                " (from the model; the manifest was edited)")), err
    code, out, err = run(["check", design], capsys)     # the unedited design still passes
    assert code == 0 and "OK" in out, err


def test_gen_names_a_model_folder_that_is_not_one(folders, design, tmp_path, capsys):
    for folder, problem in (
            (design, f"{design / 'manifest.json'}: not a permdeal-model manifest (kind is "
                     "'permdeal-smartdeal-design')"),
            (folders / "sd" / "rom", f"{folders / 'sd' / 'rom' / 'manifest.json'}: not a "
                                     "permdeal-model manifest (kind is 'permdeal-smartdeal-rom')"),
            (tmp_path / "none", f"{tmp_path / 'none' / 'manifest.json'}: missing")):
        code, _, err = run(["gen", "--model", folder, "-o", tmp_path / "g"], capsys)
        assert code == 2 and err.startswith(f"permdeal gen: error: --model: {problem}"), err
        assert "(it takes a compressed-model folder, from permdeal compress)" in err
        assert "--pes is required" not in err and not (tmp_path / "g").exists()
