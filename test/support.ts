/**
 * Shared test helpers: where ../shared is, skipping with a clear message when it is missing, and a per-tensor
 * closeness assertion that names the worst element.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";

export const ROOT = path.resolve(import.meta.dirname, "..");
// the team's shared fixtures: ../shared beside the checkout, or $COLLOQUY_SHARED (as worker/tests/helpers.py reads it)
export const SHARED = path.resolve(ROOT, process.env.COLLOQUY_SHARED || "../shared");

/** Path inside ../shared, and a skip reason (string) when it is absent, for `test(name, { skip }, fn)`. */
export function shared(rel: string): { path: string; skip: string | false } {
  const p = path.join(SHARED, rel);
  return { path: p, skip: fs.existsSync(p) ? false : `needs ../shared/${rel} (the team's shared fixtures; see shared/README.md)` };
}

export function tmpDir(prefix = "colloquy-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** |got − want| ≤ atol + rtol·|want| for every element; the message names the worst one. */
/** Asserts |got − want| ≤ atol + rtol·|want| elementwise; returns the largest |got − want| (for diagnostics). */
export function assertClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol = 0): number {
  assert.equal(got.length, want.length, `${label}: length ${got.length} ≠ ${want.length}`);
  let worst = -1,
    worstExcess = 0,
    maxDiff = 0;
  for (let i = 0; i < got.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    const excess = Math.abs(got[i] - want[i]) - (atol + rtol * Math.abs(want[i]));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) assert.fail(`${label}: element ${worst} is ${got[worst]}, want ${want[worst]} (tolerance ${atol} + ${rtol}·|want|)`);
  return maxDiff;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export const TORCH_FIXTURES = path.join(ROOT, "test/fixtures/torch");
export const TORCH_CASES = ["tied-mha-f16", "llama3-gqa-bf16", "llama2c-interleaved"] as const;

/** log-softmax over the last axis of logits (rows, V), in float64. */
export function logSoftmaxRows(logits: ArrayLike<number>, V: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r * V + v] - max);
    const lse = max + Math.log(s);
    for (let v = 0; v < V; v++) out[r * V + v] = logits[r * V + v] - lse;
  }
  return out;
}

/** Per-token log p(ids[t] | ids[<t]) read off reference logits (T, V); index 0 is NaN. */
export function tokenLogprobs(logits: ArrayLike<number>, ids: ArrayLike<number>, V: number): Float64Array {
  const lsm = logSoftmaxRows(logits, V);
  const out = new Float64Array(ids.length).fill(NaN);
  for (let t = 1; t < ids.length; t++) out[t] = lsm[(t - 1) * V + ids[t]];
  return out;
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `colloquy <args>` as a user would (bin/colloquy.mjs in a child process). */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A user error as the CLI must print it: exit 2, one line on stderr, no stack trace. */
export function assertUserError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.status, 2, `exit status ${r.status}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^error\[E_[A-Z_]+\]: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

/** The Python the torch tests run the worker with: $COLLOQUY_PYTHON, else Debian's, else python3 on PATH. */
export const PYTHON = process.env.COLLOQUY_PYTHON || (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

/**
 * The device the torch tests run the worker on: $COLLOQUY_TEST_DEVICE (cpu, cuda, cuda:N), cpu by default;
 * scripts/device/check.sh sets cuda on a GPU machine. The parity tests keep float32 whatever the device.
 */
export const TORCH_DEVICE = process.env.COLLOQUY_TEST_DEVICE || "cpu";

/** The CLI flags of a torch-backend verb on TORCH_DEVICE, with the base weights in `dtype`. */
export const torchFlags = (dtype = "float32"): string[] => [
  "--backend",
  "torch",
  "--device",
  TORCH_DEVICE,
  "--dtype",
  dtype,
  "--python",
  PYTHON,
];

/** Why the torch tests must skip here (false: PYTHON imports torch). */
export const NO_TORCH: string | false =
  spawnSync(PYTHON, ["-c", "import torch"]).status === 0
    ? false
    : `needs a Python with torch (${PYTHON} cannot import torch; apt-get install python3-torch, or set $COLLOQUY_PYTHON)`;

/** A local TCP port nothing listens on (bound, read, released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Whether a process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * Runs `colloquy <args>` (a train run writing into `runDir`) and kills it with SIGKILL as soon as its
 * metrics.jsonl holds iteration `iteration`; rejects if the run ends first.
 */
export async function trainKilledAt(runDir: string, args: string[], iteration: number): Promise<void> {
  const child = spawn(process.execPath, [path.join(ROOT, "bin/colloquy.mjs"), ...args], { cwd: ROOT, stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const f = path.join(runDir, "metrics.jsonl");
      if (fs.existsSync(f) && fs.readFileSync(f, "utf8").includes(`"iteration":${iteration},`)) {
        clearInterval(timer);
        child.kill("SIGKILL");
        resolve();
      }
    }, 20);
    child.on("exit", () => {
      clearInterval(timer);
      reject(new Error("the run finished before it could be killed"));
    });
  });
  await exited;
}
