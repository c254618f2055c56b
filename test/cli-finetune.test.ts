/**
 * `colloquy finetune` end to end: one SGD step with lr 1 moves every LoRA tensor by exactly minus the reference
 * gradient (transformers + PEFT, and PyTorch for other shapes); fine-tuning on a text lowers that text's loss.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { TORCH_FIXTURES, assertClose, maxAbs, runCli, shared, tmpDir } from "./support.ts";

const HF = shared("fixtures/hf-llama/tiny-llama-gqa");
const STORIES = shared("data/models/stories260K");

function checkSgdStep(
  label: string,
  model: string,
  adapterDir: string,
  reference: string,
  rows: number[][],
  gradName: (n: string) => string,
): void {
  const dir = tmpDir();
  const idsFile = path.join(dir, "ids.json");
  fs.writeFileSync(idsFile, JSON.stringify(rows));
  const out = path.join(dir, "adapter");
  const r = runCli([
    "finetune",
    "--model",
    model,
    "--adapter",
    adapterDir,
    "--ids-file",
    idsFile,
    "--optimizer",
    "sgd",
    "--lr",
    "1",
    "--steps",
    "1",
    "--max-grad-norm",
    "0",
    "--weight-decay",
    "0",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.steps, 1);
  assert.equal(summary.out, out);
  const before = SafetensorsFile.open(path.join(adapterDir, "adapter_model.safetensors"));
  const after = SafetensorsFile.open(path.join(out, "adapter_model.safetensors"));
  const ref = SafetensorsFile.open(reference);
  assert.equal(after.tensors.size, before.tensors.size);
  for (const name of before.tensors.keys()) {
    const g = ref.readF32(gradName(name));
    const want = before.readF32(name).map((x, i) => x - g[i]);
    assertClose(`${label} ${name}`, after.readF32(name), want, 1e-4 * maxAbs(g));
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
  assert.equal(cfg.peft_type, "LORA");
}

test("finetune --ids-file, SGD lr 1, one step: A and B move by exactly −grad (transformers + PEFT)", { skip: HF.skip }, () => {
  const ref = JSON.parse(fs.readFileSync(path.join(HF.path, "reference.json"), "utf8"));
  checkSgdStep(
    "tiny-llama-gqa",
    HF.path,
    path.join(HF.path, "adapter"),
    path.join(HF.path, "reference.safetensors"),
    ref.input_ids,
    (n) => `grad.${n.replace(/\.weight$/, ".default.weight")}`,
  );
});

for (const name of ["tied-mha-f16", "llama2c-interleaved"]) {
  test(`finetune SGD step matches PyTorch gradients on another shape (${name})`, () => {
    const dir = path.join(TORCH_FIXTURES, name);
    const ref = SafetensorsFile.open(path.join(dir, "reference.safetensors"));
    const rows = [0, 1].map((i) => Array.from(ref.readInt(`input_ids_${i}`)));
    const model = fs.existsSync(path.join(dir, "model.bin")) ? path.join(dir, "model.bin") : dir;
    checkSgdStep(name, model, path.join(dir, "adapter"), path.join(dir, "reference.safetensors"), rows, (n) => `grad.${n}`);
  });
}

test("fine-tuning a stories260K adapter on a short text lowers that text's loss", { skip: STORIES.skip }, () => {
  const dir = tmpDir();
  const text = path.join(dir, "text.txt");
  fs.writeFileSync(text, "The purple robot sang a song about seven green lemons. ".repeat(6));
  const model = path.join(STORIES.path, "stories260K.bin");
  const out = path.join(dir, "adapter");
  const r = runCli([
    "finetune",
    "--model",
    model,
    "--data",
    text,
    "--out",
    out,
    "--steps",
    "25",
    "--seq-len",
    "48",
    "--batch-size",
    "4",
    "--lr",
    "5e-3",
    "--rank",
    "4",
    "--json",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.ok(s.last_loss < s.first_loss - 0.5, `loss ${s.first_loss} → ${s.last_loss}`);
  const score = (extra: string[]) => {
    const o = runCli(["score", "--model", model, "--text", "The purple robot sang a song about seven green lemons.", "--json", ...extra]);
    assert.equal(o.status, 0, o.stderr);
    const lps: (number | null)[] = JSON.parse(o.stdout).logprobs;
    return lps.slice(1).reduce((a: number, b) => a + (b as number), 0);
  };
  const before = score([]),
    after = score(["--adapter", out]);
  assert.ok(after > before + 5, `log-likelihood ${before} → ${after}`);
});
