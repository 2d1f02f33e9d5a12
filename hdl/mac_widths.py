"""The widths of a multiply-accumulate datapath as read-only properties (a lane, the SmartDeal MAC)."""

__all__ = ["MacWidths"]


class MacWidths:
    """Mixin for a component that keeps its checked widths in ``_act_bits``, ``_weight_bits`` and
    ``_acc_bits``: the properties ``act_bits``, ``weight_bits`` and ``acc_bits``."""

    @property
    def act_bits(self) -> int:
        """Width of the signed activations."""
        return self._act_bits

    @property
    def weight_bits(self) -> int:
        """Width of the signed weights."""
        return self._weight_bits

    @property
    def acc_bits(self) -> int:
        """Width of the signed accumulator."""
        return self._acc_bits
