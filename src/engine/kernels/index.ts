/**
 * The kernel seam: everything the engine computes in bulk goes through one `Kernels` object, so that a faster
 * implementation can replace the reference one without touching the layers that call it. Two implementations:
 * `referenceKernels` (plain TypeScript, below, runs anywhere) and the native addon's (native.ts, built from
 * native/*.c); select.ts picks one. Both have exactly these semantics; kernels.test.ts holds them to it.
 */
import { adamwUpdate } from "./adamw.ts";
import { attentionCachedRows, attentionRows, attentionRowsBackward } from "./attention-rows.ts";
import { matmulXW, matmulXWt, matmulXtY } from "./matmul.ts";
import { rmsnormBackward, rmsnormForward } from "./rmsnorm.ts";
import { ropeRows } from "./rope.ts";
import { gatherRows, scatterAddRows } from "./rows.ts";
import { sampleRows } from "./sample-rows.ts";
import { swigluBackward, swigluForward } from "./swiglu.ts";
import { headXent } from "./xent.ts";

export interface Kernels {
  name: string;
  matmulXWt: typeof matmulXWt;
  matmulXW: typeof matmulXW;
  matmulXtY: typeof matmulXtY;
  rmsnormForward: typeof rmsnormForward;
  rmsnormBackward: typeof rmsnormBackward;
  ropeRows: typeof ropeRows;
  attentionRows: typeof attentionRows;
  attentionCachedRows: typeof attentionCachedRows;
  attentionRowsBackward: typeof attentionRowsBackward;
  swigluForward: typeof swigluForward;
  swigluBackward: typeof swigluBackward;
  headXent: typeof headXent;
  sampleRows: typeof sampleRows;
  adamwUpdate: typeof adamwUpdate;
  gatherRows: typeof gatherRows;
  scatterAddRows: typeof scatterAddRows;
}

export const referenceKernels: Kernels = {
  name: "reference",
  matmulXWt,
  matmulXW,
  matmulXtY,
  rmsnormForward,
  rmsnormBackward,
  ropeRows,
  attentionRows,
  attentionCachedRows,
  attentionRowsBackward,
  swigluForward,
  swigluBackward,
  headXent,
  sampleRows,
  adamwUpdate,
  gatherRows,
  scatterAddRows,
};
