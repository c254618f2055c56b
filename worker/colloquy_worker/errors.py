"""The worker's two kinds of error: a UserError (bad input; the worker stays usable) and everything else (a bug, or
a TornUpdate: state changed part-way, so the worker cannot go on)."""
from __future__ import annotations

from contextlib import contextmanager


class UserError(Exception):
    """Bad input: an unknown adapter, a misshapen tensor, a missing file. `code` is E_…; the message is one line."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class TornUpdate(Exception):
    """An in-place update of several tensors failed after it had begun (out of memory): they are in an unknown state."""

    code = "E_TORN_UPDATE"


@contextmanager
def torn_on_failure(what: str):
    """Any failure inside becomes a TornUpdate naming `what` and the cause."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 — whatever stopped it, the tensors are half updated
        lines = str(e).strip().splitlines()
        raise TornUpdate(f"{what} failed part-way, the adapters are in an unknown state: {type(e).__name__}: "
                         f"{lines[0] if lines else ''}") from e


def need(req: dict, key: str, kind=None, default=...):
    """req[key], checked against `kind` (a type or tuple of types); a missing or ill-typed field is E_BAD_REQUEST."""
    if key not in req or req[key] is None:
        if default is not ...:
            return default
        raise UserError("E_BAD_REQUEST", f"request field {key} is missing")
    v = req[key]
    if kind is not None:
        ok = isinstance(v, kind) and not (isinstance(v, bool) and bool not in _as_tuple(kind))
        if not ok:
            raise UserError("E_BAD_REQUEST", f"request field {key} has type {type(v).__name__}, expected {_names(kind)}")
    return v


MAX_SEED = (1 << 64) - 1  # torch.Generator.manual_seed takes 64 bits


def need_int(req: dict, key: str, lo: int | None = None, default=..., code: str = "E_BAD_ARG", hi: int | None = None) -> int:
    """An integer field (JSON numbers like 3.0 count), in [lo, hi]."""
    v = need(req, key, (int, float), default)
    if isinstance(v, float):
        if not v.is_integer():
            raise UserError(code, f"{key} must be an integer, got {v}")
        v = int(v)
    if lo is not None and v < lo:
        raise UserError(code, f"{key} must be ≥ {lo}, got {v}")
    if hi is not None and v > hi:
        raise UserError(code, f"{key} must be ≤ {hi}, got {v}")
    return v


def need_num(req: dict, key: str, default=...) -> float:
    v = need(req, key, (int, float), default)
    return float(v)


def _as_tuple(kind):
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))
