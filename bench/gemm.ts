/**
 * Matrix-product throughput of colloquy's native kernels at the engine's shapes, on 1 and on all threads, against
 * this CPU's peak. Peak = clock × FMA pipes × vector lanes × 2 (an FMA is two operations): the clock is measured
 * (a chain of dependent adds retires one per cycle; virtual machines often report only the base clock), the lanes
 * come from the instruction set the addon was built for, and the pipes are read off a register-only FMA loop
 * (its throughput ÷ (clock × lanes × 2), rounded). Probes and products report their best burst or run: on a shared
 * machine a run can only lose time to other processes, never gain it.
 */
import type { NativeAddon } from "../src/engine/kernels/native.ts";
import { f32 } from "../src/engine/tensor.ts";

export interface Peak {
  clock_ghz: number;
  simd: string;
  lanes: number;
  fma_pipes: number;
  peak_gflops_per_core: number;
  peak_gflops_all: number; // per core × threads
  fma_loop_gflops_1: number; // measured, one thread
  fma_loop_gflops_all: number; // measured, every thread
  threads: number;
}

export interface GemmRow {
  label: string;
  M: number;
  N: number;
  K: number;
  gflops_1: number;
  gflops_all: number;
  pct_peak_1: number;
  pct_peak_all: number;
}

const LANES: Record<string, number> = { avx512: 16, avx2: 8, generic: 4 };

export function measurePeak(n: NativeAddon): Peak {
  const threads = n.threads();
  const clock = n.clockHz(0.3);
  const fma1 = n.fmaPeak(1, 0.3);
  const fmaAll = n.fmaPeak(threads, 0.3);
  const simd = n.simd();
  const lanes = LANES[simd] ?? 4;
  const pipes = clock > 0 ? Math.min(4, Math.max(1, Math.round(fma1 / (clock * lanes * 2)))) : 2;
  const perCore = (clock * pipes * lanes * 2) / 1e9;
  return {
    clock_ghz: clock / 1e9,
    simd,
    lanes,
    fma_pipes: pipes,
    peak_gflops_per_core: perCore,
    peak_gflops_all: perCore * threads,
    fma_loop_gflops_1: fma1 / 1e9,
    fma_loop_gflops_all: fmaAll / 1e9,
    threads,
  };
}

/** The products a training step and a decode step spend their time in. */
const SHAPES: { label: string; kind: "xwt" | "xw" | "xty"; M: number; K: number; N: number }[] = [
  { label: "x·Wᵀ  2048×288 · (768×288)ᵀ  (gate/up forward)", kind: "xwt", M: 2048, K: 288, N: 768 },
  { label: "x·Wᵀ  2048×768 · (288×768)ᵀ  (down forward)", kind: "xwt", M: 2048, K: 768, N: 288 },
  { label: "dy·W  2048×768 · 768×288     (input gradient)", kind: "xw", M: 2048, K: 288, N: 768 },
  { label: "dyᵀ·x 768×2048 · 2048×288    (weight gradient)", kind: "xty", M: 2048, K: 288, N: 768 },
  { label: "x·Wᵀ  1024×1024 · (1024×1024)ᵀ", kind: "xwt", M: 1024, K: 1024, N: 1024 },
  { label: "x·Wᵀ  16×288 · (768×288)ᵀ    (decode step)", kind: "xwt", M: 16, K: 288, N: 768 },
];

/** GFLOP/s of the fastest of the runs made in `seconds` (after 3 warm-up runs). */
function timeGemm(run: () => void, flops: number, seconds: number): number {
  for (let i = 0; i < 3; i++) run();
  let best = Infinity,
    runs = 0;
  const until = performance.now() + seconds * 1000;
  while (runs < 5 || performance.now() < until) {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
    runs++;
  }
  return flops / (best / 1000) / 1e9;
}

export function measureGemm(n: NativeAddon, peak: Peak, quick: boolean): GemmRow[] {
  const all = n.threads();
  const rows: GemmRow[] = [];
  for (const s of SHAPES) {
    const { M, K, N } = s;
    const x = f32(M * Math.max(K, N)).map(() => Math.random() - 0.5);
    const w = f32(N * K).map(() => Math.random() - 0.5);
    const out = f32(M * Math.max(K, N));
    // (M, N) = x (M, K) · w (N, K)^T;  (M, K) = dy (M, N) · w (N, K);  (N, K) += dy (M, N)^T · x (M, K)
    const run =
      s.kind === "xwt"
        ? () => n.gemm(M, N, K, 1, x, 0, K, 1, w, 0, 1, K, 0, out, 0, N, 1)
        : s.kind === "xw"
          ? () => n.gemm(M, K, N, 1, x, 0, N, 1, w, 0, K, 1, 0, out, 0, K, 1)
          : () => n.gemm(N, K, M, 1, x, 0, 1, N, x, 0, K, 1, 1, out, 0, K, 1);
    const flops = 2 * M * N * K;
    const seconds = quick ? 0.15 : 0.4;
    n.threads(1);
    const g1 = timeGemm(run, flops, seconds);
    n.threads(all);
    const gAll = timeGemm(run, flops, seconds);
    rows.push({
      label: s.label,
      M,
      N,
      K,
      gflops_1: g1,
      gflops_all: gAll,
      pct_peak_1: (100 * g1) / peak.peak_gflops_per_core,
      pct_peak_all: (100 * gAll) / peak.peak_gflops_all,
    });
  }
  n.threads(0);
  return rows;
}
