"""The worker's two kinds of error: a UserError (bad input; the worker stays usable) and everything else (a bug)."""


class UserError(Exception):
    """Bad input: an unknown adapter, a misshapen tensor, a missing file. `code` is E_…; the message is one line."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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


def need_int(req: dict, key: str, lo: int | None = None, default=..., code: str = "E_BAD_ARG") -> int:
    """An integer field (JSON numbers like 3.0 count), at least `lo`."""
    v = need(req, key, (int, float), default)
    if isinstance(v, float):
        if not v.is_integer():
            raise UserError(code, f"{key} must be an integer, got {v}")
        v = int(v)
    if lo is not None and v < lo:
        raise UserError(code, f"{key} must be ≥ {lo}, got {v}")
    return v


def need_num(req: dict, key: str, default=...) -> float:
    v = need(req, key, (int, float), default)
    return float(v)


def _as_tuple(kind):
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))
