/**
 * A linear layer of the base model with the LoRA branches of the batch's adapters:
 *   y = x W^T + scale · (x A^T) B^T       for the tokens of each segment whose adapter targets this layer.
 * LoRA's scale is folded into the low-rank products (the kernels' alpha). Backward recomputes u = x A^T
 * (R is small) instead of keeping it.
 */
import type { Segment } from "./batch.ts";
import type { Kernels } from "./kernels/index.ts";
import type { LinearKind } from "./params.ts";
import type { Workspace } from "./workspace.ts";

export interface LinearCall {
  k: Kernels;
  ws: Workspace;
  W: Float32Array; // (out, in)
  kind: LinearKind;
  layer: number;
  inDim: number;
  outDim: number;
  segments: readonly Segment[];
}

/** out (N, out) = [out +] x (N, in) W^T + LoRA. */
export function linearForward(c: LinearCall, out: Float32Array, x: Float32Array, N: number, accumulate: boolean): void {
  c.k.matmulXWt(out, x, c.W, N, c.inDim, c.outDim, accumulate);
  for (const seg of c.segments) {
    const lin = seg.adapter.weights.layers[c.layer][c.kind];
    if (!lin) continue;
    const R = seg.adapter.lora.rank;
    const xs = x.subarray(seg.start * c.inDim, (seg.start + seg.len) * c.inDim);
    const u = c.ws.take(seg.len * R); // (n, R) = scale · x A^T
    c.k.matmulXWt(u, xs, lin.A, seg.len, c.inDim, R, false, seg.adapter.scale);
    c.k.matmulXWt(out.subarray(seg.start * c.outDim, (seg.start + seg.len) * c.outDim), u, lin.B, seg.len, R, c.outDim, true);
    c.ws.give(u);
  }
}

/**
 * dx (N, in) = [dx +] dy W + LoRA's part; dW (out, in) += dy^T x when given; adapters with a gradient buffer get
 * dB += scale · dy^T u and dA += (scale · dy B)^T x.
 */
export function linearBackward(
  c: LinearCall,
  dx: Float32Array,
  dW: Float32Array | null,
  dy: Float32Array,
  x: Float32Array,
  N: number,
  accumulate: boolean,
): void {
  c.k.matmulXW(dx, dy, c.W, N, c.outDim, c.inDim, accumulate);
  if (dW) c.k.matmulXtY(dW, dy, x, N, c.outDim, c.inDim);
  for (const seg of c.segments) {
    const lin = seg.adapter.weights.layers[c.layer][c.kind];
    if (!lin) continue;
    const R = seg.adapter.lora.rank;
    const s = seg.adapter.scale;
    const xs = x.subarray(seg.start * c.inDim, (seg.start + seg.len) * c.inDim);
    const dys = dy.subarray(seg.start * c.outDim, (seg.start + seg.len) * c.outDim);
    const du = c.ws.take(seg.len * R); // (n, R) = scale · dy B
    c.k.matmulXW(du, dys, lin.B, seg.len, c.outDim, R, false, s);
    const grad = seg.adapter.grad?.layers[c.layer][c.kind];
    if (grad) {
      const u = c.ws.take(seg.len * R); // (n, R) = scale · x A^T
      c.k.matmulXWt(u, xs, lin.A, seg.len, c.inDim, R, false, s);
      c.k.matmulXtY(grad.B, dys, u, seg.len, c.outDim, R);
      c.k.matmulXtY(grad.A, du, xs, seg.len, R, c.inDim);
      c.ws.give(u);
    }
    c.k.matmulXW(dx.subarray(seg.start * c.inDim, (seg.start + seg.len) * c.inDim), du, lin.A, seg.len, R, c.inDim, true);
    c.ws.give(du);
  }
}
