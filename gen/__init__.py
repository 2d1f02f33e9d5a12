"""The front end: configuration, the ``permdeal`` CLI, Verilog emission, ROM images."""
