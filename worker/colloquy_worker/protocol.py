"""
Frames, as ../PROTOCOL.md defines them:

    u32 LE  J    length of the JSON header
    u64 LE  P    length of the payload
    J bytes      the header (UTF-8 JSON)
    P bytes      the payload: the header's tensors, each at an offset that is a multiple of 8

A tensor inside the header is {"$t": i}, entry i of the header's "tensors" list
({"dtype", "shape", "offset", "nbytes"}); no request or reply field is named "tensors" (an adapter's are "weights").
Decoded requests hold CPU torch tensors in place of these references;
replies may hold torch tensors anywhere (any device), which `encode` lays out in the payload.
"""
from __future__ import annotations

import json
import math
import struct
import sys

import torch

from .errors import UserError

assert sys.byteorder == "little", "the frame format is little-endian"

DTYPES = {"f32": torch.float32, "f64": torch.float64, "i32": torch.int32, "i64": torch.int64, "u8": torch.uint8}
NAMES = {v: k for k, v in DTYPES.items()}
PREFIX = struct.Struct("<IQ")  # J, P
SPECS = "tensors"  # the key of the tensor table
MAX_HEADER = 1 << 30
MAX_PAYLOAD = 1 << 40  # no single frame's tensors come near 1 TiB: a larger length means the stream is out of step


class FrameError(Exception):
    """A frame that cannot be read: the stream is out of step, and the worker cannot go on."""


def read_exact(f, n: int) -> bytes | None:
    """n bytes from the binary stream f; None at a clean end of stream (no bytes at all)."""
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            if got == 0:
                return None
            raise FrameError(f"the stream ended inside a frame ({got} of {n} bytes)")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_frame(f) -> dict | None:
    """The next message from f with its tensors decoded, or None when f has ended."""
    prefix = read_exact(f, PREFIX.size)
    if prefix is None:
        return None
    j, p = PREFIX.unpack(prefix)
    if j > MAX_HEADER or p > MAX_PAYLOAD:
        raise FrameError(f"a frame of {j} header and {p} payload bytes is implausible: the stream is out of step")
    header = read_exact(f, j) if j else b""
    try:
        payload = bytearray(read_exact(f, p) or b"") if p else bytearray()
    except MemoryError:
        raise FrameError(f"a frame payload of {p} bytes does not fit in memory") from None
    if len(header) != j or len(payload) != p:
        raise FrameError("the stream ended inside a frame")
    try:
        return decode(header, payload)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — whatever a header can do to the decoder (nesting, huge numbers): the frame was read whole, so the stream is still in step
        raise UserError("E_BAD_FRAME", f"frame header cannot be decoded: {type(e).__name__}: {e}") from None


def decode(header: bytes, payload: bytearray) -> dict:
    """A header and its payload → the message, every {"$t": i} replaced by a CPU tensor (a copy)."""
    try:
        msg = json.loads(header.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError("E_BAD_FRAME", f"frame header is not JSON: {e}") from None
    if not isinstance(msg, dict):
        raise UserError("E_BAD_FRAME", "frame header is not a JSON object")
    specs = msg.pop(SPECS, [])
    if not isinstance(specs, list):
        raise UserError("E_BAD_FRAME", "frame header's tensors is not a list")
    tensors = [_tensor_from(payload, s, i) for i, s in enumerate(specs)]
    return _resolve(msg, tensors)


def _no_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def _tensor_from(payload: bytearray, spec, i: int) -> torch.Tensor:
    try:
        dtype = DTYPES[spec["dtype"]]
        shape = [int(d) for d in spec["shape"]]
        off, nbytes = int(spec["offset"]), int(spec["nbytes"])
    except (KeyError, TypeError, ValueError):
        raise UserError("E_BAD_FRAME", f"tensor {i}: a spec needs dtype (f32 f64 i32 i64 u8), shape, offset, nbytes; got {spec}") from None
    n = math.prod(shape)
    size = torch.empty((), dtype=dtype).element_size()
    if any(d < 0 for d in shape) or nbytes != n * size or off < 0 or off % 8 or off + nbytes > len(payload):
        raise UserError("E_BAD_FRAME", f"tensor {i}: shape {shape} of {spec['dtype']} at offset {off}, {nbytes} bytes, "
                        f"does not fit a payload of {len(payload)} bytes (offsets must be multiples of 8)")
    if n == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(payload, dtype=dtype, count=n, offset=off).reshape(shape).clone()


def _resolve(x, tensors):
    if isinstance(x, dict):
        if len(x) == 1 and "$t" in x:
            i = x["$t"]
            if not isinstance(i, int) or not 0 <= i < len(tensors):
                raise UserError("E_BAD_FRAME", f"tensor reference {i} is outside the header's {len(tensors)} tensors")
            return tensors[i]
        return {k: _resolve(v, tensors) for k, v in x.items()}
    if isinstance(x, list):
        return [_resolve(v, tensors) for v in x]
    return x


def encode(msg: dict) -> bytes:
    """A message (torch tensors allowed anywhere inside) → one frame."""
    tensors: list[torch.Tensor] = []
    specs: list[dict] = []
    offset = 0

    def walk(x):
        nonlocal offset
        if isinstance(x, torch.Tensor):
            if x.dtype not in NAMES:
                raise TypeError(f"cannot send a {x.dtype} tensor")
            t = x.detach().to("cpu").contiguous()
            nbytes = t.numel() * t.element_size()
            specs.append({"dtype": NAMES[t.dtype], "shape": list(t.shape), "offset": offset, "nbytes": nbytes})
            tensors.append(t)
            offset += (nbytes + 7) // 8 * 8
            return {"$t": len(specs) - 1}
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")  # JSON has no such numbers
        return x

    body = walk(msg)
    if SPECS in body:
        raise ValueError(f"a message field may not be named {SPECS!r}: it is the frame's tensor table")
    body[SPECS] = specs
    header = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
    payload = bytearray(offset)
    for t, s in zip(tensors, specs):
        if s["nbytes"]:
            torch.frombuffer(payload, dtype=t.dtype, count=t.numel(), offset=s["offset"]).copy_(t.reshape(-1))
    return PREFIX.pack(len(header), len(payload)) + header + bytes(payload)


def write_frame(f, msg: dict) -> None:
    f.write(encode(msg))
    f.flush()
