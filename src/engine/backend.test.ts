/**
 * The Backend seam on the CPU backend: adapters as plain data (export → import gives the same numbers, training
 * included), clear errors for data that does not fit, `decode(ids, row)` in request order, and topLogprobs agreeing
 * with score.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tinyModel } from "../../test/tiny.ts";
import { type AdapterState, CpuBackend, type TrainRow } from "./backend.ts";
import { DEFAULT_OPTIMIZER } from "./optim.ts";

const LORA = { rank: 2, alpha: 4, rslora: false, targets: ["q", "v", "down"] as ("q" | "v" | "down")[] };
const ROWS: TrainRow[] = [
  { tokens: [1, 5, 9, 12, 7], adapter: "a", weights: [0, 0, 0.5, -1, 2], from: 2 },
  { tokens: [1, 3, 4], adapter: "a", weights: [0, 1, 1] },
];

async function trainOnce(b: CpuBackend): Promise<number> {
  await b.zeroGrad(["a"]);
  const r = await b.backward(ROWS, 3);
  const norm = await b.clipGradNorm(["a"], 1);
  await b.step(["a"], 0.01);
  return r.loss + norm;
}

test("exportAdapter → importAdapter: the same weights, optimizer state and the next updates bit for bit", async () => {
  const a = new CpuBackend(tinyModel());
  await a.createAdapter("a", LORA, 7, DEFAULT_OPTIMIZER);
  for (let i = 0; i < 3; i++) await trainOnce(a);
  const state = await a.exportAdapter("a");
  assert.deepEqual(Object.keys(state.optimizer!.moments), ["exp_avg", "exp_avg_sq"]);
  assert.equal(state.optimizer!.step, 3);
  assert.equal(state.tensors[0].name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  assert.deepEqual(state.tensors[0].shape, [2, 32]);

  const b = new CpuBackend(tinyModel());
  await b.createAdapter("a", LORA, 99, DEFAULT_OPTIMIZER); // other initial weights, replaced by the import
  await b.importAdapter("a", state);
  assert.deepEqual(await b.exportAdapter("a"), state);
  for (let i = 0; i < 2; i++) assert.equal(await trainOnce(b), await trainOnce(a));
  assert.deepEqual(await b.exportAdapter("a"), await a.exportAdapter("a"));

  // the exported arrays are copies: changing them changes nothing in the backend
  const copy = await a.exportAdapter("a");
  copy.tensors[0].data.fill(0);
  assert.notDeepEqual((await a.exportAdapter("a")).tensors[0].data, copy.tensors[0].data);
});

test("importAdapter of a new name: an inference adapter that scores as the original", async () => {
  const a = new CpuBackend(tinyModel());
  await a.createAdapter("a", LORA, 3, DEFAULT_OPTIMIZER);
  await trainOnce(a);
  const { optimizer: _o, ...weights } = await a.exportAdapter("a");
  await a.importAdapter("copy", { ...weights, optimizer: null });
  const [x, y] = await a.score([
    { tokens: [1, 5, 9, 12], adapter: "a" },
    { tokens: [1, 5, 9, 12], adapter: "copy" },
  ]);
  assert.deepEqual(y.logprobs, x.logprobs);
  assert.equal((await a.exportAdapter("copy")).optimizer, null);
  await assert.rejects(a.zeroGrad(["copy"]), /no optimizer/);
});

test("importAdapter: data that does not fit is a clear error and changes nothing", async () => {
  const b = new CpuBackend(tinyModel());
  await b.createAdapter("a", LORA, 3, DEFAULT_OPTIMIZER);
  const good = await b.exportAdapter("a");
  const bad = (f: (s: AdapterState) => void): AdapterState => {
    const s = structuredClone(good);
    f(s);
    return s;
  };
  await assert.rejects(
    b.importAdapter(
      "a",
      bad((s) => (s.tensors[1] = { ...s.tensors[1], shape: [33, 2], data: new Float32Array(66) })),
    ),
    /has shape \[33, 2\].*needs \[32, 2\]/,
  );
  await assert.rejects(
    b.importAdapter(
      "a",
      bad((s) => s.tensors.pop()),
    ),
    /is missing/,
  );
  await assert.rejects(
    b.importAdapter(
      "a",
      bad((s) => (s.lora = { ...s.lora, alpha: 8 })),
    ),
    /alpha 4.*alpha 8/,
  );
  await assert.rejects(
    b.importAdapter(
      "a",
      bad((s) => delete s.optimizer!.moments.exp_avg_sq),
    ),
    /exp_avg_sq is missing/,
  );
  await assert.rejects(
    b.importAdapter(
      "a",
      bad((s) => (s.optimizer!.moments.momentum_buffer = {})),
    ),
    /momentum_buffer does not belong to adamw/,
  );
  await assert.rejects(b.importAdapter("new", good), /no optimizer/);
  await assert.rejects(b.exportAdapter("new"), /no adapter named new/);
  assert.deepEqual(await b.exportAdapter("a"), good);
  await assert.rejects(b.createAdapter("a", LORA, 1, DEFAULT_OPTIMIZER), /exists/);
});

test("sample: decode gets (ids, row) with rows in request order, whatever the adapters", async () => {
  const b = new CpuBackend(tinyModel());
  await b.createAdapter("z", LORA, 3, DEFAULT_OPTIMIZER);
  const prompts = [
    [1, 5],
    [1, 6, 7],
    [1, 8],
  ];
  const seen = new Map<number, number[]>();
  const requests = prompts.map((prompt, i) => ({ prompt, adapter: i === 1 ? null : "z", maxTokens: 4, ignoreEos: true }));
  const out = await b.sample(requests, [1, 2, 3], (ids, row) => {
    seen.set(row, [...ids]);
    return ids.join(" ");
  });
  out.forEach((r, i) => {
    assert.deepEqual(seen.get(i), r.ids);
    assert.equal(r.text, r.ids.join(" "));
  });
  const [alone] = await b.sample([requests[1]], [2]);
  assert.deepEqual(alone.ids, out[1].ids);
});

test("topLogprobs: the tokens' log-probs as score gives them, and the k most likely first", async () => {
  const b = new CpuBackend(tinyModel());
  const tokens = [1, 5, 9, 12, 7, 3];
  const [pass] = await b.topLogprobs([{ tokens, adapter: null, from: 2, k: 3 }]);
  const [s] = await b.score([{ tokens, adapter: null, from: 2 }]);
  assert.equal(pass.length, tokens.length - 2);
  pass.forEach((p, i) => {
    assert.ok(Math.abs(p.logprob - s.logprobs[i + 2]) < 1e-5, `position ${i + 2}`);
    assert.equal(p.top.length, 3);
    assert.ok(p.top[0].logprob >= p.top[1].logprob && p.top[1].logprob >= p.top[2].logprob);
    assert.ok(p.top[0].logprob >= p.logprob - 1e-9);
  });
  assert.deepEqual(await b.topLogprobs([{ tokens: [1, 2], adapter: null, from: 2, k: 1 }]), [[]]);
  await assert.rejects(b.topLogprobs([{ tokens, adapter: "nope", from: 1, k: 1 }]), /no adapter named nope/);
});
