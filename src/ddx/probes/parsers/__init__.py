"""Pure parsers shared by the probes: text in, values out, no I/O (tests feed them samples)."""
