/**
 * The PyTorch side of the benchmark: bench/torch_ref.py as a child process (Debian's python3-torch with OpenBLAS,
 * two OpenBLAS threads, one torch thread), driven one run at a time so that colloquy's runs and torch's alternate.
 */
import { type ChildProcessByStdio, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../src/engine/config.ts";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "torch_ref.py");
const OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread";
export const TORCH_INSTALL_HINT = "apt install python3-torch libopenblas0-pthread (Debian/Ubuntu), then rerun";

export interface TorchCheck {
  torch: string;
  blas_libs: string[];
  openblas: boolean;
  openblas_threads: string | null;
  torch_threads: number;
  matmul_1024_gflops: number;
  ok: boolean;
}

/** The case as torch_ref.py reads it. */
export function torchModel(c: ModelConfig): Record<string, unknown> {
  return {
    dim: c.dim,
    layers: c.nLayers,
    heads: c.nHeads,
    kv_heads: c.nKvHeads,
    head_dim: c.headDim,
    hidden: c.hiddenDim,
    vocab: c.vocabSize,
    seq: c.maxSeqLen,
    tied: c.tiedEmbeddings,
    theta: c.ropeTheta,
    eps: c.normEps,
  };
}

export class TorchRef {
  private child: ChildProcessByStdio<Writable, Readable, null>;
  private lines: AsyncIterableIterator<string>;
  check!: TorchCheck;

  private constructor(child: ChildProcessByStdio<Writable, Readable, null>) {
    this.child = child;
    this.lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  /** Starts torch_ref.py --serve; null (and the reason) when python or torch is missing. */
  static async start(python: string): Promise<{ ref: TorchRef | null; reason: string }> {
    const probe = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" });
    if (probe.error || probe.status !== 0) {
      const why = probe.error ? `${python} not found` : `${python} cannot import torch`;
      return { ref: null, reason: `${why}: ${TORCH_INSTALL_HINT}` };
    }
    const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: "2", OMP_NUM_THREADS: "1" };
    if (fs.existsSync(OPENBLAS_DIR)) env.LD_LIBRARY_PATH = [OPENBLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
    const child = spawn(python, [SCRIPT, "--serve"], { env, stdio: ["pipe", "pipe", "inherit"] });
    const ref = new TorchRef(child);
    const first = await ref.next();
    if (!first) return { ref: null, reason: "torch_ref.py exited before it was ready" };
    ref.check = (JSON.parse(first) as { check: TorchCheck }).check;
    return { ref, reason: "" };
  }

  private async next(): Promise<string | null> {
    const r = await this.lines.next();
    return r.done ? null : r.value;
  }

  private async ask<T>(msg: Record<string, unknown>): Promise<T> {
    this.child.stdin.write(JSON.stringify(msg) + "\n");
    const line = await this.next();
    if (!line) throw new Error(`torch_ref.py died during ${JSON.stringify(msg)}`);
    return JSON.parse(line) as T;
  }

  /** Builds a case and runs its warm-up. */
  async prepare(spec: Record<string, unknown>): Promise<void> {
    await this.ask({ op: "prepare", ...spec });
  }

  /** Seconds of one timed run of the prepared case. */
  async runOnce(): Promise<number> {
    return (await this.ask<{ seconds: number }>({ op: "run" })).seconds;
  }

  close(): void {
    this.child.stdin.end();
  }
}
