"""numpy golden model: number formats, compression, bit-exact arithmetic, cycle model, ROM images."""
