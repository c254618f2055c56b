"""
A worker that colloquy reaches over TCP (`--listen HOST:PORT`, rank 0 of a group the user started, e.g. with
torchrun). One client at a time. A client's first frame must be a small header-only auth frame,
{"op": "auth", "token": "..."}; with a token configured, a wrong or missing one is refused after a second's pause
without reading anything more from that client. Off loopback a token is required (server.main checks at start).
Then the session is the protocol of PROTOCOL.md over the socket, hello first.
"""
from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import socket
import sys
import time

from .protocol import PREFIX, FrameError, read_exact, write_frame

AUTH_MAX = 4096  # bytes of an auth frame's header
AUTH_TIMEOUT_S = 10
REFUSED_PAUSE_S = 1.0


def split_address(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SystemExit(f"colloquy-worker: --listen {addr}: expected HOST:PORT (e.g. 0.0.0.0:29600 or [::1]:29600)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(addr: str, token: str | None, run_session) -> int:
    host, port = split_address(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        srv = socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as e:
        raise SystemExit(f"colloquy-worker: cannot listen on {addr}: {e.strerror}") from None
    print(f"colloquy-worker: listening on {addr}{' (token required)' if token else ''}", file=sys.stderr, flush=True)
    with srv:
        while True:
            conn, peer = srv.accept()
            with conn:
                fin = authenticate(conn, token, peer)
                if fin is None:
                    continue
                print(f"colloquy-worker: client {peer[0]}:{peer[1]} connected", file=sys.stderr, flush=True)
                fout = conn.makefile("wb")
                try:
                    run_session(fin, fout)
                except OSError as e:
                    print(f"colloquy-worker: client {peer[0]}:{peer[1]}: {e}", file=sys.stderr, flush=True)
                finally:  # the socket closes only when its file objects have closed too: then the client sees the end
                    for f in (fout, fin):
                        with contextlib.suppress(OSError):  # a client that has gone: nothing left to flush to
                            f.close()
                print(f"colloquy-worker: client {peer[0]}:{peer[1]} left", file=sys.stderr, flush=True)


def authenticate(conn: socket.socket, token: str | None, peer) -> object | None:
    """The connection's reader once its auth frame is accepted; None (and the client told why) when refused."""
    conn.settimeout(AUTH_TIMEOUT_S)
    fin = conn.makefile("rb")
    try:
        prefix = read_exact(fin, PREFIX.size)
        if prefix is None:
            return None
        j, p = PREFIX.unpack(prefix)
        if p != 0 or j > AUTH_MAX:
            return _refuse(conn, peer, "the first frame must be an auth frame of at most 4 KB with no payload")
        msg = json.loads((read_exact(fin, j) or b"").decode("utf-8"))
        given = msg.get("token") if isinstance(msg, dict) and msg.get("op") == "auth" else None
        if not isinstance(msg, dict) or msg.get("op") != "auth":
            return _refuse(conn, peer, "the first frame must be {\"op\": \"auth\", \"token\": ...}")
        if token is not None and not (isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())):
            time.sleep(REFUSED_PAUSE_S)
            return _refuse(conn, peer, "wrong or missing worker token (give colloquy the worker's token with "
                           "--token-file F or $COLLOQUY_WORKER_TOKEN)")
        conn.settimeout(None)
        return fin
    except (OSError, ValueError, FrameError) as e:  # a timeout, a reset, a header that is not JSON
        print(f"colloquy-worker: client {peer[0]}:{peer[1]} refused: {e}", file=sys.stderr, flush=True)
        return None


def _refuse(conn: socket.socket, peer, why: str) -> None:
    print(f"colloquy-worker: client {peer[0]}:{peer[1]} refused: {why}", file=sys.stderr, flush=True)
    try:
        write_frame(conn.makefile("wb"), {"id": None, "ok": False,
                                          "error": {"kind": "user", "code": "E_AUTH", "message": why, "traceback": None}})
    except OSError:
        pass
    return None
