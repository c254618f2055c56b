/**
 * The TypeScript engine's side of test_ts_engine.py: reads a request (JSON) on argv[2], runs colloquy's CpuBackend
 * on it, prints the results as JSON (NaN as null). Run as `node --import tsx worker/tests/ts_engine.ts in.json`.
 */
import fs from "node:fs";
import { CpuBackend } from "../../src/engine/backend.ts";
import { Transformer } from "../../src/engine/transformer.ts";
import { loadModel } from "../../src/formats/load-model.ts";

const inp = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const m = loadModel(inp.model);
const be = new CpuBackend(new Transformer(m.config, m.weights));
for (const a of inp.adapters) {
  await be.createAdapter(a.name, a.lora, 1, a.optimizer);
  const tensors = a.tensors.map((t: { name: string; shape: number[]; data: number[] }) => ({ ...t, data: Float32Array.from(t.data) }));
  await be.importAdapter(a.name, { lora: a.lora, tensors, optimizer: null });
}
const arr = (x: ArrayLike<number>) => Array.from(x, (v) => (Number.isNaN(v) ? null : v));
const sc = await be.score(inp.score);
const rows = inp.backward.map((r: Record<string, unknown>) => ({ ...r, entropyWeights: r.entropy_weights ?? undefined }));
const bw = await be.backward(rows, inp.normaliser);
const grads = Object.fromEntries(inp.adapters.map((a: { name: string }) => [a.name, arr(be.adapters.get(a.name)!.grad!.data)]));
const norm = await be.clipGradNorm(inp.adapters.map((a: { name: string }) => a.name), 0);
const top = await be.topLogprobs(inp.top);
const hidden = await be.lastHidden(inp.score);
console.log(JSON.stringify({
  score: sc.map((s) => ({ logprobs: arr(s.logprobs), entropies: arr(s.entropies) })),
  loss: bw.loss, logprobs: bw.logprobs.map(arr), entropies: bw.entropies.map(arr), grads, norm,
  top: top.map((r) => r.map((p) => ({ logprob: p.logprob, ids: p.top.map((t) => t.id), lps: p.top.map((t) => t.logprob) }))),
  hidden: hidden.map(arr),
}));
