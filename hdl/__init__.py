"""Amaranth generators: permutation index, PE, non-zero detector, PE array, SmartDeal unit."""
