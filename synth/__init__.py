"""Yosys / nextpnr flows and area, resource and Fmax reports (see the synthesis issue)."""
