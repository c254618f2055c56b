import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { TORCH_FIXTURES, assertClose } from "../../test/support.ts";
import { kernelVariants } from "./kernels/select.ts";
import { DEFAULT_OPTIMIZER, Optimizer, clipGradNorm, learningRate } from "./optim.ts";

const REF = JSON.parse(fs.readFileSync(path.join(TORCH_FIXTURES, "optim.json"), "utf8"));

for (const K of kernelVariants()) {
  test(`[${K.name}] AdamW and SGD (with and without momentum/decay) follow torch.optim step for step`, { skip: K.skip }, () => {
    for (const c of REF.cases) {
      const o = c.options;
      const params = Float32Array.from(REF.p0);
      const grad = new Float32Array(params.length);
      const opt = new Optimizer(
        c.kind === "adamw"
          ? { kind: "adamw", beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weight_decay }
          : { ...DEFAULT_OPTIMIZER, kind: "sgd", beta1: o.momentum, weightDecay: o.weight_decay },
        [{ name: "p", params, grad, decay: true }],
        K.kernels,
      );
      c.trajectory.forEach((want: number[], step: number) => {
        grad.set(REF.grads[step]);
        opt.update(o.lr);
        assertClose(`${c.kind} ${JSON.stringify(o)} step ${step + 1}`, params, want, 1e-6, 1e-5);
      });
    }
  });
}

test("clipping by global norm matches torch.nn.utils.clip_grad_norm_", () => {
  const groups = REF.clip.grads.map((g: number[], i: number) => ({
    name: `g${i}`,
    params: new Float32Array(g.length),
    grad: Float32Array.from(g),
    decay: true,
  }));
  const norm = clipGradNorm(groups, REF.clip.max_norm);
  assert.ok(Math.abs(norm - REF.clip.norm) < 1e-6);
  groups.forEach((g: { grad: Float32Array }, i: number) => assertClose(`group ${i}`, g.grad, REF.clip.clipped[i], 1e-6));
  const untouched = [{ name: "g", params: new Float32Array(2), grad: Float32Array.from([0.3, 0.4]), decay: true }];
  assert.ok(Math.abs(clipGradNorm(untouched, 1) - 0.5) < 1e-7);
  assert.deepEqual(Array.from(untouched[0].grad), [Math.fround(0.3), Math.fround(0.4)]);
});

test("schedules: linear warm-up, then constant or cosine down to the floor", () => {
  const cos = { kind: "cosine" as const, warmup: 4, total: 14, minRatio: 0.1 };
  assert.deepEqual(
    [0, 1, 2, 3].map((s) => learningRate(1, cos, s)),
    [0.25, 0.5, 0.75, 1],
  );
  assert.equal(learningRate(1, cos, 4), 1);
  assert.ok(Math.abs(learningRate(1, cos, 9) - 0.55) < 1e-12); // half way: 0.1 + 0.9·0.5
  assert.ok(Math.abs(learningRate(1, cos, 14) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRate(1, cos, 100) - 0.1) < 1e-12);
  assert.equal(learningRate(3, { kind: "constant" }, 7), 3);
});

for (const K of kernelVariants()) {
  test(`[${K.name}] optimizer state round-trips: a restored optimizer continues exactly`, { skip: K.skip }, () => {
    const mk = () => {
      const params = Float32Array.from(REF.p0),
        grad = new Float32Array(params.length);
      return {
        params,
        grad,
        opt: new Optimizer({ ...DEFAULT_OPTIMIZER, weightDecay: 0.05 }, [{ name: "p", params, grad, decay: true }], K.kernels),
      };
    };
    const a = mk();
    for (const g of REF.grads.slice(0, 2)) {
      a.grad.set(g);
      a.opt.update(0.01);
    }
    const saved = a.opt.exportState();
    const b = mk();
    b.params.set(a.params);
    b.opt.importState({ step: saved.step, moments: saved.moments.map((x) => ({ name: x.name, data: x.data.slice() })) });
    for (const g of REF.grads.slice(2)) {
      a.grad.set(g);
      a.opt.update(0.01);
      b.grad.set(g);
      b.opt.update(0.01);
    }
    assert.deepEqual(Array.from(b.params), Array.from(a.params));
  });
}
