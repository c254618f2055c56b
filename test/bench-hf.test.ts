/**
 * bench/hf_bench.py, the Python half of `colloquy bench --backend torch`'s comparison with transformers + peft, on
 * the CPU with its tiny shapes (--quick), so that it keeps working where CI has no GPU: every case of every shape is
 * there, colloquy's timings are finite and positive, and HF's are finite or null with a reason (transformers and peft
 * are not installed with Debian's torch; with them, the log-probs of both sides must agree). Then what
 * `colloquy bench` merges from it: the flat keys <shape>_<case>_ratio_vs_hf and the report's lines.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { HF_CASES, type HfBenchOutput, type HfTiming, formatHf, hfFlatKeys } from "../bench/hf.ts";
import { NO_TORCH, PYTHON, ROOT } from "./support.ts";

const SHAPES = ["smollm2_135m", "llama32_1b"];
const KEYS = ["train_lora_ratio_vs_hf", "sample_ratio_vs_hf", "score_ratio_vs_hf"] as const;

function assertTiming(what: string, t: HfTiming): void {
  assert.ok(Number.isFinite(t.median_s) && t.median_s > 0, `${what}: median_s ${t.median_s}`);
  assert.ok(Number.isFinite(t.tokens_per_s) && t.tokens_per_s > 0, `${what}: tokens_per_s ${t.tokens_per_s}`);
  assert.equal(t.times_s.length, 2, `${what}: one time per timed run`);
  assert.ok(
    t.times_s.every((s) => Number.isFinite(s) && s > 0),
    `${what}: times ${t.times_s}`,
  );
  assert.equal(t.peak_mem_gib, null, `${what}: no GPU memory on the CPU`);
}

test("hf_bench.py --quick on the CPU: every case of both shapes, colloquy timed, HF timed or null with a reason", {
  skip: NO_TORCH,
}, () => {
  const r = spawnSync(
    PYTHON,
    [path.join(ROOT, "bench/hf_bench.py"), "--quick", "--device", "cpu", "--warmup", "1", "--reps", "2", "--threads", "1", "--json"],
    { encoding: "utf8", timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as HfBenchOutput;
  assert.equal(out.setup.device, "cpu");
  assert.equal(out.setup.dtype, "float32");
  assert.equal(out.setup.shapes, "tiny");
  assert.deepEqual(Object.keys(out.hf), SHAPES);
  const hfMissing = out.setup.transformers === null || out.setup.peft === null;
  if (hfMissing) assert.match(out.hf_unavailable ?? "", /transformers|peft/);
  for (const shape of SHAPES) {
    const s = out.hf[shape];
    assert.match(s.label, /scaled down/);
    assert.equal(s.error, null);
    for (const kind of HF_CASES) {
      const c = s[kind];
      const what = `${shape} ${kind}`;
      assert.ok(c, `${what} is missing`);
      assert.equal(c.colloquy_error, null, `${what}: ${c.colloquy_error}`);
      assert.ok(c.tokens && c.tokens > 0, `${what}: tokens ${c.tokens}`);
      assertTiming(`${what} colloquy`, c.colloquy!);
      if (c.hf) {
        assertTiming(`${what} HF`, c.hf);
        assert.equal(c.hf_unavailable, null);
        assert.ok(Number.isFinite(c.ratio_vs_hf) && c.ratio_vs_hf! > 0, `${what}: ratio ${c.ratio_vs_hf}`);
        assert.ok(Math.abs(c.ratio_vs_hf! - c.colloquy!.tokens_per_s / c.hf.tokens_per_s) < 1e-9);
        assert.equal(typeof c.hf_method, "string");
      } else {
        assert.equal(typeof c.hf_unavailable, "string", `${what}: HF null without a reason`);
        assert.ok(c.hf_unavailable!.length > 0);
        assert.equal(c.ratio_vs_hf, null);
      }
      assert.equal(s[`${kind}_ratio_vs_hf`], c.ratio_vs_hf);
    }
    if (hfMissing) assert.equal(s.logprob_check, null);
    else {
      const check = s.logprob_check as { max_abs_diff: number };
      assert.ok(check.max_abs_diff < 1e-4, `${shape}: colloquy and HF log-probs differ by ${JSON.stringify(s.logprob_check)}`);
    }
  }

  // what colloquy bench merges: flat keys for every shape and case, and one line per shape
  const flat = hfFlatKeys(out);
  for (const shape of SHAPES) for (const k of KEYS) assert.ok(`${shape}_${k}` in flat, `${shape}_${k} missing`);
  assert.equal(Object.keys(flat).length, SHAPES.length * KEYS.length);
  const lines = formatHf(out, null);
  assert.equal(lines.length, 1 + SHAPES.length);
  assert.match(lines[1], /smollm2_135m: train LoRA/);
  assert.match(formatHf(null, "no python")[0], /not measured \(no python\)/);
});
