"""
Attention through PyTorch 2's scaled_dot_product_attention against the explicit softmax path (PyTorch 1.13's), on
the test device: the causal prefill and the masked decode step, in float32 and bfloat16. On a GPU this is where a
fused kernel's mistakes with a boolean mask (reported for some PyTorch versions in bfloat16) would show.
"""
import unittest

import torch

from helpers import DEVICE, assert_close, report
from colloquy_worker.model import HAS_SDPA, attend, attend_explicit


def heads(B: int, NH: int, KVH: int, T: int, S: int, HS: int, dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, NH, T, HS, generator=g).to(DEVICE, dtype)
    k = torch.randn(B, KVH, S, HS, generator=g).to(DEVICE, dtype)
    v = torch.randn(B, KVH, S, HS, generator=g).to(DEVICE, dtype)
    return q, k, v


def expanded(x: torch.Tensor, NH: int) -> torch.Tensor:
    """k or v (B, KVH, S, HS) with each key/value head repeated for its NH / KVH query heads, as attend does."""
    return x.repeat_interleave(NH // x.shape[1], dim=1)


@unittest.skipUnless(HAS_SDPA, "needs PyTorch 2's scaled_dot_product_attention (this PyTorch has only the explicit path)")
class Attention(unittest.TestCase):
    def check(self, label: str, dtype: torch.dtype, tol: float, q, k, v, mask):
        got = attend(q, k, v, mask)
        want = attend_explicit(q, expanded(k, q.shape[1]), expanded(v, q.shape[1]), mask)
        report(f"{label} {str(dtype).split('.')[-1]} on {DEVICE}: max |Δ| / max", assert_close(label, got, want, tol, relative_to_max=True))

    def test_prefill_and_decode(self):
        for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 3e-2)):
            # prefill: causal over T = S, grouped-query (8 query heads on 2 key/value heads)
            self.check("causal prefill", dtype, tol, *heads(3, 8, 2, 37, 37, 64, dtype, seed=1), None)
            # decode: one query per row, each row seeing its own number of keys (a cache of rows of different lengths)
            q, k, v = heads(4, 8, 2, 1, 50, 64, dtype, seed=2)
            visible = torch.tensor([1, 17, 33, 50], device=DEVICE)
            mask = (torch.arange(50, device=DEVICE)[None, :] < visible[:, None])[:, None, None, :]  # (B, 1, 1, S)
            self.check("masked decode", dtype, tol, q, k, v, mask)


if __name__ == "__main__":
    unittest.main()
