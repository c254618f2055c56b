import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { TORCH_FIXTURES, shared, tmpDir } from "../../test/support.ts";
import { createAdapter, initAdapterWeights } from "../engine/lora.ts";
import { scoreRows } from "../engine/score.ts";
import { Transformer } from "../engine/transformer.ts";
import { UserError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";
import { loadModel } from "./load-model.ts";
import { loadPeftAdapter, parseAdapterConfig, savePeftAdapter } from "./peft.ts";
import { SafetensorsFile } from "./safetensors.ts";

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

const PEFT_ADAPTER = shared("fixtures/hf-llama/tiny-llama-gqa/adapter");

test("adapters as colloquy writes them: every key of PEFT's adapter_config.json, PEFT's tensor names, dtypes, shapes", {
  skip: PEFT_ADAPTER.skip,
}, () => {
  // the fixture was written by PEFT 0.21 (PeftModel.save_pretrained) for tiny-llama-gqa, r 4, alpha 8, every linear
  // layer; a config saved with a task type holds the same keys, auto_mapping null (PEFT fills it only without one)
  const fixture = JSON.parse(fs.readFileSync(path.join(PEFT_ADAPTER.path, "adapter_config.json"), "utf8"));
  const lm = loadModel(path.dirname(PEFT_ADAPTER.path));
  const a = createAdapter("a", lm.config, { rank: 4, alpha: 8, rslora: false, targets: ["q", "k", "v", "o", "gate", "up", "down"] });
  const out = path.join(tmpDir(), "adapter");
  savePeftAdapter(out, a, "base/model");
  const written = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  const missing = Object.keys(fixture).filter((k) => !(k in written));
  assert.deepEqual(missing, [], `keys PEFT writes that colloquy's adapter_config.json lacks: ${missing.join(", ")}`);
  assert.deepEqual(Object.keys(written), Object.keys(written).sort(), "sorted, as PEFT writes them (sort_keys=True)");
  const ours = ["auto_mapping", "task_type", "init_lora_weights", "target_modules", "peft_version", "base_model_name_or_path"];
  const differ = Object.keys(fixture).filter((k) => !ours.includes(k) && JSON.stringify(written[k]) !== JSON.stringify(fixture[k]));
  assert.deepEqual(differ, [], "the same values as PEFT's for the same adapter");
  assert.deepEqual([...written.target_modules].sort(), [...fixture.target_modules].sort());
  assert.equal(written.task_type, "CAUSAL_LM");
  assert.equal(written.auto_mapping, null);
  assert.equal(written.base_model_name_or_path, "base/model");
  // colloquy reads both back as the same LoRA
  assert.deepEqual(parseAdapterConfig(written, "w", 2), parseAdapterConfig(fixture, "f", 2));
  // adapter_model.safetensors: the tensors PEFT saves for the same model and LoRA, by name, dtype and shape
  const layout = (file: string) => {
    const f = SafetensorsFile.open(file);
    const entries = [...f.tensors.values()].map((t) => `${t.name} ${t.dtype} [${t.shape}]`).sort();
    f.close();
    return { entries, metadata: f.metadata };
  };
  assert.deepEqual(layout(path.join(out, "adapter_model.safetensors")), layout(path.join(PEFT_ADAPTER.path, "adapter_model.safetensors")));
});

test("adapter configs: target_modules regexes are matched in linear time against every layer's module names", () => {
  const t0 = performance.now();
  assert.deepEqual(parseAdapterConfig({ r: 2, target_modules: "(.*.*)*_proj" }, "c", 32).targets, [
    "q",
    "k",
    "v",
    "o",
    "gate",
    "up",
    "down",
  ]);
  assert.deepEqual(parseAdapterConfig({ r: 2, target_modules: "(.*.*)*(q|v)_proj" }, "c", 32).targets, ["q", "v"]);
  assert.throws(
    () => parseAdapterConfig({ r: 2, target_modules: "(.*.*)*y" }, "/a/adapter_config.json", 32),
    /adapter_config\.json: target_modules regex .* selects no linear layer/,
  );
  assert.ok(performance.now() - t0 < 3000, "catastrophic patterns must not backtrack");
  const fails = (target_modules: unknown, why: RegExp, extra: object = {}) =>
    assert.throws(
      () => parseAdapterConfig({ r: 2, target_modules, ...extra }, "/a/adapter_config.json", 4),
      (e: unknown) => e instanceof UserError && why.test(e.message) && e.message.startsWith("/a/adapter_config.json: "),
      why.source,
    );
  fails("(q_proj", /cannot be used: missing \)/);
  fails("(?<=attn\\.)q_proj", /cannot be used: .*not supported/);
  fails(".*layers\\.[01]\\..*q_proj", /selects q in layer 0 but nothing in layer 2/);
  fails(".*", /selects embed_tokens/);
  fails(["q_proj", 7], /target module 7 is not a LLaMA linear layer/);
  fails(["toString"], /target module "toString"/);
  fails({ q_proj: 1 }, /target_modules must be a regex or a non-empty list/);
  fails(["q_proj"], /r must be a positive integer \(at most 65536\)/, { r: 1e9 });
  for (const key of ["lora_bias", "use_qalora"]) fails(["q_proj"], new RegExp(`${key}=true is not supported`), { [key]: true });
  for (const key of ["exclude_modules", "target_parameters", "trainable_token_indices", "alora_invocation_tokens", "layer_replication"]) {
    fails(["q_proj"], new RegExp(`${key}=.* is not supported`), { [key]: ["x"] });
  }
  assert.throws(() => parseAdapterConfig([1], "/a/c.json"), /not a JSON object/);
});
