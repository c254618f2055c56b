/**
 * An adapter colloquy writes is one PEFT loads: `finetune` trains one on the tiny-llama-gqa fixture, then
 * transformers + peft (`PeftModel.from_pretrained`) load the base model and that folder and score the same tokens;
 * their log-probs equal `colloquy score --adapter`'s within 1e-5. Needs a Python with transformers and peft
 * ($COLLOQUY_HF_PYTHON, else the torch tests' Python); skipped without one.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { PYTHON, assertClose, runCli, shared, tmpDir } from "./support.ts";

const HF_PYTHON = process.env.COLLOQUY_HF_PYTHON || PYTHON;
const NO_PEFT =
  spawnSync(HF_PYTHON, ["-c", "import transformers, peft"]).status === 0
    ? false
    : `needs a Python with transformers and peft (${HF_PYTHON} cannot import them; set $COLLOQUY_HF_PYTHON)`;
const HF = shared("fixtures/hf-llama/tiny-llama-gqa");
const dir = tmpDir("colloquy-peft-load-");

const PEFT_SCORE = `
import json, sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
model_dir, adapter_dir, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
base = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
model = PeftModel.from_pretrained(base, adapter_dir).eval()
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0].double()
lp = torch.log_softmax(logits, -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
print(json.dumps({"logprobs": lp.tolist(), "peft": __import__("peft").__version__}))
`;

test("PeftModel.from_pretrained loads a colloquy adapter: its log-probs are colloquy's within 1e-5", { skip: NO_PEFT || HF.skip }, () => {
  const rows = JSON.parse(fs.readFileSync(path.join(HF.path, "reference.json"), "utf8")).input_ids as number[][];
  const idsFile = path.join(dir, "ids.json");
  fs.writeFileSync(idsFile, JSON.stringify(rows));
  const adapter = path.join(dir, "adapter");
  const ft = runCli([
    "finetune",
    "--model",
    HF.path,
    "--ids-file",
    idsFile,
    "--steps",
    "3",
    "--lr",
    "0.05",
    "--rank",
    "4",
    "--out",
    adapter,
    "--json",
  ]);
  assert.equal(ft.status, 0, ft.stderr);
  const ids = rows[0]!;
  const ours = runCli(["score", "--model", HF.path, "--adapter", adapter, "--ids", ids.join(","), "--json"]);
  assert.equal(ours.status, 0, ours.stderr);
  const got = (JSON.parse(ours.stdout) as { logprobs: (number | null)[] }).logprobs.slice(1) as number[];
  const py = spawnSync(HF_PYTHON, ["-c", PEFT_SCORE, HF.path, adapter, JSON.stringify(ids)], { encoding: "utf8", timeout: 300_000 });
  assert.equal(py.status, 0, py.stderr);
  const peft = JSON.parse(py.stdout.trim().split("\n").at(-1)!) as { logprobs: number[]; peft: string };
  const base = runCli(["score", "--model", HF.path, "--ids", ids.join(","), "--json"]);
  const baseLp = (JSON.parse(base.stdout) as { logprobs: (number | null)[] }).logprobs.slice(1) as number[];
  assert.ok(
    got.some((x, i) => Math.abs(x - baseLp[i]!) > 1e-3),
    "the trained adapter changes the log-probs (else the comparison proves nothing)",
  );
  const worst = assertClose(`peft ${peft.peft} vs colloquy`, peft.logprobs, got, 1e-5);
  console.log(`# PeftModel.from_pretrained (peft ${peft.peft}) vs colloquy score --adapter: max |Δ log p| ${worst.toExponential(2)}`);
});
