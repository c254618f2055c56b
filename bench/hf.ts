/**
 * The torch backend against Hugging Face transformers + peft (issue 15): bench/hf_bench.py in a child process, which
 * times the worker's verbs in process beside the same work in transformers + peft, per shape (SmolLM2-135M's and
 * Llama-3.2-1B's; tiny ones of the same structure with --quick or on a CPU). Its JSON is documented in the script's
 * docstring; `colloquy bench --backend torch` puts it into its report as `hf` (per shape), `hf_setup`, `hf_unavailable`
 * and the flat keys `<shape>_<case>_ratio_vs_hf`.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const HF_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "hf_bench.py");
export const HF_CASES = ["train_lora", "sample", "score"] as const;
export type HfCaseKind = (typeof HF_CASES)[number];

export interface HfTiming {
  median_s: number;
  tokens_per_s: number;
  times_s: number[];
  peak_mem_gib: number | null; // CUDA only: the most allocated during the side's timed runs
  work_mem_gib: number | null; // CUDA only: that peak less what was allocated when a run began
}

export interface HfCase {
  work: string;
  tokens: number | null; // per run
  colloquy: HfTiming | null;
  colloquy_error: string | null;
  hf: HfTiming | null;
  hf_unavailable: string | null; // why hf is null
  hf_method: string | null;
  ratio_vs_hf: number | null; // colloquy tok/s ÷ HF tok/s
  meets_target: boolean | null;
}

export type HfShape = {
  label: string;
  error: string | null; // the shape could not be built (then no case ran)
  config?: Record<string, unknown>;
  hf_attention?: string | null;
  logprob_check?: { rows: number; tokens: number; max_abs_diff: number } | { error: string } | null; // colloquy vs HF, same weights
} & { [K in HfCaseKind]?: HfCase } & { [K in `${HfCaseKind}_ratio_vs_hf`]: number | null };

export interface HfSetup {
  torch: string;
  transformers: string | null;
  peft: string | null;
  device: string;
  device_name: string;
  dtype: string;
  shapes: "tiny" | "full";
  quick: boolean;
  warmup: number;
  reps: number;
  [key: string]: unknown;
}

export interface HfBenchOutput {
  setup: HfSetup;
  hf_unavailable: string | null; // why there are no HF timings at all (transformers or peft missing, --no-hf)
  hf: Record<string, HfShape>;
}

export interface HfBenchOptions {
  python: string;
  device?: string | null; // null: cuda when the interpreter's PyTorch sees one, else cpu
  dtype?: string | null; // null: bfloat16 on CUDA, float32 on CPU
  quick: boolean; // tiny shapes, fewer runs
}

/** Runs hf_bench.py --json (its progress goes to our stderr); null and the reason when it could not run. */
export function runHfBench(o: HfBenchOptions): Promise<{ out: HfBenchOutput | null; reason: string | null }> {
  const args = [HF_SCRIPT, "--json", "--device", o.device ?? "auto"];
  if (o.dtype) args.push("--dtype", o.dtype);
  if (o.quick) args.push("--quick");
  return new Promise((resolve) => {
    const child = spawn(o.python, args, { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.on("error", (e) => resolve({ out: null, reason: `cannot run ${o.python}: ${e.message}` }));
    child.on("close", (code, signal) => {
      if (code !== 0)
        return resolve({ out: null, reason: `${o.python} ${path.basename(HF_SCRIPT)} exited with ${signal ?? `status ${code}`}` });
      try {
        resolve({ out: JSON.parse(stdout) as HfBenchOutput, reason: null });
      } catch {
        resolve({ out: null, reason: `${path.basename(HF_SCRIPT)} printed no JSON object` });
      }
    });
  });
}

/** The flat keys of a run: `<shape>_<case>_ratio_vs_hf` for every shape and case (null where not measured). */
export function hfFlatKeys(out: HfBenchOutput): Record<`${string}_ratio_vs_hf`, number | null> {
  const keys: Record<`${string}_ratio_vs_hf`, number | null> = {};
  for (const [shape, s] of Object.entries(out.hf))
    for (const kind of HF_CASES) keys[`${shape}_${kind}_ratio_vs_hf`] = s[`${kind}_ratio_vs_hf`] ?? null;
  return keys;
}

const ratio = (x: number | null | undefined) => (x === null || x === undefined ? "-" : `${x.toFixed(2)}×`);

/** Lines for the human-readable report: what ran, then one line per shape. */
export function formatHf(out: HfBenchOutput | null, reason: string | null): string[] {
  if (!out) return [`transformers + peft: not measured (${reason ?? "no result"})`];
  const s = out.setup;
  const where = `torch ${s.torch}, ${s.device}, ${s.dtype}, ${s.shapes} shapes`;
  const lines = out.hf_unavailable
    ? [`the torch backend's worker (bench/hf_bench.py; ${where}); transformers + peft not measured: ${out.hf_unavailable}`]
    : [
        `the torch backend's worker against transformers ${s.transformers} + peft ${s.peft} (bench/hf_bench.py; ${where}): colloquy tok/s ÷ HF tok/s, targets train ≥ 1, sample ≥ 3, score ≥ 1`,
      ];
  for (const [shape, sh] of Object.entries(out.hf)) {
    if (sh.error) {
      lines.push(`  ${shape}: failed: ${sh.error}`);
      continue;
    }
    const part = (k: HfCaseKind, name: string) => {
      const c = sh[k];
      if (!c) return null;
      const tok = c.colloquy ? `${c.colloquy.tokens_per_s.toFixed(0)} tok/s` : `failed: ${c.colloquy_error}`;
      return `${name} ${ratio(c.ratio_vs_hf)} (${tok})`;
    };
    const parts = [part("train_lora", "train LoRA"), part("sample", "sample"), part("score", "score")].filter(Boolean);
    lines.push(`  ${shape}: ${parts.join(", ")}`);
  }
  return lines;
}
