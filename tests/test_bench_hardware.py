"""``permdeal bench-smartdeal --parts hardware`` (``permdeal.api.bench_hardware``): the rows it
builds from a design's synthesis and power reports, and the weight storage it counts, against
figures computed here. (The part itself synthesizes and power-measures three designs, minutes:
it is a benchmark, run by hand; its flows have their own tests.)"""

import numpy as np
import pytest

from permdeal.api import bench_hardware as bh
from permdeal.golden.compress import QuantSpec, compress_permdiag, compress_smartdeal
from permdeal.golden.model import FloatLayer


def layers(seed=0, sizes=(12, 8, 4)):
    rng = np.random.default_rng(seed)
    return [FloatLayer(f"fc{i}", rng.standard_normal((o, n)), rng.standard_normal(o) * 0.1)
            for i, (n, o) in enumerate(zip(sizes, sizes[1:]))]


def test_storage_bits():
    """PD: 16 bits per stored weight (M' N' p of them) plus ceil(log2 p) index bits per block;
    SmartDeal: (E + 2) bits per Ce code plus b_B bits per basis code."""
    rng = np.random.default_rng(1)
    pd = compress_permdiag(layers(), [4, 4], QuantSpec(16, 16, 16),
                           calibration=rng.standard_normal((16, 12)))
    want = sum(16 * (-(-m // 4)) * (-(-n // 4)) * 4 + (-(-m // 4)) * (-(-n // 4)) * 2
               for m, n in [(8, 12), (4, 8)])
    assert bh.storage_bits(pd) == want
    sd = compress_smartdeal(layers(), QuantSpec(16, 16, 16),
                            calibration=rng.standard_normal((16, 12)))
    want = sum(l.codes.codes.size * (l.codes.E + 2) + l.codes.b_int.size * l.codes.b_bits
               for l in sd.layers)
    assert bh.storage_bits(sd) == want


def test_a_row_from_its_reports(monkeypatch, tmp_path):
    """A design's row: accuracy from the model, cycles and utilization as given, area and Fmax
    from the synthesis report, images per second at that Fmax, energy from the power report."""
    import permdeal.api.designs as designs
    import permdeal.api.power as power
    rng = np.random.default_rng(2)
    model = compress_smartdeal(layers(), QuantSpec(16, 16, 16),
                               calibration=rng.standard_normal((16, 12)))
    codes = rng.integers(-300, 300, (6, 12))
    y = np.argmax(model.forward(codes), 1)
    y[0] = (y[0] + 1) % 4                                     # one label the model misses
    syn = {"asic": {"fmax_mhz": 200.0, "logic_area_um2": 1.5e6, "total_area_um2": 2.0e6,
                    "memories": {"total": {"bits": 1000, "area_um2": 5e5}}}}
    monkeypatch.setattr(designs, "synthesize", lambda *a, **k: syn)
    monkeypatch.setattr(power, "energy", lambda *a, **k: {"energy_per_inference_pj": 1234.0,
                                                          "clock_mhz": 200.0})
    row = bh._figures(tmp_path, model, codes, y, 800.0, 0.9, codes[:2], tmp_path)
    assert row["accuracy"] == pytest.approx(5 / 6)
    assert row["images_per_s"] == pytest.approx(200e6 / 800)
    assert (row["logic_um2"], row["memory_bits"], row["memory_um2"], row["total_um2"],
            row["fmax_mhz"], row["energy_pj"]) == (1.5e6, 1000, 5e5, 2.0e6, 200.0, 1234.0)
    assert row["storage_bits"] == bh.storage_bits(model)
    text = bh.hardware_table({"designs": {"permdiag": row, "smartdeal_batch1": row,
                                          "smartdeal_batch8": row},
                              "pes": 4, "lanes_per_pe": 2, "p": 4, "lanes": 8, "prune": 0.55,
                              "batch": 8, "energy_images": 16, "sizes": [12, 8, 4], "seed": 0,
                              "seconds": 1.0})
    assert "250,000" in text and "1.2 nJ" in text and "2.000 mm^2" in text
