"""cocotb testbenches, drivers and scoreboards, and the simulator runner."""
