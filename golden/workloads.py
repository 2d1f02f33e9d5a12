"""EIE's benchmark layers and published design (docs/references.md, EIE Table III): the workloads of
``permdeal bench`` and ``permdeal compare``.

One source of truth for these figures: every comparison with EIE reads them from here.
"""

from dataclasses import dataclass

from permdeal.errors import PermdealError

__all__ = ["EIE", "EIE_LAYERS", "EieLayer", "eie_layer"]


@dataclass(frozen=True)
class EieLayer:
    """One of EIE's benchmark FC layers: ``n_in`` inputs, ``n_out`` outputs, the fraction of
    non-zero weights and of non-zero input activations, and EIE's load-balanced ideal and
    measured ("actual") time in microseconds on its 64-PE, 800 MHz design, batch 1."""

    name: str
    n_in: int
    n_out: int
    weight_density: float
    act_density: float
    ideal_us: float
    actual_us: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_out, n_in)``: the weight matrix's shape (outputs x inputs, as everywhere here)."""
        return (self.n_out, self.n_in)

    @property
    def ideal_cycles(self) -> float:
        """EIE's ideal time in cycles of its clock."""
        return self.ideal_us * EIE["clock_mhz"]

    @property
    def actual_cycles(self) -> float:
        """EIE's actual time in cycles of its clock."""
        return self.actual_us * EIE["clock_mhz"]


#: EIE Table III (docs/references.md), in its order.
EIE_LAYERS = (
    EieLayer("Alex-6", 9216, 4096, 0.09, 0.351, 28.1, 30.3),
    EieLayer("Alex-7", 4096, 4096, 0.09, 0.353, 11.7, 12.2),
    EieLayer("Alex-8", 4096, 1000, 0.25, 0.375, 8.9, 9.9),
    EieLayer("VGG-6", 25088, 4096, 0.04, 0.183, 28.1, 34.4),
    EieLayer("VGG-7", 4096, 4096, 0.04, 0.375, 7.9, 8.7),
    EieLayer("VGG-8", 4096, 1000, 0.23, 0.411, 7.3, 8.4),
    EieLayer("NT-We", 4096, 600, 0.10, 1.0, 5.2, 8.0),
    EieLayer("NT-Wd", 600, 8791, 0.11, 1.0, 13.0, 13.9),
    EieLayer("NT-LSTM", 1201, 2400, 0.10, 1.0, 6.5, 7.5),
)

#: EIE's design (docs/references.md): 64 PEs at 800 MHz in 45 nm, 8-deep activation FIFOs, 16-bit
#: arithmetic, 4-bit codebook indices and relative row indices.
EIE = {"design": "EIE, 64 PE, 45 nm", "n_pe": 64, "clock_mhz": 800, "node_nm": 45,
       "area_mm2": 40.8, "power_w": 0.59, "gops": 102, "fifo_depth": 8, "weight_bits": 16,
       "codebook_bits": 4, "index_bits": 4,
       "source": "docs/references.md (Han et al., ISCA 2016, Table III)"}


def eie_layer(name: str) -> EieLayer:
    """The layer of :data:`EIE_LAYERS` called ``name`` (case-insensitive)."""
    for layer in EIE_LAYERS:
        if layer.name.lower() == name.lower():
            return layer
    raise PermdealError(f"unknown EIE layer {name!r}; the layers are "
                        f"{', '.join(l.name for l in EIE_LAYERS)}")
