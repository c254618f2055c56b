"""
The request loop: say hello, then read a request, dispatch it by `op`, write the reply, until stdin ends or a
shutdown. Every exception is answered: its traceback goes to a file under the temp folder and the reply carries a
one-line message; a UserError (or running out of memory) leaves the worker usable, anything else (a TornUpdate too)
is "internal".
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import traceback

import torch

from . import PROTOCOL_VERSION, __version__
from .adapters import create_adapter, export_adapter, import_adapter
from .errors import TornUpdate, UserError
from .protocol import FrameError, read_frame, write_frame
from .sample import sample
from .score import last_hidden, score, top_logprobs
from .dist import Group, agreed, env_rank, launch_local, merge, mine_only
from .listen import is_loopback, listen, split_address
from .state import Worker, open_model
from .train import backward, clip_grad_norm, step, zero_grad

EXIT, RESET = "$exit", "$reset"  # what rank 0 broadcasts to the other ranks, besides requests

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


def hello(group: Group | None = None) -> dict:
    cuda = torch.cuda.is_available()
    return {"op": "hello", "protocol": PROTOCOL_VERSION, "worker": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "cuda": cuda, "devices": torch.cuda.device_count() if cuda else 0,
            "world_size": group.world if group else 1}


def new_worker(group: Group | None) -> Worker:
    return Worker(group.rank, group.world, group.local_rank) if group else Worker()


def follow(group: Group) -> int:
    """Ranks other than 0: run what rank 0 broadcasts, until it says exit."""
    server = Server(None, None, group)
    while True:
        req = group.broadcast(None)
        op = req.get("op")
        if op == EXIT:
            return 0
        if op == RESET:
            server.worker = new_worker(group)
            continue
        group.gather(mine_only(group.rank, group.world, op, server.handle(req.get("id"), op, req)))


class Server:
    """One session of requests over a pair of byte streams; in a group (dist.py), run by rank 0 for every rank."""

    def __init__(self, fin, fout, group: Group | None = None):
        self.fin, self.fout = fin, fout
        self.group = group
        self.worker = new_worker(group)
        self.errors = 0

    def serve(self) -> int:
        """Runs until the stream ends (exit status 0) or shutdown (0); a frame that cannot be read ends it with 1."""
        write_frame(self.fout, hello(self.group))
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
            write_frame(self.fout, self.run(rid, op, req))

    def run(self, rid, op, req: dict) -> dict:
        if self.group is None:
            return self.handle(rid, op, req)
        self.group.broadcast(req)
        return merge(op, self.group.gather(self.handle(rid, op, req)))

    def handle(self, rid, op, req: dict) -> dict:
        try:
            fn = OPS.get(op)
            if fn is None:
                raise UserError("E_UNKNOWN_OP", f"unknown op {op!r} (known: {', '.join([*OPS, 'shutdown'])})")
            out = fn(self.worker, req) if self.group is None else agreed(self.group, self.worker, op, fn, req)
            return {"id": rid, "ok": True, **out}
        except Exception as e:  # noqa: BLE001 — every failure becomes a reply
            if _is_oom(e) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            return {"id": rid, "ok": False, "error": self.error_body(e)}

    def error_body(self, e: BaseException) -> dict:
        user = isinstance(e, UserError) or _is_oom(e)
        code = e.code if isinstance(e, (UserError, TornUpdate)) else "E_OOM" if _is_oom(e) else "E_INTERNAL"
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = read_token(args)
    if args.listen and not token and not is_loopback(split_address(args.listen)[0]):
        print(f"colloquy-worker: --listen {args.listen} is not a loopback address: give --token-file F (or "
              "$COLLOQUY_WORKER_TOKEN) so that only colloquy with the same token can connect", file=sys.stderr)
        return 2
    # the protocol owns stdout: keep it on a private descriptor and send fd 1 (stray prints, C libraries) to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    children = launch_local(args.nproc) if args.nproc > 1 and "RANK" not in os.environ else []
    group = Group() if env_rank()[1] > 1 else None
    try:
        if group and group.rank != 0:
            return follow(group)
        if args.listen:
            return listen(args.listen, token, lambda fin, fout: session(fin, fout, group))
        code = Server(sys.stdin.buffer, out, group).serve()
        if group:
            group.broadcast({"op": EXIT})
        return code
    finally:
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()
        if group:
            group.close()


def session(fin, fout, group: Group | None) -> int:
    """One client of a listening worker; then every rank forgets the model and adapters for the next."""
    try:
        return Server(fin, fout, group).serve()
    finally:
        if group:
            group.broadcast({"op": RESET})


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m colloquy_worker", description="colloquy's PyTorch worker (worker/PROTOCOL.md).")
    p.add_argument("--nproc", type=int, default=1, help="start N processes on this machine as one torch.distributed group")
    p.add_argument("--listen", metavar="HOST:PORT", help="serve colloquy over TCP (rank 0) instead of stdin/stdout")
    p.add_argument("--token-file", metavar="F", help="the token clients must send (default $COLLOQUY_WORKER_TOKEN)")
    args = p.parse_args(argv)
    if args.nproc < 1:
        p.error("--nproc must be at least 1")
    return args


def read_token(args) -> str | None:
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise SystemExit(f"colloquy-worker: cannot read the token file {args.token_file}: {e.strerror}") from None
        if not token:
            raise SystemExit(f"colloquy-worker: the token file {args.token_file} is empty")
        return token
    return os.environ.get("COLLOQUY_WORKER_TOKEN") or None
