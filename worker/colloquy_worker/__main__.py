"""python -m colloquy_worker: serves the protocol of ../PROTOCOL.md on stdin/stdout."""
import sys

from .server import main

sys.exit(main())
