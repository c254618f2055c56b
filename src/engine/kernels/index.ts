/**
 * The kernel seam: everything the engine computes in bulk goes through one `Kernels` object, so that a faster
 * implementation can replace the reference one without touching the layers that call it.
 */
import { attentionBackward, attentionForward } from "./attention.ts";
import { matmulXW, matmulXWt, matmulXtY } from "./matmul.ts";
import { rmsnormBackward, rmsnormForward } from "./rmsnorm.ts";
import { ropeApply } from "./rope.ts";
import { swigluBackward, swigluForward } from "./swiglu.ts";

export interface Kernels {
  name: string;
  matmulXWt: typeof matmulXWt;
  matmulXW: typeof matmulXW;
  matmulXtY: typeof matmulXtY;
  rmsnormForward: typeof rmsnormForward;
  rmsnormBackward: typeof rmsnormBackward;
  ropeApply: typeof ropeApply;
  attentionForward: typeof attentionForward;
  attentionBackward: typeof attentionBackward;
  swigluForward: typeof swigluForward;
  swigluBackward: typeof swigluBackward;
}

export const referenceKernels: Kernels = {
  name: "reference",
  matmulXWt,
  matmulXW,
  matmulXtY,
  rmsnormForward,
  rmsnormBackward,
  ropeApply,
  attentionForward,
  attentionBackward,
  swigluForward,
  swigluBackward,
};
