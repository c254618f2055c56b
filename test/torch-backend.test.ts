/**
 * TorchBackend against the real worker (worker/colloquy_worker, float32, on the CPU or on $COLLOQUY_TEST_DEVICE)
 * and the CPU backend on the same model (../shared/fixtures/hf-llama/tiny-llama-gqa and its PEFT adapter): score
 * (base, LoRA, temperature, from), top log-probs, last hidden states, backward gradients (one SGD step with lr 1
 * from identical weights), clip norms, AdamW steps with their moments, greedy samples, stop strings; the seam's
 * errors; a llama2.c model converted on the way (stories260K); no worker left after close. Skipped, saying why,
 * without the worker package or without a Python that imports torch.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { type TestContext, after, before, test } from "node:test";
import { type AdapterState, CpuBackend, type ScoreRequest, type TrainRow } from "../src/engine/backend.ts";
import type { LoraConfig } from "../src/engine/lora.ts";
import type { OptimizerConfig } from "../src/engine/optim.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { readPeftAdapter } from "../src/formats/peft.ts";
import { ADAPTER_TENSORS_FIELD } from "../src/torch/adapters.ts";
import { type TorchBackend, openTorchBackend } from "../src/torch/backend.ts";
import { UserError } from "../src/util/errors.ts";
import { Rng } from "../src/util/rng.ts";
import { NO_TORCH, PYTHON, ROOT, TORCH_DEVICE, alive, assertClose, shared } from "./support.ts";

const FIXTURE = shared("fixtures/hf-llama/tiny-llama-gqa");
const STORIES = shared("data/models/stories260K/stories260K.bin");
const TOL = 1e-5;
// another copy of the worker package (its parent folder), e.g. one being worked on
const WORKER_DIR = process.env.COLLOQUY_TEST_WORKER_DIR || path.join(ROOT, "worker");
const WORKER = { workerDir: WORKER_DIR, onStderr: () => {} };
const ON = { device: TORCH_DEVICE, dtype: "float32" } as const;

function skipReason(): string | false {
  if (!fs.existsSync(path.join(WORKER_DIR, "colloquy_worker/__main__.py")))
    return `needs the torch worker (${WORKER_DIR}/colloquy_worker/__main__.py is not there yet)`;
  return NO_TORCH || FIXTURE.skip;
}
const SKIP = skipReason();
if (SKIP) console.log(`# torch-backend: skipped: ${SKIP}`);

/** Largest differences seen, printed at the end (the report quotes them). */
const worst: Record<string, number> = {};
const note = (what: string, d: number) => (worst[what] = Math.max(worst[what] ?? 0, d));
/** assertClose where NaN (positions before `from`) must match NaN. */
function close(label: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOL, rtol = 0): void {
  assert.equal(got.length, want.length, `${label}: length`);
  const idx = Array.from({ length: want.length }, (_, i) => i).filter((i) => !Number.isNaN(want[i]));
  for (let i = 0; i < want.length; i++)
    assert.equal(Number.isNaN(got[i]), Number.isNaN(want[i]), `${label}: element ${i} is ${got[i]}, want ${want[i]}`);
  note(
    label.split(" ")[0],
    assertClose(
      label,
      idx.map((i) => got[i]),
      idx.map((i) => want[i]),
      tol,
      rtol,
    ),
  );
}

let cpu: CpuBackend;
let torch: TorchBackend;
let peft: AdapterState;
const both = () => [cpu, torch] as const;

before(async () => {
  if (SKIP) return;
  const m = loadModel(FIXTURE.path);
  cpu = new CpuBackend(new Transformer(m.config, m.weights));
  torch = await openTorchBackend({ modelPath: FIXTURE.path, config: m.config, python: PYTHON, worker: WORKER, ...ON });
  peft = readPeftAdapter(path.join(FIXTURE.path, "adapter"), m.config);
  await cpu.importAdapter("peft", peft);
  try {
    await torch.importAdapter("peft", peft);
  } catch (e) {
    // PROTOCOL.md names import_adapter's tensor list `tensors`, the frame header's own list: until client and
    // worker agree on another name (src/torch/adapters.ts ADAPTER_TENSORS_FIELD), adapters cannot cross
    if (!(e instanceof UserError && /\b(tensors|weights)\b/.test(e.message))) throw e;
    const tb = /full traceback: (.*)$/.exec(e.hint ?? "")?.[1];
    if (tb) fs.rmSync(tb, { force: true });
    NO_ADAPTERS = `adapters cannot cross to this worker (${e.oneLine()}): import_adapter's field "tensors" clashes with the frame's "tensors" list; the client sends "${ADAPTER_TENSORS_FIELD}"`;
    console.log(`# torch-backend: ${NO_ADAPTERS}`);
  }
});

let NO_ADAPTERS: string | false = false;
/** Skips a test that needs adapters on the worker when they cannot cross (then says why). */
function needsAdapters(t: TestContext): boolean {
  if (NO_ADAPTERS) t.skip(NO_ADAPTERS);
  return !NO_ADAPTERS;
}

after(async () => {
  if (SKIP || !torch) return;
  const pid = torch.pid;
  await torch.close();
  assert.equal(alive(pid), false, "no worker after close");
  console.log(
    `# torch vs cpu, largest differences: ${Object.entries(worst)
      .map(([k, v]) => `${k} ${v.toExponential(2)}`)
      .join(", ")}`,
  );
});

function randomRows(n: number, T: number, seed: number, V = 320): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => Array.from({ length: T + 7 * i }, () => rng.int(V)));
}

test("the base model alone: score, top log-probs, last hidden states, a backward pass, greedy samples", { skip: SKIP }, async () => {
  const rows = randomRows(3, 18, 21);
  const scoreReq = rows.map((tokens, i) => ({ tokens, adapter: null, from: 1 + i, temperature: [1, 0.6, 1.4][i] }));
  const [sw, sg] = await Promise.all(both().map((b) => b.score(scoreReq)));
  sg.forEach((g, i) => {
    close(`score row ${i} logprobs`, g.logprobs, sw[i].logprobs);
    close(`entropy row ${i}`, g.entropies, sw[i].entropies);
  });
  const topReq = rows.map((tokens) => ({ tokens, adapter: null, from: 3, k: 4 }));
  const [tw, tg] = await Promise.all(both().map((b) => b.topLogprobs(topReq)));
  tg.forEach((row, i) =>
    row.forEach((p, t) => {
      close(
        `top row ${i} pos ${t}`,
        [p.logprob, ...p.top.map((x) => x.logprob)],
        [tw[i][t].logprob, ...tw[i][t].top.map((x) => x.logprob)],
      );
      assert.deepEqual(
        p.top.map((x) => x.id),
        tw[i][t].top.map((x) => x.id),
      );
    }),
  );
  const [hw, hg] = await Promise.all(both().map((b) => b.lastHidden(rows.map((tokens) => ({ tokens, adapter: null })))));
  hg.forEach((h, i) => close(`hidden row ${i}`, h, hw[i], TOL, TOL));
  const train = rows.map((tokens) => ({
    tokens,
    adapter: null,
    weights: tokens.map((_, t) => (t ? 1 : 0)),
    entropyWeights: tokens.map(() => 0.05),
  }));
  const [bw, bg] = await Promise.all(both().map((b) => b.backward(train, 3)));
  close("loss", [bg.loss], [bw.loss]);
  bg.logprobs.forEach((l, i) => close(`train-logprobs row ${i}`, l, bw.logprobs[i]));
  const greedy = [{ prompt: [1, 5, 9], adapter: null, maxTokens: 25, sampling: { temperature: 0 }, ignoreEos: true }];
  const [gw, gg] = await Promise.all(both().map((b) => b.sample(greedy, [4])));
  assert.deepEqual(gg[0].ids, gw[0].ids);
  close("sample-logprobs", gg[0].logprobs, gw[0].logprobs);
});

test("score: base and LoRA rows mixed, temperature and from, within 1e-5", { skip: SKIP }, async (t) => {
  if (!needsAdapters(t)) return;
  const rows = randomRows(4, 20, 1);
  const requests: ScoreRequest[] = [
    { tokens: rows[0], adapter: null },
    { tokens: rows[1], adapter: "peft", from: 5 },
    { tokens: rows[2], adapter: null, temperature: 0.7 },
    { tokens: rows[3], adapter: "peft", temperature: 1.3, from: 2 },
    { tokens: rows[0].slice(0, 3), adapter: "peft", from: 3 },
  ];
  const [want, got] = await Promise.all(both().map((b) => b.score(requests)));
  got.forEach((g, i) => {
    close(`score row ${i} logprobs`, g.logprobs, want[i].logprobs);
    close(`entropy row ${i}`, g.entropies, want[i].entropies);
  });
});

test("topLogprobs and lastHidden, within 1e-5", { skip: SKIP }, async (t) => {
  if (!needsAdapters(t)) return;
  const rows = randomRows(3, 12, 2);
  const requests = [
    { tokens: rows[0], adapter: null, from: 1, k: 5 },
    { tokens: rows[1], adapter: "peft", from: 8, k: 0 },
    { tokens: rows[2], adapter: "peft", from: rows[2].length, k: 3 },
  ];
  const [want, got] = await Promise.all(both().map((b) => b.topLogprobs(requests)));
  assert.deepEqual(
    got.map((r) => r.length),
    want.map((r) => r.length),
  );
  got.forEach((row, i) =>
    row.forEach((p, t) => {
      close(
        `top row ${i} pos ${t}`,
        [p.logprob, ...p.top.map((x) => x.logprob)],
        [want[i][t].logprob, ...want[i][t].top.map((x) => x.logprob)],
      );
      assert.deepEqual(
        p.top.map((x) => x.id),
        want[i][t].top.map((x) => x.id),
        `top ids row ${i} pos ${t}`,
      );
    }),
  );
  const hidden = rows.map((tokens, i) => ({ tokens, adapter: i % 2 ? "peft" : null }));
  const [hw, hg] = await Promise.all(both().map((b) => b.lastHidden(hidden)));
  hg.forEach((h, i) => close(`hidden row ${i}`, h, hw[i], TOL, TOL)); // values of order 1: relative too
});

const TRAIN: TrainRow[] = [
  { tokens: randomRows(1, 24, 3)[0], adapter: "t", weights: Array.from({ length: 24 }, (_, t) => (t < 4 ? 0 : 0.5 - (t % 3))), from: 4 },
  {
    tokens: randomRows(1, 16, 4)[0],
    adapter: "t",
    weights: Array.from({ length: 16 }, (_, t) => (t ? 1 : 0)),
    entropyWeights: Array.from({ length: 16 }, () => 0.1),
    temperature: 0.9,
  },
  { tokens: randomRows(1, 10, 5)[0], adapter: null, weights: Array.from({ length: 10 }, (_, t) => (t ? 1 : 0)) },
];

/** Both backends hold adapter `name`: the PEFT adapter's weights (B ≠ 0, so every gradient is non-zero) and `opt`. */
async function trainable(name: string, opt: OptimizerConfig): Promise<LoraConfig> {
  for (const b of both()) {
    await b.createAdapter(name, peft.lora, 11, opt);
    await b.importAdapter(name, { ...peft, optimizer: null });
  }
  return peft.lora;
}

function compareStates(label: string, got: AdapterState, want: AdapterState, tol = TOL): void {
  assert.deepEqual(got.lora, want.lora);
  assert.deepEqual(
    got.tensors.map((t) => [t.name, t.shape]),
    want.tensors.map((t) => [t.name, t.shape]),
  );
  got.tensors.forEach((t, i) => close(`${label} ${t.name}`, t.data, want.tensors[i].data, tol));
  assert.equal(got.optimizer?.step, want.optimizer?.step);
  assert.deepEqual(Object.keys(got.optimizer?.moments ?? {}).sort(), Object.keys(want.optimizer?.moments ?? {}).sort());
  for (const [m, per] of Object.entries(want.optimizer?.moments ?? {})) {
    for (const [n, d] of Object.entries(per)) close(`${label}-${m} ${n}`, got.optimizer!.moments[m][n], d, tol);
  }
}

test("backward: loss, log-probs, gradients (one SGD step with lr 1) and the clip norm, within 1e-5", { skip: SKIP }, async (t) => {
  if (!needsAdapters(t)) return;
  const sgd: OptimizerConfig = { kind: "sgd", beta1: 0, beta2: 0, eps: 0, weightDecay: 0 };
  await trainable("t", sgd);
  const results = [];
  for (const b of both()) {
    await b.zeroGrad(["t"]);
    results.push(await b.backward(TRAIN, 7));
  }
  const [want, got] = results;
  close("loss", [got.loss], [want.loss]);
  got.logprobs.forEach((l, i) => close(`train-logprobs row ${i}`, l, want.logprobs[i]));
  got.entropies.forEach((e, i) => close(`train-entropies row ${i}`, e, want.entropies[i]));
  const [nw, ng] = await Promise.all(both().map((b) => b.clipGradNorm(["t"], 0)));
  close("grad-norm", [ng], [nw], TOL * Math.max(1, nw));
  console.log(`# gradient norm ${nw}`);
  // w' = w − 1 · grad: the exported weights differ by the gradients' difference
  for (const b of both()) await b.step(["t"], 1);
  const [sw, sg] = await Promise.all(both().map((b) => b.exportAdapter("t")));
  compareStates("grad", sg, sw);
});

test("AdamW: two steps with clipping, weights and moments within 1e-5; the state exports and imports", { skip: SKIP }, async (t) => {
  if (!needsAdapters(t)) return;
  const adamw: OptimizerConfig = { kind: "adamw", beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
  await trainable("w", adamw);
  const rows = TRAIN.map((r) => ({ ...r, adapter: r.adapter && "w" }));
  const norms: number[][] = [[], []];
  for (let s = 0; s < 2; s++) {
    for (const [k, b] of both().entries()) {
      await b.zeroGrad(["w"]);
      await b.backward(rows, 5);
      norms[k].push(await b.clipGradNorm(["w"], 0.5));
      await b.step(["w"], 1e-2);
    }
  }
  close("adamw-norms", norms[1], norms[0], TOL * Math.max(1, ...norms[0]));
  assert.ok(norms[0][0] > 0.5, "clipping was active");
  const [want, got] = await Promise.all(both().map((b) => b.exportAdapter("w")));
  assert.equal(got.optimizer?.step, 2);
  compareStates("adamw", got, want);
  // the CPU's state imported into the worker's adapter: exported back the same
  await torch.importAdapter("w", want);
  compareStates("import", await torch.exportAdapter("w"), want, 0);
});

test("greedy samples: the same ids (base and LoRA), log-probs within 1e-5; stop strings and stop tokens", { skip: SKIP }, async (t) => {
  if (!needsAdapters(t)) return;
  const prompt = [1, 17, 42, 99];
  const requests = [
    { prompt, adapter: null, maxTokens: 30, sampling: { temperature: 0 }, ignoreEos: true },
    { prompt, adapter: "peft", maxTokens: 30, sampling: { temperature: 0 }, ignoreEos: true },
    { prompt: [1], adapter: "peft", maxTokens: 0 },
  ];
  const [want, got] = await Promise.all(both().map((b) => b.sample(requests, [1, 2, 3])));
  got.forEach((g, i) => {
    assert.deepEqual(g.ids, want[i].ids, `row ${i} ids`);
    assert.equal(g.finishReason, want[i].finishReason);
    close(`sample-logprobs row ${i}`, g.logprobs, want[i].logprobs);
  });
  // stop at a token and at a string that the greedy rows reach (decode: ids as text)
  const decode = (ids: number[]) => ids.map((id) => `<${id}>`).join("");
  const stopped = [
    { ...requests[0], stopTokens: [want[0].ids[12]], ignoreEos: false },
    { ...requests[1], stopStrings: [`<${want[1].ids[9]}><${want[1].ids[10]}>`] },
  ];
  const [sw, sg] = await Promise.all(both().map((b) => b.sample(stopped, [1, 2], decode)));
  assert.deepEqual(
    sg.map((r) => ({ ...r, logprobs: null })),
    sw.map((r) => ({ ...r, logprobs: null })),
  );
  assert.deepEqual(
    sg.map((r) => r.finishReason),
    ["eos", "stop"],
  );
  // seeded sampling on the worker: the same seed gives the same ids
  const seeded = [{ prompt, adapter: "peft", maxTokens: 20, sampling: { temperature: 1, topK: 50, topP: 0.95 } }];
  const [a, b] = [await torch.sample(seeded, [77]), await torch.sample(seeded, [77])];
  assert.deepEqual(a[0].ids, b[0].ids);
});

test("the seam's errors: unknown adapters, bad rows, bad imports (as the CPU backend's); the worker goes on", { skip: SKIP }, async (t) => {
  if (!needsAdapters(t)) return;
  for (const b of both()) {
    await assert.rejects(b.score([{ tokens: [1, 2], adapter: "nope" }]), /no adapter named nope/);
    await assert.rejects(b.score([{ tokens: [1, 2, 3], adapter: null, from: 0 }]), (e: UserError) => e.code === "E_BAD_FROM");
    await assert.rejects(b.score([{ tokens: [1, 2, 3], adapter: null, temperature: 0 }]), (e: UserError) => e.code === "E_BAD_TEMPERATURE");
    await assert.rejects(b.score([{ tokens: [1, 999], adapter: null }]), (e: UserError) => e.code === "E_TOKEN_RANGE");
    await assert.rejects(
      b.backward([{ tokens: [1, 2, 3], adapter: null, weights: [0, 1] }], 1),
      (e: UserError) => e.code === "E_BAD_WEIGHTS",
    );
    await assert.rejects(
      b.backward([{ tokens: [1, 2, 3], adapter: null, weights: [0, 1, 1] }], 0),
      (e: UserError) => e.code === "E_BAD_NORMALISER",
    );
    await assert.rejects(b.sample([{ prompt: [], adapter: null, maxTokens: 3 }], [1]), (e: UserError) => e.code === "E_EMPTY_PROMPT");
    await assert.rejects(
      b.importAdapter("peft", { ...peft, tensors: peft.tensors.slice(1) }),
      (e: UserError) => e.code === "E_MISSING_TENSOR",
    );
    await assert.rejects(b.importAdapter("peft", { ...peft, lora: { ...peft.lora, alpha: 99 } }), /alpha 8.*alpha 99/);
    await assert.rejects(b.zeroGrad(["peft"]), /has no optimizer/);
    await assert.rejects(
      b.createAdapter("peft", peft.lora, 1, { kind: "sgd", beta1: 0, beta2: 0, eps: 0, weightDecay: 0 }),
      /exists already/,
    );
    await assert.rejects(b.exportAdapter("nope"), /no adapter named nope/);
  }
  // calls made without waiting take effect in order: the score sees the adapter created just before it
  const made = torch.createAdapter("later", peft.lora, 5, { kind: "sgd", beta1: 0, beta2: 0, eps: 0, weightDecay: 0 });
  const scored = torch.score([{ tokens: [1, 2, 3], adapter: "later" }]);
  await made;
  assert.equal((await scored)[0].logprobs.length, 3);
});

test("a llama2.c model (stories260K): converted for the worker, scores as the CPU backend on the .bin; adapters cross permuted", {
  skip: SKIP || STORIES.skip,
}, async () => {
  const m = loadModel(STORIES.path);
  const c = new CpuBackend(new Transformer(m.config, m.weights));
  const t = await openTorchBackend({
    modelPath: STORIES.path,
    config: m.config,
    weights: m.weights,
    python: PYTHON,
    worker: WORKER,
    ...ON,
  });
  try {
    assert.equal(t.config.ropeStyle, "interleaved");
    // text the model itself writes (random ids give log-probs near −15, where float32 rounding alone reaches 1e-5)
    const texts = await c.sample(
      [0, 1].map(() => ({ prompt: [1], adapter: null, maxTokens: 80, ignoreEos: true })),
      [8, 9],
    );
    const base = texts.map((r) => ({ tokens: [1, ...r.ids], adapter: null }));
    const [bw, bg] = [await c.score(base), await t.score(base)];
    bg.forEach((g, i) => close(`llama2c row ${i}`, g.logprobs, bw[i].logprobs));
    const greedy = [{ prompt: [1], adapter: null, maxTokens: 40, sampling: { temperature: 0 } }];
    assert.deepEqual((await t.sample(greedy, [1]))[0].ids, (await c.sample(greedy, [1]))[0].ids);
    if (NO_ADAPTERS) return console.log(`# llama2.c adapters not tried: ${NO_ADAPTERS}`);
    const lora: LoraConfig = { rank: 2, alpha: 4, rslora: false, targets: ["q", "k", "v"] };
    // ε 1e-4: Adam's first step is lr·g/(|g| + ε), so with ε 1e-8 a gradient element near 1e-8 turns a rounding
    // difference of the two engines (PyTorch 2's fused attention rounds differently) into a change of order lr
    const opt: OptimizerConfig = { kind: "adamw", beta1: 0.9, beta2: 0.999, eps: 1e-4, weightDecay: 0 };
    await c.createAdapter("x", lora, 1, opt);
    const st = await c.exportAdapter("x");
    const rng = new Rng(9);
    for (const x of st.tensors) for (let i = 0; i < x.data.length; i++) x.data[i] = (rng.float() - 0.5) * 0.2;
    await c.importAdapter("x", st);
    await t.createAdapter("x", lora, 1, opt);
    await t.importAdapter("x", st);
    const rows = base.map((r) => ({ ...r, adapter: "x" }));
    const [want, got] = [await c.score(rows), await t.score(rows)];
    got.forEach((g, i) => close(`llama2c row ${i}`, g.logprobs, want[i].logprobs));
    // one AdamW step on both: the q and k rows come back in llama2.c's order
    const train = [{ tokens: rows[1].tokens, adapter: "x", weights: rows[1].tokens.map((_, k) => (k ? 1 : 0)) }];
    for (const b of [c, t]) {
      await b.backward(train, 60);
      await b.step(["x"], 1e-2);
    }
    compareStates("llama2c-adamw", await t.exportAdapter("x"), await c.exportAdapter("x"));
  } finally {
    await t.close();
  }
});

/** A Python on PATH that lacks torch, if there is one (pyenv's often does). */
function pythonWithoutTorch(): string | null {
  for (const p of ["python3", "python"]) {
    const r = spawnSync(p, ["-c", "import sys; import torch"], { encoding: "utf8" });
    if (r.error === undefined && r.status !== 0 && /No module named .?torch/.test(r.stderr)) return p;
  }
  return null;
}
const NO_TORCH_PYTHON = fs.existsSync(path.join(WORKER_DIR, "colloquy_worker/__main__.py")) ? pythonWithoutTorch() : null;

test("openTorchBackend: a Python without torch, or none at all, is one line with the install hint", {
  skip: FIXTURE.skip || (NO_TORCH_PYTHON ? false : "needs the worker package and a Python on PATH without torch"),
}, async () => {
  const m = loadModel(FIXTURE.path);
  for (const [python, re] of [
    [
      NO_TORCH_PYTHON!,
      /^error\[E_NO_TORCH\]: the Python at \S+ cannot import torch \(hint: apt-get install python3-torch, or pip install torch; or set --python \/ \$COLLOQUY_PYTHON\)$/,
    ],
    ["/nonexistent/python", /^error\[E_NO_PYTHON\]: no Python at \/nonexistent\/python \(hint: apt-get/],
  ] as const) {
    await assert.rejects(openTorchBackend({ modelPath: FIXTURE.path, config: m.config, python, worker: WORKER }), (e: UserError) =>
      re.test(e.oneLine()),
    );
  }
});
