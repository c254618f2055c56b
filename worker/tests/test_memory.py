"""memory.py: free memory of the CPU (meminfo, cgroup v1 and v2) and the open request's need_bytes check, which
refuses with one line before the model's config is read or a weight allocated."""
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import torch

from helpers import synthetic_model
from colloquy_worker import memory
from colloquy_worker.errors import UserError
from colloquy_worker.memory import check_fits, format_bytes, host_memory
from colloquy_worker.state import Worker, open_model

GiB = 1 << 30
CPU = torch.device("cpu")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class FreeMemory(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="colloquy-memory-test-"))
        write(self.dir / "meminfo", "MemTotal:       16777216 kB\nMemFree:         1048576 kB\nMemAvailable:    8388608 kB\n")

    def test_format_bytes_as_the_client(self):
        self.assertEqual([format_bytes(n) for n in (512, 1536, 12.5 * (1 << 20), 3 * GiB, 57.25 * GiB)], ["512 B", "1.5 KiB", "12.5 MiB", "3.0 GiB", "57.3 GiB"])

    def test_meminfo_without_cgroup(self):
        free, total = host_memory(str(self.dir / "meminfo"), str(self.dir / "cg"), str(self.dir / "none"))
        self.assertEqual((free, total), (8 * GiB, 16 * GiB))

    def test_cgroup_v2_limit_lower_than_the_machine(self):
        write(self.dir / "proc_cgroup", "0::/job\n")
        write(self.dir / "cg/job/memory.max", f"{4 * GiB}\n")
        write(self.dir / "cg/job/memory.current", f"{3 * GiB}\n")
        write(self.dir / "cg/job/memory.stat", f"anon 123\ninactive_file {GiB // 2}\n")
        free, total = host_memory(str(self.dir / "meminfo"), str(self.dir / "cg"), str(self.dir / "proc_cgroup"))
        self.assertEqual((free, total), (GiB + GiB // 2, 4 * GiB))

    def test_cgroup_v2_without_a_limit(self):
        write(self.dir / "proc_cgroup", "0::/job\n")
        write(self.dir / "cg/job/memory.max", "max\n")
        write(self.dir / "cg/job/memory.current", f"{3 * GiB}\n")
        self.assertEqual(host_memory(str(self.dir / "meminfo"), str(self.dir / "cg"), str(self.dir / "proc_cgroup")), (8 * GiB, 16 * GiB))

    def test_cgroup_v1_mounted_as_the_root(self):
        # inside a container the process's cgroup path does not exist under the mount: its root is the process's
        write(self.dir / "proc_cgroup", "5:cpu:/\n4:memory:/docker/abc\n")
        write(self.dir / "cg/memory/memory.limit_in_bytes", f"{2 * GiB}\n")
        write(self.dir / "cg/memory/memory.usage_in_bytes", f"{GiB}\n")
        write(self.dir / "cg/memory/memory.stat", "total_inactive_file 0\n")
        self.assertEqual(host_memory(str(self.dir / "meminfo"), str(self.dir / "cg"), str(self.dir / "proc_cgroup")), (GiB, 2 * GiB))

    def test_cgroup_v1_unlimited(self):
        write(self.dir / "proc_cgroup", "4:memory:/\n")
        write(self.dir / "cg/memory/memory.limit_in_bytes", "9223372036854771712\n")
        write(self.dir / "cg/memory/memory.usage_in_bytes", f"{GiB}\n")
        self.assertEqual(host_memory(str(self.dir / "meminfo"), str(self.dir / "cg"), str(self.dir / "proc_cgroup")), (8 * GiB, 16 * GiB))

    def test_this_machine(self):
        free, total = memory.device_memory(CPU)
        self.assertTrue(0 < free <= total, (free, total))


PARTS = {"workspace": GiB, "weights": 15 * GiB, "adapters": GiB // 4, "activations": 40 * GiB}


class CheckFits(unittest.TestCase):
    def check(self, need, free=10 * GiB, total=80 * GiB, dtype="bfloat16", device=torch.device("cpu"), parts=PARTS, env=None):
        req = {"need_bytes": need, "need_parts": parts} if need is not None else {}
        with mock.patch.object(memory, "device_memory", return_value=(free, total)), \
                mock.patch.dict(os.environ, env or {"LOCAL_WORLD_SIZE": "1"}):
            check_fits(req, "/models/m", device, dtype)

    def refused(self, *args, **kw) -> str:
        with self.assertRaises(UserError) as e:
            self.check(*args, **kw)
        self.assertEqual(e.exception.code, "E_NO_MEMORY")
        self.assertNotIn("\n", e.exception.message)
        return e.exception.message

    def test_no_need_no_check(self):
        self.check(None, free=0)

    def test_fits(self):
        self.check(10 * GiB)

    def test_refuses_more_than_free_naming_the_parts(self):
        msg = self.refused(56.25 * GiB + GiB)
        self.assertEqual(msg, "/models/m: needs 57.3 GiB per device (weights 15.0 GiB, adapters 256.0 MiB, activations 40.0 GiB, "
                              "workspace 1.0 GiB) but cpu has 10.0 GiB free of 80.0 GiB; lower --max-tokens-per-pass, fewer agents, "
                              "or a bigger device")

    def test_refuses_what_could_never_fit(self):
        msg = self.refused(100 * GiB, free=90 * GiB, dtype="float32", parts={})
        self.assertEqual(msg, "/models/m: needs 100.0 GiB per device but cpu has only 80.0 GiB in all; lower --max-tokens-per-pass, "
                              "use --dtype bfloat16, fewer agents, or a bigger device")

    def test_processes_of_one_machine_share_the_cpu(self):
        self.check(4 * GiB, env={"LOCAL_WORLD_SIZE": "2"})
        self.assertIn("2 processes of this machine", self.refused(6 * GiB, env={"LOCAL_WORLD_SIZE": "2"}))
        self.check(6 * GiB, device=torch.device("cuda", 0), env={"LOCAL_WORLD_SIZE": "2"})  # one GPU each

    def test_bad_need(self):
        for bad, code in ((-1, "E_BAD_ARG"), ("lots", "E_BAD_REQUEST"), (True, "E_BAD_REQUEST")):
            with self.assertRaises(UserError) as e:
                self.check(bad)
            self.assertEqual(e.exception.code, code, bad)


class OpenRefuses(unittest.TestCase):
    def test_before_reading_the_config(self):
        w = Worker()
        with tempfile.TemporaryDirectory() as empty:  # no config.json: reading it would fail with E_NOT_FOUND
            with self.assertRaises(UserError) as e:
                open_model(w, {"model": empty, "device": "cpu", "dtype": "float32", "need_bytes": 1 << 62})
        self.assertEqual(e.exception.code, "E_NO_MEMORY")
        self.assertIn("in all", e.exception.message)
        self.assertIsNone(w.model)

    def test_opens_what_fits(self):
        w = Worker()
        open_model(w, {"model": str(synthetic_model()), "device": "cpu", "dtype": "float32", "need_bytes": 1 << 20,
                       "need_parts": {"weights": 1 << 19}})
        self.assertIsNotNone(w.model)


if __name__ == "__main__":
    unittest.main()
