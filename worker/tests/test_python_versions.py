"""
The worker must import on every Python that a supported PyTorch runs on: 3.8 and later (PyTorch 2.0–2.4 still
support 3.8). Annotations such as `X | None` and `list[int]` raise on 3.8 and 3.9 when evaluated, so every module that
annotates evaluates its annotations lazily (PEP 563). Checked by reading the source, since CI has one Python.
"""
import ast
import unittest

from helpers import WORKER


class PythonVersions(unittest.TestCase):
    def test_annotations_are_lazy(self):
        missing = []
        for f in sorted((WORKER / "colloquy_worker").glob("*.py")):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            annotates = any(isinstance(n, ast.AnnAssign) or (isinstance(n, ast.arg) and n.annotation is not None)
                            or (isinstance(n, ast.FunctionDef) and n.returns is not None) for n in ast.walk(tree))
            lazy = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                       for n in tree.body)
            if annotates and not lazy:
                missing.append(f.name)
        self.assertEqual(missing, [], "add `from __future__ import annotations` to these modules")


if __name__ == "__main__":
    unittest.main()
