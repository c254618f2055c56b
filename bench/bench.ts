/**
 * `npm run bench` / `colloquy bench [--json] [--quick] [--model default|standin|<HF dir>] [--backend torch]`: colloquy's engine against
 * a PyTorch reference (bench/torch_ref.py: Debian's python3-torch with OpenBLAS, two threads) on the same cases and
 * shapes. Both sides build a case and warm it up, then their timed runs alternate (colloquy, torch, colloquy, ...),
 * so that a busy machine slows both alike. Tokens per second are medians; ratio = colloquy / torch. Then the
 * matrix-product GFLOP/s of colloquy's kernels against this CPU's peak. With --backend torch, also the torch backend's
 * worker against Hugging Face transformers + peft (bench/hf.ts, bench/hf_bench.py: `hf`, `hf_setup`,
 * `<shape>_<case>_ratio_vs_hf`). Progress goes to stderr; the table (or, with --json, exactly one JSON object) to stdout.
 */
import os from "node:os";
import { loadModel } from "../src/formats/load-model.ts";
import { refuseTorchKeys } from "../src/formats/model-keys.ts";
import { loadNativeAddon } from "../src/engine/kernels/native.ts";
import { defaultKernels } from "../src/engine/kernels/select.ts";
import { openTorchBackend } from "../src/torch/backend.ts";
import { defaultPython } from "../src/torch/process.ts";
import { type BenchCase, type Timing, backendRun, colloquyRun, timeOnce, timeOnceAsync, timing } from "./cases.ts";
import { DEFAULT_BASE_STANDIN, SHAPE_A, defaultBaseShape } from "./default-model.ts";
import { type GemmRow, type Peak, measureGemm, measurePeak } from "./gemm.ts";
import { type HfBenchOutput, type HfShape, formatHf, hfFlatKeys, runHfBench } from "./hf.ts";
import { type TorchCheck, TorchRef, torchModel } from "./torch.ts";

export interface BenchOptions {
  quick: boolean; // fewer repetitions
  json: boolean; // one JSON object on stdout
  model?: string; // shape (b): "default" (the default base model's shape), "standin", or a Hugging Face model folder
  python: string | null; // the interpreter with torch, for the reference, the torch backend and hf_bench.py (default $COLLOQUY_PYTHON, else python3)
  torch: boolean; // false: colloquy only
  backend?: "cpu" | "torch"; // torch: also time each case through the torch backend (its worker), beside the engine
  device?: string | null; // the torch backend's device and dtype (defaults as --backend torch has them)
  dtype?: "float32" | "bfloat16" | "float16" | null;
}

export interface CaseResult {
  id: string;
  label: string;
  colloquy: Timing;
  torch: Timing | null;
  ratio: number | null;
  torch_backend: Timing | null; // the same work through the torch backend (--backend torch)
  torch_backend_vs_cpu: number | null; // torch backend tok/s ÷ colloquy's engine tok/s
}

export interface BenchReport {
  kernels: string;
  threads: number;
  cpu: string;
  load_average: [start: number, end: number]; // 1-minute load average: above the core count, other processes competed
  torch: TorchCheck | null;
  torch_unavailable: string | null;
  cases: CaseResult[];
  peak: Peak | null;
  gemm: GemmRow[];
  // --backend torch: the worker against transformers + peft, per shape (bench/hf_bench.py's JSON), and why not
  hf?: Record<string, HfShape> | null;
  hf_setup?: HfBenchOutput["setup"] | null;
  hf_unavailable?: string | null;
  [key: `${string}_ratio_vs_torch` | `${string}_torch_backend_vs_cpu` | `${string}_ratio_vs_hf`]: number | null;
}

export function benchCases(o: Pick<BenchOptions, "model">): BenchCase[] {
  let b = defaultBaseShape();
  let bWeights: BenchCase["weights"];
  let bName = "default model";
  if (o.model === "standin") {
    b = DEFAULT_BASE_STANDIN;
    bName = "stand-in";
  } else if (o.model && o.model !== "default") {
    const lm = loadModel(o.model);
    b = lm.config;
    bWeights = lm.weights;
    bName = o.model;
  }
  const shapeA = `288d·6L·6H·768F·V512`;
  const shapeB = `${b.dim}d·${b.nLayers}L·${b.nHeads}/${b.nKvHeads}H·${b.hiddenDim}F·V${b.vocabSize} (${bName})`;
  const common = { rank: 8, alpha: 16, seed: 1, batch: 8, seq: 256, prompt: 8, newTokens: 128 };
  return [
    { ...common, id: "train_lora", kind: "train_lora", shape: "a", config: SHAPE_A, label: `train LoRA r8, B8×256, (a) ${shapeA}` },
    { ...common, id: "train_full", kind: "train_full", shape: "a", config: SHAPE_A, rank: 0, label: `train full, B8×256, (a) ${shapeA}` },
    { ...common, id: "sample", kind: "sample", shape: "a", config: SHAPE_A, batch: 16, label: `sample 16 rows × 128 new, (a)` },
    { ...common, id: "score", kind: "score", shape: "a", config: SHAPE_A, batch: 16, label: `score 16 × 256 tokens, (a)` },
    {
      ...common,
      id: "train_lora_b",
      kind: "train_lora",
      shape: "b",
      config: { ...b, maxSeqLen: Math.max(b.maxSeqLen, 256) },
      weights: bWeights,
      label: `train LoRA r8, B8×256, (b) ${shapeB}`,
    },
    {
      ...common,
      id: "sample_b",
      kind: "sample",
      shape: "b",
      config: b,
      weights: bWeights,
      batch: 16,
      label: `sample 16 rows × 128 new, (b)`,
    },
  ];
}

function torchSpec(c: BenchCase, warmup: number): Record<string, unknown> {
  return {
    case: c.kind,
    model: torchModel(c.config),
    batch: c.batch,
    seq: c.seq,
    prompt: c.prompt,
    new_tokens: c.newTokens,
    rank: c.rank,
    alpha: c.alpha,
    seed: c.seed,
    warmup,
  };
}

const log = (s: string) => process.stderr.write(s + "\n");

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  if (o.backend !== "torch") refuseTorchKeys({ device: o.device, dtype: o.dtype });
  const kernels = defaultKernels();
  const { addon, reason } = loadNativeAddon();
  if (kernels.name !== "native")
    log(`bench: WARNING: colloquy runs on its ${kernels.name} kernels (${reason || "COLLOQUY_KERNELS"}): expect it to be far slower`);
  const python = o.python ?? defaultPython();
  const warmup = o.quick ? 1 : 2,
    reps = o.quick ? 3 : 7;
  let torch: TorchRef | null = null;
  let torchReason: string | null = null;
  if (o.torch) {
    const started = await TorchRef.start(python);
    torch = started.ref;
    torchReason = started.reason || null;
    if (!torch) log(`bench: no PyTorch reference (${started.reason}); colloquy only`);
    else
      log(
        `bench: torch ${torch.check.torch}, BLAS ${torch.check.openblas ? "OpenBLAS" : "NOT OpenBLAS"}, 1024² matmul ${torch.check.matmul_1024_gflops.toFixed(0)} GFLOP/s`,
      );
  }
  const report: BenchReport = {
    kernels: kernels.name,
    threads: addon?.threads() ?? 1,
    cpu: os.cpus()[0]?.model ?? "unknown",
    load_average: [os.loadavg()[0], NaN],
    torch: torch?.check ?? null,
    torch_unavailable: torchReason,
    cases: [],
    peak: null,
    gemm: [],
  };
  if (report.load_average[0] > os.cpus().length)
    log(
      `bench: the machine is busy (load average ${report.load_average[0].toFixed(1)} on ${os.cpus().length} cores): expect noisy numbers`,
    );
  try {
    for (const c of benchCases(o)) {
      log(`bench: ${c.label} ...`);
      const { run, tokens } = colloquyRun(c);
      for (let i = 0; i < warmup; i++) run();
      if (torch) await torch.prepare(torchSpec(c, warmup));
      const viaBackend =
        o.backend === "torch"
          ? await backendRun(c, (config, weights) =>
              openTorchBackend({ modelPath: `bench case ${c.id}`, config, weights, device: o.device, dtype: o.dtype, python }),
            )
          : null;
      try {
        if (viaBackend) for (let i = 0; i < warmup; i++) await viaBackend.run();
        // alternate: colloquy, torch, colloquy, torch ... so that both see the same machine
        const mine: number[] = [],
          theirs: number[] = [],
          backend: number[] = [];
        for (let i = 0; i < reps; i++) {
          mine.push(timeOnce(run));
          if (torch) theirs.push(await torch.runOnce());
          if (viaBackend) backend.push(await timeOnceAsync(viaBackend.run));
        }
        const a = timing(tokens, mine),
          b = torch ? timing(tokens, theirs) : null,
          t = viaBackend ? timing(viaBackend.tokens, backend) : null;
        const ratio = b ? a.tokens_per_s / b.tokens_per_s : null;
        const vsCpu = t ? t.tokens_per_s / a.tokens_per_s : null;
        report.cases.push({ id: c.id, label: c.label, colloquy: a, torch: b, ratio, torch_backend: t, torch_backend_vs_cpu: vsCpu });
        report[`${c.id}_ratio_vs_torch`] = ratio;
        if (o.backend === "torch") report[`${c.id}_torch_backend_vs_cpu`] = vsCpu;
        log(
          `bench:   colloquy ${a.tokens_per_s.toFixed(0)} tok/s` +
            (b ? `, torch ${b.tokens_per_s.toFixed(0)} tok/s, ratio ${ratio!.toFixed(2)}` : "") +
            (t ? `; torch backend ${t.tokens_per_s.toFixed(0)} tok/s (${vsCpu!.toFixed(2)}× colloquy's engine)` : ""),
        );
      } finally {
        await (viaBackend?.backend as { close?: () => Promise<void> } | undefined)?.close?.();
      }
    }
  } finally {
    torch?.close();
  }
  if (o.backend === "torch") {
    log(`bench: the torch backend's worker against transformers + peft (${python} bench/hf_bench.py) ...`);
    const { out, reason } = await runHfBench({ python, device: o.device, dtype: o.dtype, quick: o.quick });
    report.hf = out?.hf ?? null;
    report.hf_setup = out?.setup ?? null;
    report.hf_unavailable = reason ?? out?.hf_unavailable ?? null;
    if (out) Object.assign(report, hfFlatKeys(out));
    else log(`bench: no transformers + peft comparison: ${reason}`);
  }
  if (addon) {
    log("bench: matrix products ...");
    report.peak = measurePeak(addon);
    report.gemm = measureGemm(addon, report.peak, o.quick);
  }
  report.load_average[1] = os.loadavg()[0];
  return report;
}

const fmt = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? "-" : x.toFixed(d));

export function formatReport(r: BenchReport): string {
  const lines: string[] = [];
  const w = Math.max(...r.cases.map((c) => c.label.length), 10);
  lines.push(
    `colloquy bench: ${r.kernels} kernels, ${r.threads} threads, ${r.cpu}; load average ${fmt(r.load_average[0], 1)} → ${fmt(r.load_average[1], 1)}`,
  );
  if (r.torch)
    lines.push(
      `torch ${r.torch.torch}: ${r.torch.openblas ? "OpenBLAS" : "no OpenBLAS (unfair anchor)"}, OPENBLAS_NUM_THREADS=${r.torch.openblas_threads}, torch threads ${r.torch.torch_threads}, 1024² matmul ${fmt(r.torch.matmul_1024_gflops)} GFLOP/s`,
    );
  else lines.push(`torch: unavailable (${r.torch_unavailable ?? "--no-torch"})`);
  lines.push("");
  const withBackend = r.cases.some((c) => c.torch_backend);
  const backendHead = withBackend ? ` | ${"torch backend tok/s".padStart(19)} | ${"÷ colloquy".padStart(10)}` : "";
  lines.push(
    `${"case".padEnd(w)} | ${"colloquy tok/s".padStart(14)} | ${"torch tok/s".padStart(11)} | ${"ratio".padStart(5)}${backendHead}`,
  );
  lines.push(
    `${"-".repeat(w)}-|-${"-".repeat(14)}-|-${"-".repeat(11)}-|-${"-".repeat(5)}${withBackend ? `-|-${"-".repeat(19)}-|-${"-".repeat(10)}` : ""}`,
  );
  for (const c of r.cases) {
    const backend = withBackend
      ? ` | ${fmt(c.torch_backend?.tokens_per_s).padStart(19)} | ${fmt(c.torch_backend_vs_cpu, 2).padStart(10)}`
      : "";
    lines.push(
      `${c.label.padEnd(w)} | ${fmt(c.colloquy.tokens_per_s).padStart(14)} | ${fmt(c.torch?.tokens_per_s).padStart(11)} | ${fmt(c.ratio, 2).padStart(5)}${backend}`,
    );
  }
  if (r.hf !== undefined) {
    lines.push("");
    lines.push(
      ...formatHf(
        r.hf && r.hf_setup ? { hf: r.hf, setup: r.hf_setup, hf_unavailable: r.hf_unavailable ?? null } : null,
        r.hf_unavailable ?? null,
      ),
    );
  }
  if (r.peak) {
    const p = r.peak;
    lines.push("");
    lines.push(
      `CPU peak: ${p.clock_ghz.toFixed(2)} GHz (measured) × ${p.fma_pipes} FMA pipes × ${p.lanes} lanes (${p.simd}) × 2 = ${p.peak_gflops_per_core.toFixed(0)} GFLOP/s per core, ${p.peak_gflops_all.toFixed(0)} on ${p.threads} threads; an FMA loop reaches ${p.fma_loop_gflops_1.toFixed(0)} / ${p.fma_loop_gflops_all.toFixed(0)}`,
    );
    const gw = Math.max(...r.gemm.map((g) => g.label.length));
    lines.push(
      `${"matrix product (colloquy native)".padEnd(gw)} | ${"1 thread GFLOP/s".padStart(21)} | ${`${p.threads} threads GFLOP/s`.padStart(22)}`,
    );
    for (const g of r.gemm) {
      lines.push(
        `${g.label.padEnd(gw)} | ${`${fmt(g.gflops_1)} (${fmt(g.pct_peak_1)}% peak)`.padStart(21)} | ${`${fmt(g.gflops_all)} (${fmt(g.pct_peak_all)}% peak)`.padStart(22)}`,
      );
    }
  }
  return lines.join("\n");
}

export async function benchMain(o: BenchOptions): Promise<void> {
  const report = await runBench(o);
  if (o.json) process.stdout.write(JSON.stringify(report) + "\n");
  else process.stdout.write(formatReport(report) + "\n");
  if (o.json) log(formatReport(report));
}
