"""colloquy's PyTorch worker: the tensor half of the torch Backend (see ../PROTOCOL.md)."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
