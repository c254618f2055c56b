import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { TORCH_FIXTURES, tmpDir } from "../../test/support.ts";
import { createAdapter, initAdapterWeights } from "../engine/lora.ts";
import { scoreRows } from "../engine/score.ts";
import { Transformer } from "../engine/transformer.ts";
import { UserError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";
import { loadModel } from "./load-model.ts";
import { loadPeftAdapter, parseAdapterConfig, savePeftAdapter } from "./peft.ts";

const DIR = path.join(TORCH_FIXTURES, "llama3-gqa-bf16");

test("an adapter saved and loaded again gives bit-identical scores", () => {
  const lm = loadModel(DIR);
  const m = new Transformer(lm.config, lm.weights);
  const a = createAdapter("a", lm.config, { rank: 3, alpha: 7, rslora: true, targets: ["v", "q", "down"] });
  initAdapterWeights(a, new Rng(1));
  const rng = new Rng(2);
  for (const t of a.weights.tensors) for (let i = 0; i < t.view.length; i++) t.view[i] += 0.1 * rng.normal(); // B ≠ 0
  const out = path.join(tmpDir(), "adapter");
  savePeftAdapter(out, a, DIR);
  const b = loadPeftAdapter(out, lm.config);
  assert.deepEqual(b.lora, a.lora);
  const tokens = [5, 9, 33, 2, 100, 7, 64, 1];
  const [sa, sb] = scoreRows(m, [
    { tokens, adapter: a },
    { tokens, adapter: b },
  ]);
  assert.deepEqual(Array.from(sb.logprobs), Array.from(sa.logprobs));
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj", "down_proj"]);
  assert.equal(cfg.use_rslora, true);
});

test("new adapters start as PEFT does: A uniform in ±1/√in, B zero, seeded", () => {
  const lm = loadModel(DIR);
  const mk = (seed: number) => {
    const a = createAdapter("a", lm.config, { rank: 4, alpha: 8, rslora: false, targets: ["q", "down"] });
    initAdapterWeights(a, new Rng(seed));
    return a;
  };
  const a = mk(3);
  assert.deepEqual(Array.from(mk(3).weights.data), Array.from(a.weights.data));
  assert.notDeepEqual(Array.from(mk(4).weights.data), Array.from(a.weights.data));
  for (const layer of a.weights.layers) {
    for (const lin of Object.values(layer)) {
      const bound = 1 / Math.sqrt(lin!.inDim);
      assert.ok(lin!.A.every((x) => Math.abs(x) <= bound));
      assert.ok(Math.max(...lin!.A.map(Math.abs)) > 0.8 * bound);
      assert.ok(lin!.B.every((x) => x === 0));
    }
  }
});

test("adapter configs: target forms, unsupported features, bad values", () => {
  assert.deepEqual(parseAdapterConfig({ r: 8, lora_alpha: 16, target_modules: "all-linear" }, "c").targets, [
    "q",
    "k",
    "v",
    "o",
    "gate",
    "up",
    "down",
  ]);
  assert.deepEqual(parseAdapterConfig({ r: 8, target_modules: ".*(q_proj|v_proj)" }, "c").targets, ["q", "v"]);
  assert.deepEqual(parseAdapterConfig({ r: 8, target_modules: ["up_proj", "q_proj"] }, "c").targets, ["q", "up"]);
  assert.throws(
    () => parseAdapterConfig({ r: 8, target_modules: ["q_proj"], use_dora: true }, "/a/adapter_config.json"),
    (e: unknown) => e instanceof UserError && /use_dora/.test(e.message) && e.message.includes("/a/adapter_config.json"),
  );
  assert.throws(() => parseAdapterConfig({ r: 0, target_modules: ["q_proj"] }, "c"), /r must be a positive integer/);
  assert.throws(() => parseAdapterConfig({ r: 4, target_modules: ["embed_tokens"] }, "c"), /not a LLaMA linear layer/);
});
