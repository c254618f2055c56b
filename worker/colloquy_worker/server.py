"""
The request loop: say hello, then read a request, dispatch it by `op`, write the reply, until stdin ends or a
shutdown. Every exception is answered: its traceback goes to a file under the temp folder and the reply carries a
one-line message; a UserError (or running out of memory) leaves the worker usable, anything else is "internal".
"""
import os
import platform
import sys
import tempfile
import traceback

import torch

from . import PROTOCOL_VERSION, __version__
from .adapters import create_adapter, export_adapter, import_adapter
from .errors import UserError
from .protocol import FrameError, read_frame, write_frame
from .sample import sample
from .score import last_hidden, score, top_logprobs
from .state import Worker, open_model
from .train import backward, clip_grad_norm, step, zero_grad

OPS = {
    "open": open_model,
    "sample": sample,
    "score": score,
    "top_logprobs": top_logprobs,
    "last_hidden": last_hidden,
    "backward": backward,
    "zero_grad": zero_grad,
    "clip_grad_norm": clip_grad_norm,
    "step": step,
    "create_adapter": create_adapter,
    "import_adapter": import_adapter,
    "export_adapter": export_adapter,
}


def hello() -> dict:
    cuda = torch.cuda.is_available()
    return {"op": "hello", "protocol": PROTOCOL_VERSION, "worker": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "cuda": cuda, "devices": torch.cuda.device_count() if cuda else 0}


class Server:
    def __init__(self, fin, fout):
        self.fin, self.fout = fin, fout
        self.worker = Worker()
        self.errors = 0

    def serve(self) -> int:
        """Runs until stdin ends (exit status 0) or shutdown (0); a frame that cannot be read ends it with 1."""
        write_frame(self.fout, hello())
        while True:
            try:
                req = read_frame(self.fin)
            except FrameError as e:
                print(f"colloquy-worker: {e}", file=sys.stderr, flush=True)
                return 1
            except UserError as e:  # a frame that was read but not understood: the stream is still in step
                write_frame(self.fout, {"id": None, "ok": False, "error": self.error_body(e)})
                continue
            if req is None:
                return 0
            rid, op = req.get("id"), req.get("op")
            if op == "shutdown":
                write_frame(self.fout, {"id": rid, "ok": True})
                return 0
            write_frame(self.fout, self.handle(rid, op, req))

    def handle(self, rid, op, req: dict) -> dict:
        try:
            fn = OPS.get(op)
            if fn is None:
                raise UserError("E_UNKNOWN_OP", f"unknown op {op!r} (known: {', '.join([*OPS, 'shutdown'])})")
            return {"id": rid, "ok": True, **fn(self.worker, req)}
        except Exception as e:  # noqa: BLE001 — every failure becomes a reply
            if _is_oom(e) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            return {"id": rid, "ok": False, "error": self.error_body(e)}

    def error_body(self, e: BaseException) -> dict:
        user = isinstance(e, UserError) or _is_oom(e)
        code = e.code if isinstance(e, UserError) else "E_OOM" if _is_oom(e) else "E_INTERNAL"
        lines = str(e).strip().splitlines()
        message = lines[0] if lines else type(e).__name__
        if not isinstance(e, UserError):
            message = f"{type(e).__name__}: {message}"
        return {"kind": "user" if user else "internal", "code": code, "message": message, "traceback": self.write_traceback(e)}

    def write_traceback(self, e: BaseException) -> str | None:
        self.errors += 1
        path = os.path.join(tempfile.gettempdir(), f"colloquy-worker-{os.getpid()}-{self.errors}.txt")
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(traceback.format_exception(type(e), e, e.__traceback__)))
            return path
        except OSError:
            return None


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    msg = str(e)
    return (oom is not None and isinstance(e, oom)) or (isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg))


def main() -> int:
    # the protocol owns stdout: keep it on a private descriptor and send fd 1 (stray prints, C libraries) to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return Server(sys.stdin.buffer, out).serve()
