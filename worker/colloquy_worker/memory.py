"""
Refusing a model that will not fit, before anything is allocated. The client computes what a run needs per device
(src/torch/memory.ts, the one place the formula lives) and sends it with `open` as `need_bytes` (and its parts as
`need_parts`, for the message); open_model calls `check_fits` once the device and dtype are known and before it
reads the config or loads a weight.

Free memory: on CUDA torch.cuda.mem_get_info (the driver's free and total bytes: other processes and this one's
CUDA context are already out of it), or, on a PyTorch without it, the device's total less what this process's
allocator has reserved; on the CPU, MemAvailable of /proc/meminfo, or the room left under this process's cgroup
memory limit when that is lower. Processes of one group on this machine (LOCAL_WORLD_SIZE) share the CPU's memory,
so on the CPU each needs its share.
"""
from __future__ import annotations

import math
import os

import torch

from .errors import UserError, need

PART_ORDER = ("weights", "adapters", "activations", "workspace")
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number


def format_bytes(n: float) -> str:
    """1.4 GiB, 12.0 MiB, 3.5 KiB, 512 B: as src/torch/memory.ts formatBytes writes them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{math.floor(n / size * 10 + 0.5) / 10:.1f} {unit}"  # halves up, as JavaScript's toFixed
    return f"{int(n)} B"


def device_memory(device: torch.device) -> tuple[int, int]:
    """(free, total) bytes of `device` now."""
    if device.type == "cuda":
        if hasattr(torch.cuda, "mem_get_info"):
            free, total = torch.cuda.mem_get_info(device)
            return int(free), int(total)
        total = torch.cuda.get_device_properties(device).total_memory
        return int(total - torch.cuda.memory_reserved(device)), int(total)
    return host_memory()


def host_memory(meminfo: str = "/proc/meminfo", cgroup_root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> tuple[int, int]:
    """(available, total) bytes of the machine's memory, or of this process's cgroup when its limit is lower."""
    info = _meminfo(meminfo)
    total = info.get("MemTotal", 0)
    free = info.get("MemAvailable", info.get("MemFree", 0))
    limit = _cgroup_limit(cgroup_root, proc_cgroup)
    if limit is not None and limit[1] < total:
        free, total = min(free, limit[0]), limit[1]
    return free, total


def _meminfo(path: str) -> dict[str, int]:
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_limit(root: str, proc_cgroup: str) -> tuple[int, int] | None:
    """(room left, limit) of this process's cgroup memory, v2 (memory.max) or v1 (memory.limit_in_bytes); None without one."""
    try:
        with open(proc_cgroup) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    for parts in lines:
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if controllers == "":  # v2: one unified hierarchy
            names, dirs = ("memory.max", "memory.current", "inactive_file"), [os.path.join(root, rel), root]
        elif "memory" in controllers.split(","):
            names, dirs = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"), \
                [os.path.join(root, "memory", rel), os.path.join(root, "memory")]
        else:
            continue
        for d in dirs:  # inside a container the process's own cgroup is often mounted as the root
            limit, usage = _read_int(os.path.join(d, names[0])), _read_int(os.path.join(d, names[1]))
            if limit is None or usage is None:
                continue
            if limit >= UNLIMITED:
                break
            reclaimable = _meminfo_like(os.path.join(d, "memory.stat")).get(names[2], 0)  # page cache the kernel can drop
            return max(0, limit - usage + reclaimable), limit
    return None


def _meminfo_like(path: str) -> dict[str, int]:
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


def check_fits(req: dict, folder: str, device: torch.device, dtype_name: str) -> None:
    """E_NO_MEMORY (one line) when the open request's need_bytes exceeds what `device` has free, or could ever hold."""
    want = need(req, "need_bytes", (int, float), None)
    if want is None:
        return
    if not want >= 0 or want == float("inf"):
        raise UserError("E_BAD_ARG", f"need_bytes must be a finite number ≥ 0, got {want}")
    parts = need(req, "need_parts", dict, {})
    sharers = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type == "cpu" else 1
    free, total = device_memory(device)
    total_need = want * max(1, sharers)
    if total_need <= free:
        return
    named = sorted(((k, v) for k, v in parts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)),
                   key=lambda kv: PART_ORDER.index(kv[0]) if kv[0] in PART_ORDER else len(PART_ORDER))
    detail = f" ({', '.join(f'{k} {format_bytes(v)}' for k, v in named)})" if named else ""
    shared = f", {sharers} processes of this machine" if sharers > 1 else ""
    has = f"only {format_bytes(total)} in all" if total_need > total else f"{format_bytes(free)} free of {format_bytes(total)}"
    hints = ["lower --max-tokens-per-pass", *(["use --dtype bfloat16"] if dtype_name == "float32" else []), "fewer agents",
             "or a bigger device"]
    raise UserError("E_NO_MEMORY", f"{folder}: needs {format_bytes(want)} per device{detail}{shared} but {device} has {has}; "
                    f"{', '.join(hints)}")
