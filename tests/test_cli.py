"""The ``permdeal`` command line: happy paths, one-line errors, atomic and safe outputs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from permdeal.cli import main


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
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        ".permdeal-output.json", "manifest.json", "model.npz"]
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
    with pytest.raises(SystemExit) as e:
        main(["compress", str(model), "--p", "0", "-o", str(tmp_path / "c")])
    assert e.value.code == 2
    assert "argument --p: block size p must be an integer >= 1, not 0" in capsys.readouterr().err
    code, _, err = run(capsys, "compress", model, "--p", "2,2,2", "-o", tmp_path / "c")
    assert code == 2 and "got 3 block sizes p for 2 layers" in err
    assert not (tmp_path / "c").exists()


def test_output_folder_safety(tmp_path, capsys):
    model = write_model(tmp_path / "m.npz")
    # A folder that is not a permdeal output is never overwritten.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    code, _, err = run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "mine")
    assert code == 2 and "not an earlier permdeal output" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    # Nor one that merely has a manifest.json of somebody else's.
    (tmp_path / "mine" / "manifest.json").write_text('{"name": "web-app"}')
    code, _, err = run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "mine")
    assert code == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "precious"
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
    code, out, err = run(capsys, "bench", "--parts", "golden", "--m", 48, "--n", 72, "--p", "3,8",
                         "--repeat", 1, "--json", tmp_path / "b.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["golden"]["rows"]
    # No padding: every one of the 48 rows keeps one weight per block-column.
    assert [r["p"] for r in rows] == [3, 8]
    assert [r["stored_weights"] for r in rows] == [48 * 72 // 3, 48 * 72 // 8]
    assert all(r["project_and_matvec_s"] > 0 for r in rows)
    assert "project + matvec" in out


def test_earlier_output_with_user_files_is_kept(tmp_path, capsys):
    model = write_model(tmp_path / "m.npz")
    assert run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "c")[0] == 0
    (tmp_path / "c" / "NOTES.txt").write_text("mine")
    code, _, err = run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "c")
    assert code == 2 and "holds NOTES.txt, which permdeal did not write" in err
    assert (tmp_path / "c" / "NOTES.txt").read_text() == "mine"


def test_outputs_follow_umask_and_leave_nothing_on_failure(tmp_path, capsys, monkeypatch):
    import os
    old = os.umask(0o022)
    try:
        model = write_model(tmp_path / "m.npz")
        assert run(capsys, "compress", model, "--p", "2", "-o", tmp_path / "c")[0] == 0
        assert (tmp_path / "c" / "model.npz").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "c").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)
    bad = write_model(tmp_path / "bad.npz", **{"fc2.weight": np.ones((5, 7))})
    code, _, _ = run(capsys, "compress", bad, "--p", "2", "-o", tmp_path / "deep" / "er" / "out")
    assert code == 2 and not (tmp_path / "deep").exists()
    monkeypatch.chdir(tmp_path / "c")
    code, _, err = run(capsys, "compress", model, "--p", "2", "-o", ".")
    assert code == 2 and "current folder" in err


def test_single_file_outputs_are_not_overwritten(tmp_path, capsys):
    precious = tmp_path / "precious.npz"
    precious.write_bytes(b"mine")
    code, _, err = run(capsys, "train", "-o", precious, "--hidden", "8", "--epochs", 1)
    assert code == 2 and "exists; pass --force" in err and precious.read_bytes() == b"mine"
    code, out, err = run(capsys, "train", "-o", precious, "--hidden", "8", "--epochs", 1,
                         "--force")
    assert code == 0, err
    with np.load(precious) as z:
        assert z.files == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    code, _, err = run(capsys, "bench", "--parts", "golden", "--m", 8, "--n", 8, "--p", 2,
                       "--repeat", 1, "--json", tmp_path)
    assert code == 2 and "is a folder" in err


@pytest.mark.parametrize("make, message", [
    (lambda d: np.save(d / "x.npy", np.zeros((0, 12))), "holds no inputs"),
    (lambda d: np.save(d / "x.npy", np.zeros((3, 11))), "expected (batch, 12) inputs, got shape (3, 11)"),
    (lambda d: np.save(d / "x.npy", np.array([["a"] * 12])), "holds <U1 values"),
    (lambda d: np.save(d / "x.npy", np.full((2, 12), np.nan)), "NaN or infinite"),
    (lambda d: np.savez(d / "x.npy", a=np.zeros(3)), "is an .npz archive"),
])
def test_cycles_bad_inputs(tmp_path, capsys, make, message):
    run(capsys, "compress", write_model(tmp_path / "m.npz"), "--p", "2", "-o", tmp_path / "c")
    make(tmp_path)
    x = tmp_path / "x.npy"
    if not x.exists():  # np.savez appends .npz
        (tmp_path / "x.npy.npz").rename(x)
    code, _, err = run(capsys, "cycles", tmp_path / "c", "--pes", 1, "--lanes", 1, "--inputs", x)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_eval_checks_labels(tmp_path, capsys):
    run(capsys, "compress", write_model(tmp_path / "m.npz"), "--p", "2", "-o", tmp_path / "c")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((4, 12)))
    for labels in (np.array([0, 1, 2]), np.array([0, 1, 2, 5]), np.array([0.0, 1, 2, 3])):
        np.save(tmp_path / "y.npy", labels)
        code, _, err = run(capsys, "eval", tmp_path / "c", "--inputs", tmp_path / "x.npy",
                           "--labels", tmp_path / "y.npy")
        assert code == 2 and "expected 4 class indices in [0, 5)" in err
    np.save(tmp_path / "y.npy", np.array([0, 1, 4, 3]))
    code, out, err = run(capsys, "eval", tmp_path / "c", "--inputs", tmp_path / "x.npy",
                         "--labels", tmp_path / "y.npy")
    assert code == 0 and "on 4 inputs" in out, err


def test_eval_names_labels_out_of_range(tmp_path, capsys):
    run(capsys, "compress", write_model(tmp_path / "m.npz"), "--p", "2", "-o", tmp_path / "c")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((4, 12)))
    np.save(tmp_path / "y.npy", np.array([0, 7, 2, -1]))     # the model has 5 classes
    code, _, err = run(capsys, "eval", tmp_path / "c", "--inputs", tmp_path / "x.npy",
                       "--labels", tmp_path / "y.npy")
    assert code == 2 and err.strip() == ("permdeal eval: error: --labels: expected 4 class "
                                         "indices in [0, 5), found -1..7"), err


@pytest.mark.parametrize("argv, message", [
    (["bench", "--seed", "-1"], "argument --seed: seed must be an integer in [0, 4294967295], not -1"),
    (["compress", "m.npz", "--p", "2,x", "-o", "o"], "argument --p: expected an integer, got 'x'"),
    (["compress", "m.npz", "--p", "2", "--act-bits", "40", "-o", "o"],
     "argument --act-bits: bit width must be at most 32"),
])
def test_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
