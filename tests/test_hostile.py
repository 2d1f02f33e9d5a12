"""Hostile but realistic input, by class: every case asserts the exit status, exactly one line on
stderr naming the culprit, and that the folders the command was pointed at are unchanged, file by
file (their sha256). The classes:

1. a user's file inside an earlier output (added or edited, at any depth) is never deleted;
2. manifests are checked field by field (types, ranges, cross-checks) and every path they name
   stays inside its folder;
3. unbounded work (sizes, simulated cycles) is refused past a limit, naming the flag that lifts it;
4. every argument is checked at the edge (seeds, names the file system refuses);
5. SIGTERM and SIGINT leave nothing behind (tests/test_signals.py);
6. flags that do not apply are refused, not ignored;
7. errors are one line, also when a tool's log is behind them.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from permdeal.cli import main


def tree(folder):
    """``{relative path: sha256}`` of every file below ``folder`` (and ``{}`` for none)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    if folder.is_file():
        return {".": hashlib.sha256(folder.read_bytes()).hexdigest()}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def refused(capsys, argv, culprit, watch=(), code=2):
    """Run ``permdeal argv``: exit ``code``, one line on stderr naming ``culprit``, every folder
    of ``watch`` unchanged. Returns the line."""
    before = {str(w): tree(w) for w in watch}
    try:
        got = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own checks (types, choices) exit from the parser
        got = e.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert got == code, (got, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"permdeal {argv[0]}: error: "), err
    assert culprit in lines[0], err
    for w in watch:
        assert tree(w) == before[str(w)], f"{w} changed"
    return lines[0]


# -- fixtures: small folders of every kind -------------------------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A float model, its PD and SmartDeal compressions, their ROM images and designs, inputs."""
    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    np.savez(d / "m.npz", **{"fc1.weight": rng.standard_normal((8, 12)) * 0.3,
                             "fc1.bias": rng.standard_normal(8) * 0.1,
                             "fc2.weight": rng.standard_normal((5, 8)) * 0.3,
                             "fc2.bias": np.zeros(5)})
    np.save(d / "x.npy", rng.standard_normal((2, 12)))
    np.save(d / "y.npy", np.array([1, 3]))
    for argv in (["compress", d / "m.npz", "--p", "4", "-o", d / "pd"],
                 ["compress", d / "m.npz", "--method", "smartdeal", "-o", d / "sd"],
                 ["rom", d / "pd", "--pes", "1", "--lanes", "2", "-o", d / "rom"],
                 ["gen", "--model", d / "pd", "--pes", "1", "--lanes", "2", "-o", d / "gpd"],
                 ["gen", "--model", d / "sd", "--arch", "units", "-o", d / "gsd"],
                 ["gen", "--model", d / "sd", "--pes", "2", "--lanes", "2", "-o", d / "gsde"]):
        assert main([str(a) for a in argv]) == 0, argv
    return d


def copy(folders, name, tmp_path):
    """A private copy of the fixture folder ``name`` to edit."""
    dst = tmp_path / name
    shutil.copytree(folders / name, dst, symlinks=True)
    return dst


def edit_manifest(folder, change):
    path = folder / "manifest.json"
    man = json.loads(path.read_text())
    change(man)
    path.write_text(json.dumps(man))
    return folder


# -- 1. a user's file in an earlier output is never deleted ---------------------------------------

def earlier_output(folder):
    """An earlier permdeal output at ``folder`` (files at two depths, its ownership record)."""
    from permdeal import atomic
    with atomic.output_dir(folder) as tmp:
        (tmp / "logs").mkdir()
        (tmp / "logs" / "run.log").write_text("log\n")
        (tmp / "report.json").write_text("{}\n")
    return folder


#: Every command that writes an output folder, as ``(name, argv with OUT for the folder)``.
WRITERS = [
    ("compress", lambda d: ["compress", d / "m.npz", "--p", "4", "-o", "OUT"]),
    ("compress-smartdeal", lambda d: ["compress", d / "m.npz", "--method", "smartdeal",
                                      "-o", "OUT"]),
    ("rom", lambda d: ["rom", d / "pd", "--pes", "1", "--lanes", "2", "-o", "OUT"]),
    ("gen-model", lambda d: ["gen", "--model", d / "pd", "--pes", "1", "--lanes", "2",
                             "-o", "OUT"]),
    ("gen-smartdeal", lambda d: ["gen", "--model", d / "sd", "--arch", "units", "-o", "OUT"]),
    ("gen-smartdeal-engine", lambda d: ["gen", "--model", d / "sd", "--lanes", "2", "-o",
                                        "OUT"]),
    ("gen-shapes", lambda d: ["gen", "--pes", "1", "--lanes", "2", "--shape", "8x12",
                              "--p", "4", "-o", "OUT"]),
    ("sim", lambda d: ["sim", "--design", d / "gpd", "--inputs", d / "x.npy", "--sim",
                       "icarus", "-o", "OUT"]),
    ("verify", lambda d: ["verify", "--pes", "1", "--lanes", "2", "--shape", "8x12", "--p", "4",
                          "--sim", "icarus", "-o", "OUT"]),
    ("synth", lambda d: ["synth", "--design", d / "gpd", "-o", "OUT"]),
    ("compare", lambda d: ["compare", "--model", d / "m.npz", "-o", "OUT"]),
    ("demo", lambda d: ["demo", "--no-synth", "-o", "OUT"]),
]


@pytest.mark.parametrize("change", ["added", "edited", "added-deep", "folder", "link"])
@pytest.mark.parametrize("name, argv", WRITERS, ids=[w[0] for w in WRITERS])
def test_a_user_file_in_an_earlier_output_is_kept(folders, tmp_path, capsys, name, argv,
                                                  change):
    out = earlier_output(tmp_path / "out")
    culprit = {"added": "wrapper.v", "edited": "logs/run.log", "added-deep": "the folder logs/a",
               "folder": "mine", "link": "logs/link"}[change]
    if change == "added":
        (out / "wrapper.v").write_text("module wrapper; endmodule\n")
    elif change == "edited":
        (out / "logs" / "run.log").write_text("my notes\n")
    elif change == "added-deep":
        (out / "logs" / "a" / "b").mkdir(parents=True)
        (out / "logs" / "a" / "b" / "c.v").write_text("x\n")
    elif change == "folder":
        (out / "mine").mkdir()
    else:
        (out / "logs" / "link").symlink_to(folders / "m.npz")
    line = refused(capsys, [out if a == "OUT" else a for a in argv(folders)], culprit,
                   watch=[out])
    assert "not overwriting it" in line and "permdeal did not" in line or "changed" in line


# -- 2. manifests: every field checked, every path inside its folder -----------------------------

def _set(*keys, value):
    def change(man):
        obj = man
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value
    return change


def _drop(*keys):
    def change(man):
        obj = man
        for k in keys[:-1]:
            obj = obj[k]
        del obj[keys[-1]]
    return change


#: Edits of a PD design's manifest and what the refusal names.
DESIGN_EDITS = [
    ("ports-missing", _drop("ports"), "manifest.ports must be an object, not null"),
    ("ports-null", _set("ports", value=None), "manifest.ports must be an object, not null"),
    ("in-bits-string", _set("ports", "in_bits", value="16"), "manifest.ports.in_bits"),
    ("in-bits-wrong", _set("ports", "in_bits", value=12), "manifest.ports.in_bits is 12"),
    ("n-inputs-wrong", _set("ports", "n_inputs", value=13), "manifest.ports.n_inputs is 13"),
    ("n-outputs-wrong", _set("ports", "n_outputs", value=4), "manifest.ports.n_outputs is 4"),
    ("ports-extra", _set("ports", "clk_mhz", value=100), "unexpected field 'clk_mhz'"),
    ("source-escape", _set("sources", 0, "file", value="../../../../etc/passwd"),
     "'../../../../etc/passwd' must be a relative path inside"),
    ("source-absolute", _set("sources", 0, "file", value="/etc/passwd"),
     "'/etc/passwd' must be a relative path inside"),
    ("source-not-rtl", _set("sources", 0, "file", value="manifest.json"),
     "must be a file directly in rtl/"),
    ("source-dotdot-inside", _set("sources", 0, "file", value="rtl/../rtl/engine.v"),
     "must be a relative path inside"),
    ("source-number", _set("sources", 0, "file", value=7), "file must be a string"),
    ("sources-null", _set("sources", value=None), "sources must be a list"),
    ("rom-dir-escape", _set("rom_dir", value="../../etc"), "rom_dir must be 'rom'"),
    ("rom-dir-absolute", _set("rom_dir", value="/tmp"), "rom_dir must be 'rom'"),
    ("rom-dir-number", _set("rom_dir", value=1), "rom_dir must be a string"),
    ("top-edited", _set("top", value="other"), "top 'other' is not the configured name"),
    ("top-number", _set("top", value=3), "top must be a string"),
    ("pes-string", _set("config", "n_pe", value="1"), "n_pe must be an integer"),
    ("pes-zero", _set("config", "n_pe", value=0), "PE count (--pes) must be an integer >= 1"),
    ("lanes-edited", _set("config", "lanes", value=4), "edited since permdeal wrote it"),
    ("scan-width-edited", _set("config", "scan_width", value=4), "manifest.geometry.bank_rows"),
    ("scan-width-huge", _set("config", "scan_width", value=10**9),
     "config: --scan-width 1000000000 makes a 1000000000-input priority encoder, past the limit"),
    ("name-edited", _set("config", "name", value="other"), "top 'permdeal_engine' is not the"),
    ("layers-empty", _set("layers", value=[]), "layers is empty"),
    ("layer-p-string", _set("layers", 0, "p", value="4"), "p must be an integer"),
    ("geometry-edited", _set("geometry", "bank_rows", value=7), "manifest.geometry.bank_rows"),
    ("fingerprint-dropped", _drop("fingerprint"), "edited since permdeal wrote it"),
    ("generator-edited", _set("generator", value="permdeal 9"), "edited since permdeal wrote it"),
    ("kind", _set("kind", value="permdeal-model"), "not a permdeal-design"),
    ("version", _set("format_version", value=99), "unsupported format_version 99"),
]


@pytest.mark.parametrize("command", ["sim", "synth"])
@pytest.mark.parametrize("name, change, culprit", DESIGN_EDITS, ids=[e[0] for e in DESIGN_EDITS])
def test_a_design_manifest_is_checked_field_by_field(folders, tmp_path, capsys, command, name,
                                                     change, culprit):
    design = edit_manifest(copy(folders, "gpd", tmp_path), change)
    argv = {"sim": ["sim", "--design", design, "--inputs", folders / "x.npy", "--sim", "icarus",
                    "-o", tmp_path / "r"],
            "synth": ["synth", "--design", design, "-o", tmp_path / "r"]}[command]
    refused(capsys, argv, culprit, watch=[design])
    assert not (tmp_path / "r").exists()


#: Edits of a SmartDeal design's manifest.
SD_DESIGN_EDITS = [
    ("ports-null", _set("ports", value=None), "ports must be an object"),
    ("in-bits-wrong", _set("ports", "in_bits", value=8), "manifest.ports.in_bits is 8"),
    ("source-escape", _set("sources", 0, "file", value="../../../../etc/passwd"),
     "must be a relative path inside"),
    ("rom-dir-escape", _set("rom_dir", value="../../x"), "rom_dir must be 'rom'"),
    ("top-edited", _set("top", value="x"), "top 'x' is not the configured name"),
    ("lanes-zero", _set("config", "lanes", value=0), "lanes must be"),
    ("cycles-edited", _set("cycles", "per_input", value=1), "manifest.cycles.per_input is 1"),
]


#: Edits of a SmartDeal engine design's manifest.
SDE_DESIGN_EDITS = [
    *SD_DESIGN_EDITS[:-1],                 # the chain's, but its cycle count
    ("lanes-not-the-product", _set("config", "lanes", value=3), "lanes is 3, not pes x "
     "lanes_per_pe = 4"),
    ("tile-runs-edited", _set("layers", 0, "tile_runs", value=[[[0, 1]]]),
     "manifest.layers[0].tile_runs"),
    ("batch-edited", _set("config", "batch", value=2), "edited since permdeal wrote it"),
    ("rom-sha-edited", _set("rom_manifest_sha256", value="0" * 64), "sha256 does not match"),
]


@pytest.mark.parametrize("folder, name, change, culprit",
                         [("gsd", *e) for e in SD_DESIGN_EDITS]
                         + [("gsde", *e) for e in SDE_DESIGN_EDITS],
                         ids=[f"units-{e[0]}" for e in SD_DESIGN_EDITS]
                         + [f"engine-{e[0]}" for e in SDE_DESIGN_EDITS])
def test_a_smartdeal_design_manifest_is_checked(folders, tmp_path, capsys, folder, name, change,
                                                culprit):
    design = edit_manifest(copy(folders, folder, tmp_path), change)
    refused(capsys, ["sim", "--design", design, "--inputs", folders / "x.npy", "--sim", "icarus",
                     "-o", tmp_path / "r"], culprit, watch=[design])


def test_a_source_through_a_symbolic_link_out_of_the_folder(folders, tmp_path, capsys):
    design = copy(folders, "gpd", tmp_path)
    outside = tmp_path / "outside.v"
    outside.write_text("module x; endmodule\n")
    man = json.loads((design / "manifest.json").read_text())
    rel = man["sources"][0]["file"]
    (design / rel).unlink()
    (design / rel).symlink_to(outside)
    man["sources"][0]["sha256"] = hashlib.sha256(outside.read_bytes()).hexdigest()
    (design / "manifest.json").write_text(json.dumps(man))
    refused(capsys, ["sim", "--design", design, "--inputs", folders / "x.npy", "--sim", "icarus",
                     "-o", tmp_path / "r"], "leads outside", watch=[design])


def test_a_rom_folder_through_a_symbolic_link(folders, tmp_path, capsys):
    design = copy(folders, "gpd", tmp_path)
    shutil.rmtree(design / "rom")
    (design / "rom").symlink_to(folders / "rom")
    refused(capsys, ["sim", "--design", design, "--inputs", folders / "x.npy", "--sim", "icarus",
                     "-o", tmp_path / "r"], "leads outside", watch=[design])


#: Edits of ROM-image and model manifests, checked by ``permdeal check``.
FOLDER_EDITS = [
    ("rom", "image-escape", _set("images", 0, "file", value="../pd/model.npz"),
     "must be a plain file name"),
    ("rom", "image-absolute", _set("images", 0, "file", value="/etc/passwd"),
     "must be a plain file name"),
    ("rom", "width-string", _set("memories", "weight", "width", value="16"), "memories"),
    ("rom", "depth-wrong", _set("memories", "weight", "depth", value=3), "memories"),
    ("rom", "pes-null", _set("config", "n_pe", value=None), "n_pe"),
    ("rom", "placement-edited", _set("layers", 0, "placement", "slots", value=9), "placement"),
    ("pd", "layer-in-negative", _set("layers", 0, "in", value=-12), "in"),
    ("pd", "layer-p-zero", _set("layers", 0, "p", value=0), "p"),
    ("pd", "formats-string", _set("layers", 0, "formats", value="16:8"), "formats"),
    ("pd", "method-other", _set("method", value="toy2"), "toy2"),
    ("pd", "layers-null", _set("layers", value=None), "layers"),
    ("sd/rom", "image-escape", _set("images", 0, "file", value="../../etc/passwd"),
     "../../etc/passwd"),
    ("sd/rom", "image-width-string", _set("images", 0, "width", value="5"), "width"),
    ("sd", "S-string", _set("config", "S", value="3"), "S"),
    ("sd", "files-null", _set("files", value=None), "files"),
]


@pytest.mark.parametrize("kind, name, change, culprit", FOLDER_EDITS,
                         ids=[f"{e[0]}-{e[1]}" for e in FOLDER_EDITS])
def test_model_and_rom_manifests_are_checked(folders, tmp_path, capsys, kind, name, change,
                                             culprit):
    top, _, sub = kind.partition("/")
    folder = copy(folders, top, tmp_path)
    edit_manifest(folder / sub if sub else folder, change)
    refused(capsys, ["check", folder], culprit, watch=[folder])


# -- 3. unbounded work is refused, naming the flag that lifts the limit --------------------------

UNBOUNDED = [
    ("gen-lanes", lambda d, t: ["gen", "--pes", "2", "--lanes", "1000000", "--shape", "16x16",
                                "--p", "4", "-o", t / "o"], "2000000 lanes"),
    ("gen-pes", lambda d, t: ["gen", "--pes", "100000", "--lanes", "1", "--shape", "16x16",
                              "--p", "4", "-o", t / "o"], "100000 lanes"),
    ("gen-model-lanes", lambda d, t: ["gen", "--model", d / "pd", "--pes", "64", "--lanes", "64",
                                      "-o", t / "o"], "4096 lanes"),
    ("gen-scan-width", lambda d, t: ["gen", "--pes", "1", "--lanes", "2", "--scan-width",
                                     "100000", "--shape", "16x16", "--p", "4", "-o", t / "o"],
     "--scan-width 100000"),
    ("rom-lanes", lambda d, t: ["rom", d / "pd", "--pes", "512", "--lanes", "8", "-o", t / "o"],
     "4096 lanes"),
    ("synth-lanes", lambda d, t: ["synth", "--pes", "2048", "--lanes", "1", "--shape", "16x16",
                                  "--p", "4", "-o", t / "o"], "2048 lanes"),
    ("verify-lanes", lambda d, t: ["verify", "--pes", "64", "--lanes", "32", "--sim", "icarus",
                                   "-o", t / "o"], "2048 lanes"),
    ("verify-random-weights", lambda d, t: ["verify", "--pes", "1", "--lanes", "1", "--shape",
                                            "8192x8192", "--p", "1", "--sim", "icarus",
                                            "-o", t / "o"], "67108864 random weights"),
    ("verify-long-simulation", lambda d, t: ["verify", "--pes", "1", "--lanes", "8", "--shape",
                                             "4096x4096", "--p", "1", "--sim", "icarus",
                                             "--tests", "engine_network", "-o", t / "o"],
     "simulated cycles, an estimated"),
    ("compare-vectors", lambda d, t: ["compare", "--eie-layers", "Alex-6", "--vectors",
                                      "100000000"], "--vectors 100000000"),
    ("bench-draws", lambda d, t: ["bench", "--parts", "eie", "--draws", "100000000"],
     "--draws 100000000"),
    ("bench-golden", lambda d, t: ["bench", "--parts", "golden", "--golden-m", "100000",
                                   "--golden-n", "100000"], "--golden-m 100000"),
    ("bench-smartdeal-layer", lambda d, t: ["bench-smartdeal", "--parts", "layer", "--m",
                                            "100000", "--n", "100000"], "--m 100000"),
]


@pytest.mark.parametrize("name, argv, culprit", UNBOUNDED, ids=[u[0] for u in UNBOUNDED])
def test_unbounded_work_is_refused(folders, tmp_path, capsys, name, argv, culprit):
    line = refused(capsys, argv(folders, tmp_path), culprit, watch=[tmp_path])
    assert "pass --allow-large to lift it" in line
    assert list(tmp_path.iterdir()) == []


def test_a_long_simulation_is_refused(tmp_path, capsys):
    """20,000 input vectors of a dense 64-64-5 design on one lane: an estimated 4 h on Icarus.

    The estimate runs the cycle model on every input before refusing (~0.35 ms each), so the
    refusal is reached with many cycles per input (4432 here, p = 1 on a single lane) rather
    than with 400,000 inputs of the small fixture design (78 cycles each, minutes of cycle
    model): the same check of permdeal.limits, past the same 2 h limit."""
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "m.npz", **{"fc1.weight": rng.standard_normal((64, 64)) * 0.3,
                                    "fc1.bias": np.zeros(64),
                                    "fc2.weight": rng.standard_normal((5, 64)) * 0.3,
                                    "fc2.bias": np.zeros(5)})
    for argv in (["compress", tmp_path / "m.npz", "--p", "1", "-o", tmp_path / "pd"],
                 ["gen", "--model", tmp_path / "pd", "--pes", "1", "--lanes", "1",
                  "-o", tmp_path / "g"]):
        assert main([str(a) for a in argv]) == 0, argv
    capsys.readouterr()
    x = tmp_path / "many.npy"
    np.save(x, np.ones((20_000, 64), np.int16))
    refused(capsys, ["sim", "--design", tmp_path / "g", "--inputs", x, "--sim", "icarus",
                     "-o", tmp_path / "r"], "20000 input(s): about", watch=[tmp_path / "g"])
    assert not (tmp_path / "r").exists()


def test_allow_large_lifts_the_limit(folders, tmp_path, capsys):
    argv = ["rom", folders / "pd", "--pes", "4", "--lanes", "300", "-o", tmp_path / "o"]
    refused(capsys, argv, "1200 lanes")
    assert main([str(a) for a in argv] + ["--allow-large"]) == 0
    assert len(json.loads((tmp_path / "o" / "manifest.json").read_text())["images"]) == 3600


# -- 4. every argument checked at the edge -------------------------------------------------------

SEED = str(2 ** 32)
EDGES = [
    ("train-seed", lambda d, t: ["train", "--seed", SEED, "-o", t / "m.npz"], "--seed"),
    ("accuracy-seed", lambda d, t: ["accuracy", "--seed", SEED], "--seed"),
    ("eval-seed", lambda d, t: ["eval", d / "pd", "--seed", SEED], "--seed"),
    ("sim-seed", lambda d, t: ["sim", "--design", d / "gpd", "--inputs", d / "x.npy",
                               "--seed", SEED, "-o", t / "r"], "--seed"),
    ("verify-seed", lambda d, t: ["verify", "--pes", "1", "--lanes", "2", "--seed", SEED,
                                  "-o", t / "v"], "--seed"),
    ("bench-seed", lambda d, t: ["bench", "--seed", SEED], "--seed"),
    ("compare-seed", lambda d, t: ["compare", "--seed", SEED], "--seed"),
    ("demo-seed", lambda d, t: ["demo", "--seed", SEED, "-o", t / "d"], "--seed"),
    ("bench-smartdeal-seed", lambda d, t: ["bench-smartdeal", "--seed", SEED], "--seed"),
    ("synth-seed", lambda d, t: ["synth", "--design", d / "gpd", "--seed", SEED,
                                 "-o", t / "s"], "--seed"),
    ("compress-long-name", lambda d, t: ["compress", d / "m.npz", "--p", "4", "-o",
                                         t / ("a" * 300)], "File name too long"),
    ("gen-long-name", lambda d, t: ["gen", "--model", d / "pd", "--pes", "1", "--lanes", "2",
                                    "-o", t / ("b" * 300)], "File name too long"),
    ("train-long-name", lambda d, t: ["train", "--epochs", "1", "-o", t / ("c" * 300)],
     "File name too long"),
    ("compress-under-a-file", lambda d, t: ["compress", d / "m.npz", "--p", "4", "-o",
                                            d / "m.npz" / "out"], "m.npz"),
    ("rom-under-a-file", lambda d, t: ["rom", d / "pd", "--pes", "1", "--lanes", "2", "-o",
                                       d / "x.npy" / "r"], "x.npy"),
    ("act-format-negative", lambda d, t: ["compress", d / "m.npz", "--p", "4", "--act-format",
                                          "16:-40", "-o", t / "c"], "16:-40"),
    ("gen-out-format-negative", lambda d, t: ["gen", "--pes", "1", "--lanes", "2", "--shape",
                                              "8x8", "--p", "4", "--out-format", "8:-9",
                                              "-o", t / "g"], "8:-9"),
    ("format-garbage", lambda d, t: ["compress", d / "m.npz", "--p", "4", "--weight-format",
                                     "16:x", "-o", t / "c"], "16:x"),
    ("inputs-a-folder", lambda d, t: ["cycles", d / "pd", "--pes", "1", "--lanes", "2",
                                      "--inputs", d / "pd"], "--inputs"),
    ("inputs-not-npy", lambda d, t: ["cycles", d / "pd", "--pes", "1", "--lanes", "2",
                                     "--inputs", d / "m.npz"], "is an .npz archive"),
    ("model-not-a-folder", lambda d, t: ["gen", "--model", d / "m.npz", "--pes", "1", "--lanes",
                                         "1", "-o", t / "g"], "--model"),
    ("check-not-permdeal", lambda d, t: ["check", t], "manifest.json: missing"),
    ("lanes-zero", lambda d, t: ["gen", "--pes", "1", "--lanes", "0", "--shape", "8x8",
                                 "-o", t / "g"], "--lanes"),
    ("pes-text", lambda d, t: ["gen", "--pes", "two", "--lanes", "1", "--shape", "8x8",
                               "-o", t / "g"], "--pes"),
]


@pytest.mark.parametrize("name, argv, culprit", EDGES, ids=[e[0] for e in EDGES])
def test_arguments_are_checked_at_the_edge(folders, tmp_path, capsys, name, argv, culprit):
    refused(capsys, argv(folders, tmp_path), culprit, watch=[folders, tmp_path])


# -- 6. flags that do not apply are refused ------------------------------------------------------

NOT_APPLYING = [
    ("verify-random-pes", ["verify", "--random-configs", "2", "--pes", "4", "-o", "OUT"],
     "--pes does not apply to --random-configs"),
    ("verify-random-shape", ["verify", "--random-configs", "2", "--shape", "8x8", "-o", "OUT"],
     "--shape does not apply to --random-configs"),
    ("verify-random-tests", ["verify", "--random-configs", "2", "--tests", "writeback",
                             "-o", "OUT"], "--tests does not apply"),
    ("verify-random-waves", ["verify", "--random-configs", "2", "--waves", "-o", "OUT"],
     "--waves does not apply"),
    ("eval-labels-alone", ["eval", "PD", "--labels", "Y"], "--labels goes with --inputs"),
    ("eval-inputs-alone", ["eval", "PD", "--inputs", "X"], "--inputs needs --labels"),
    ("eval-inputs-seed", ["eval", "PD", "--inputs", "X", "--labels", "Y", "--seed", "3"],
     "--seed splits the digits data set, which --inputs replaces"),
    ("synth-device-generic", ["synth", "--design", "GPD", "--device", "LFE5U-25F", "-o", "OUT"],
     "--device applies to the ecp5 target"),
    ("synth-speed-asic", ["synth", "--design", "GPD", "--target", "asic", "--speed", "7",
                          "-o", "OUT"], "--speed applies to the ecp5 target"),
    ("synth-asic-mhz-ecp5", ["synth", "--design", "GPD", "--target", "generic", "--asic-mhz",
                             "300", "-o", "OUT"], "--asic-mhz applies to the asic target"),
    ("synth-liberty-generic", ["synth", "--design", "GPD", "--liberty", "X", "-o", "OUT"],
     "--liberty applies to the asic target"),
    ("bench-flow-flag", ["bench", "--parts", "eie", "--flow-pes", "4"],
     "--flow-pes applies to the flow part"),
    ("bench-rtl-flag", ["bench", "--parts", "golden", "--scale", "8"],
     "--scale applies to the rtl part"),
    ("bench-no-rtl", ["bench", "--no-rtl", "--rtl-pes", "2"], "--no-rtl skips it"),
    ("bench-golden-flag", ["bench", "--parts", "eie", "--golden-m", "64"],
     "--golden-m applies to the golden part"),
    ("bench-smartdeal-synth", ["bench-smartdeal", "--parts", "layer", "--synth"],
     "--synth applies to the unit part"),
    ("bench-smartdeal-m", ["bench-smartdeal", "--parts", "digits", "--m", "64"],
     "--m applies to the layer part"),
    ("rom-smartdeal-scan-width", ["rom", "SD", "--scan-width", "4", "-o", "OUT"],
     "--scan-width does not apply to a SmartDeal model"),
    ("cycles-smartdeal-pes", ["cycles", "SD", "--arch", "units", "--pes", "2"],
     "--pes does not apply"),
    ("cycles-smartdeal-engine-scan-width", ["cycles", "SD", "--lanes", "2", "--scan-width", "4"],
     "--scan-width does not apply to a SmartDeal model (the engine"),
    ("gen-smartdeal-relu", ["gen", "--model", "SD", "--relu", "-o", "OUT"],
     "--relu describes the layers"),
    ("compress-smartdeal-p", ["compress", "M", "--method", "smartdeal", "--p", "2", "-o", "OUT"],
     "does not apply to method 'smartdeal'"),
    ("compare-vectors-digits", ["compare", "--vectors", "3"], "--vectors sets the random inputs"),
    ("synth-design-and-shape", ["synth", "--design", "GPD", "--shape", "8x8", "-o", "OUT"],
     "--design takes a generated design as it is"),
]


@pytest.mark.parametrize("name, argv, culprit", NOT_APPLYING, ids=[n[0] for n in NOT_APPLYING])
def test_flags_that_do_not_apply_are_refused(folders, tmp_path, capsys, name, argv, culprit):
    names = {"OUT": tmp_path / "out", "PD": folders / "pd", "SD": folders / "sd",
             "GPD": folders / "gpd", "M": folders / "m.npz", "X": folders / "x.npy",
             "Y": folders / "y.npy"}
    refused(capsys, [names.get(a, a) for a in argv], culprit, watch=[folders, tmp_path])
    assert not (tmp_path / "out").exists()


# -- 7. one line, also when a tool's log is behind the error ------------------------------------

@pytest.mark.synth
def test_a_failed_tool_is_one_line_and_its_files_are_kept(folders, tmp_path, capsys,
                                                         monkeypatch):
    bad = tmp_path / "bad.lib"
    bad.write_text("library (broken) { cell (\n")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    line = refused(capsys, ["synth", "--design", folders / "gpd", "--target", "asic",
                            "--liberty", bad, "-o", tmp_path / "rep"], "failed",
                   watch=[folders / "gpd"])
    kept = tmp_path / "rep.failed"
    assert f"{kept}/" in line and (kept / "yosys.log").is_file()
    assert not (tmp_path / "rep").exists()
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == []


# -- from review: reruns, races, outputs named in a config ---------------------------------------

def test_an_output_holding_permdeal_s_own_link_is_replaced(folders, tmp_path, capsys):
    """``sim`` links the ROM images into its build folder; its own link is in the record."""
    argv = ["sim", "--design", folders / "gpd", "--inputs", folders / "x.npy", "--sim", "icarus",
            "--seed", "1", "-o", tmp_path / "r"]
    assert main([str(a) for a in argv]) == 0
    assert any(p.is_symlink() for p in (tmp_path / "r").rglob("*"))
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    (tmp_path / "r" / "build-icarus" / "rom").unlink()
    (tmp_path / "r" / "build-icarus" / "rom").symlink_to(folders)
    refused(capsys, argv, "a symbolic link permdeal did not make", watch=[tmp_path / "r"])


def test_a_file_added_while_the_command_runs_is_kept(tmp_path):
    from permdeal import atomic
    from permdeal.errors import PermdealError
    out = earlier_output(tmp_path / "out")
    with pytest.raises(PermdealError, match="holds notes.txt, which permdeal did not write "
                                            r"\(added while the command ran\)"):
        with atomic.output_dir(out) as tmp:
            (tmp / "new.txt").write_text("new\n")
            (out / "notes.txt").write_text("mine\n")
    assert (out / "notes.txt").read_text() == "mine\n" and not (out / "new.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_verify_takes_its_output_from_the_config(folders, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.toml").write_text('pes = 1\nlanes = 2\nshape = "8x12"\np = "4"\n'
                                     'output = "fromcfg"\n')
    code = main(["verify", "--config", "v.toml", "--sim", "icarus", "--tests", "perm_index"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "fromcfg" / "summary.json").is_file() and "wrote fromcfg/" in out


@pytest.mark.parametrize("argv, culprit", [
    (["verify", "--random-configs", "1"], "-o/--output (the results folder) is required"),
    (["verify", "--pes", "1", "--lanes", "2", "--model", "SD", "-o", "OUT"],
     "verify runs the PermDNN engine's benches, which take permuted-diagonal models"),
    (["compress", "M", "--method", "smartdeal", "--rows-per-block", "100000000", "-o", "OUT"],
     "--rows-per-block 100000000: a block holds at most the 4 chunks"),
    (["cycles", "PD", "--pes", "2000", "--lanes", "2000", "--inputs", "X"], "4000000 lanes"),
    (["synth", "--sweep", "pes=1,2", "--pes", "4", "--lanes", "1", "--shape", "8x8", "--p", "4",
      "-o", "OUT"], "--pes is the swept parameter (pes=1,2)"),
])
def test_review_cases(folders, tmp_path, capsys, argv, culprit):
    names = {"OUT": tmp_path / "out", "SD": folders / "sd", "M": folders / "m.npz",
             "PD": folders / "pd", "X": folders / "x.npy"}
    refused(capsys, [names.get(a, a) for a in argv], culprit, watch=[folders])


def test_cycles_takes_allow_large(folders, capsys):
    assert main(["cycles", str(folders / "pd"), "--pes", "40", "--lanes", "40", "--inputs",
                 str(folders / "x.npy"), "--allow-large"]) == 0
    assert "1600 lanes" in capsys.readouterr().out


@pytest.mark.synth
def test_a_folder_of_the_user_s_where_the_logs_would_go(folders, tmp_path, capsys):
    bad = tmp_path / "bad.lib"
    bad.write_text("library (broken) { cell (\n")
    (tmp_path / "rep.failed").mkdir()
    (tmp_path / "rep.failed" / "notes.txt").write_text("mine\n")
    refused(capsys, ["synth", "--design", folders / "gpd", "--target", "asic", "--liberty", bad,
                     "-o", tmp_path / "rep"], "its files are not kept",
            watch=[tmp_path / "rep.failed"])


def test_check_reads_a_pd_design_folder(folders, capsys):
    assert main(["check", str(folders / "gpd")]) == 0
    assert "engine design permdeal_engine (2 Verilog files, 1 PE x 2 lanes)" in \
        capsys.readouterr().out
