"""The ``permdeal`` command line: happy paths, one-line errors, atomic and safe outputs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from permdeal.gen.cli import main


def write_model(path, sizes=(12, 8, 5), seed=0, **override):
    rng = np.random.default_rng(seed)
    arrays = {}
    for i, (n, o) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"fc{i + 1}.weight"] = rng.standard_normal((o, n)) * 0.3
        arrays[f"fc{i + 1}.bias"] = rng.standard_normal(o) * 0.1
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_compress_rom_check_cycles(tmp_path, capsys):
    model = write_model(tmp_path / "m.npz")
    code, out, err = run(capsys, "compress", model, "--p", "3", "-o", tmp_path / "c")
    assert code == 0, err
    assert "fc1" in out and "12 -> 8" in out
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["manifest.json", "model.npz"]
    man = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert man["kind"] == "permdeal-model" and [l["p"] for l in man["layers"]] == [3, 3]

    code, out, err = run(capsys, "rom", tmp_path / "c", "--pes", 2, "--lanes", 2, "-o", tmp_path / "r")
    assert code == 0, err
    assert "12 images for 2 PE x 2 lanes" in out
    code, out, err = run(capsys, "check", tmp_path / "r")
    assert code == 0 and "12 ROM images" in out and " OK " in out, err

    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((3, 12)))
    code, out, err = run(capsys, "cycles", tmp_path / "c", "--pes", 2, "--lanes", 2,
                         "--inputs", tmp_path / "x.npy")
    assert code == 0 and "whole inference" in out, err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("override, message", [
    ({"fc2.weight": np.ones((5, 7))}, "layers do not chain: fc1 gives 8 outputs but fc2.weight takes 7"),
    ({"fc1.weight": np.full((8, 12), np.nan)}, "fc1.weight holds 96 NaN or infinite value(s)"),
])
def test_compress_bad_models_fail_cleanly(tmp_path, capsys, override, message):
    model = write_model(tmp_path / "m.npz", **override)
    code, out, err = run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "c")
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err and "m.npz" in err
    assert not (tmp_path / "c").exists() and leftovers(tmp_path) == []


def test_compress_missing_file_and_bad_p(tmp_path, capsys):
    code, _, err = run(capsys, "compress", tmp_path / "nope.npz", "--p", "2", "-o", tmp_path / "c")
    assert code == 2 and "nope.npz: no such file" in err
    model = write_model(tmp_path / "m.npz")
    code, _, err = run(capsys, "compress", model, "--p", "0", "-o", tmp_path / "c")
    assert code == 2 and "block size p of fc1 must be an integer >= 1, not 0" in err
    assert not (tmp_path / "c").exists()


def test_output_folder_safety(tmp_path, capsys):
    model = write_model(tmp_path / "m.npz")
    # A folder that is not a permdeal output is never overwritten.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    code, _, err = run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "mine")
    assert code == 2 and "not a permdeal output" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    # Nor a folder that holds the input.
    inside = tmp_path / "out"
    code, _, _ = run(capsys, "compress", model, "--p", "2", "-o", inside)
    assert code == 0
    moved = inside / "m2.npz"
    moved.write_bytes((tmp_path / "m.npz").read_bytes())
    code, _, err = run(capsys, "compress", moved, "--p", "2", "-o", inside)
    assert code == 2 and "holds the input" in err and moved.exists()
    # An earlier permdeal output is replaced whole.
    code, _, err = run(capsys, "compress", model, "--p", "4", "-o", tmp_path / "c")
    code, _, err = run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "c")
    assert code == 0
    man = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert [l["p"] for l in man["layers"]] == [2, 2]


def test_check_names_a_corrupted_image(tmp_path, capsys):
    run(capsys, "compress", write_model(tmp_path / "m.npz"), "--p", "2", "-o", tmp_path / "c")
    run(capsys, "rom", tmp_path / "c", "--pes", 1, "--lanes", 2, "-o", tmp_path / "r")
    img = tmp_path / "r" / "pe0_lane1_weight.hex"
    lines = img.read_text().splitlines()
    img.write_text("\n".join(lines[:-1]) + "\n")
    code, _, err = run(capsys, "check", tmp_path / "r")
    assert code == 2 and "pe0_lane1_weight.hex" in err and "truncated" in err


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "permdeal", "compress", str(tmp_path / "x.npz"),
                           "--p", "2", "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"permdeal compress: error: {tmp_path / 'x.npz'}: no such file"


def test_bench_prints_and_writes_figures(tmp_path, capsys):
    code, out, err = run(capsys, "bench", "--m", 48, "--n", 72, "--p", "3,8", "--repeat", 1,
                         "--json", tmp_path / "b.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    # No padding: every one of the 48 rows keeps one weight per block-column.
    assert [r["p"] for r in rows] == [3, 8]
    assert [r["stored_weights"] for r in rows] == [48 * 72 // 3, 48 * 72 // 8]
    assert all(r["project_and_matvec_s"] > 0 for r in rows)
    assert "project + matvec" in out
