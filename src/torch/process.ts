/**
 * The worker process (worker/PROTOCOL.md): spawns `python -m colloquy_worker`, reads its hello, checks the protocol
 * version, then sends one request at a time from a queue and settles each call's promise from its reply.
 *
 * Lifecycle:
 * - The child runs in its own process group, so a terminal's Ctrl-C reaches colloquy only, which decides: the
 *   child is killed when the Node process exits (normally, by process.exit, or on an uncaught exception), and on
 *   SIGINT / SIGTERM (then the signal is raised again, unless another part of colloquy listens for it and so owns
 *   the shutdown; the child dies at its exit). If Node is killed outright, the child sees its stdin close and exits.
 * - An idle worker does not keep Node's event loop alive (its handles are unref'd between calls).
 * - A worker that dies rejects the call in flight, and every later one, with one line: exit code or signal and the
 *   last lines of its stderr. So does an `internal` error reply (after which the worker is closed) or a broken frame.
 * - stderr is passed through to the parent's stderr (the worker's log) and its last lines kept for those errors.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { Channel, type Hello, type Reply } from "./channel.ts";
import { INSTALL_HINT, noPython, noTorch, noWorkerPackage, workerExited } from "./errors.ts";

export { type Hello, PROTOCOL_VERSION, type Reply } from "./channel.ts";

/** worker/ of this package: where `python -m colloquy_worker` finds the worker. */
export const DEFAULT_WORKER_DIR = path.resolve(import.meta.dirname, "../../worker");

export interface WorkerOptions {
  python?: string; // the interpreter (default $COLLOQUY_PYTHON, else python3)
  args?: string[]; // its arguments (default -m colloquy_worker)
  workerDir?: string; // put first on PYTHONPATH (default DEFAULT_WORKER_DIR)
  env?: Record<string, string>; // added to the environment
  onStderr?: (chunk: Buffer) => void; // the worker's log (default: the parent's stderr)
  helloTimeoutMs?: number; // how long start-up may take (default 300 s: importing torch and starting CUDA)
}

/** What TorchBackend needs of a worker, wherever it runs (a child process here, a group elsewhere: remote.ts). */
export interface WorkerLink {
  readonly info: Hello;
  readonly pid: number; // -1 for a worker on the network
  call(op: string, fields?: Record<string, unknown>): Promise<Reply>;
  close(): Promise<void>;
}

const STDERR_LINES = 8;

export function defaultPython(): string {
  return process.env.COLLOQUY_PYTHON || "python3";
}

export class WorkerProcess implements WorkerLink {
  readonly python: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly channel: Channel;
  private readonly stderrTail: string[] = [];
  private stderrPartial = "";
  private exitedPromise: Promise<void>;
  private isExited = false;

  /** Starts the worker and waits for its hello (checked against PROTOCOL_VERSION). */
  static async start(opts: WorkerOptions = {}): Promise<WorkerProcess> {
    const w = new WorkerProcess(opts);
    try {
      await w.channel.waitHello(opts.helloTimeoutMs ?? 300_000, `the torch worker (${w.python})`);
    } catch (e) {
      w.kill();
      await w.exitedPromise;
      throw e;
    }
    return w;
  }

  private constructor(opts: WorkerOptions) {
    this.python = opts.python ?? defaultPython();
    const workerDir = opts.workerDir ?? DEFAULT_WORKER_DIR;
    const env: Record<string, string | undefined> = {
      ...process.env,
      PYTHONUNBUFFERED: "1",
      PYTHONPATH: [workerDir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
      ...opts.env,
    };
    this.child = spawn(this.python, opts.args ?? ["-m", "colloquy_worker"], { stdio: ["pipe", "pipe", "pipe"], env, detached: true });
    this.pid = this.child.pid ?? -1;
    this.channel = new Channel({
      send: (frame) => this.child.stdin!.write(frame),
      busy: () => this.busy(),
      idle: () => this.idle(),
      onFail: () => this.kill(),
    });
    const onStderr = opts.onStderr ?? ((c: Buffer) => process.stderr.write(c));

    this.exitedPromise = new Promise((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: string | null, spawnError: NodeJS.ErrnoException | null) => {
        if (done) return;
        done = true;
        this.isExited = true;
        live.delete(this);
        if (live.size === 0) uninstallHandlers();
        this.onExit(code, signal, spawnError, workerDir);
        resolve();
      };
      this.child.on("error", (e: NodeJS.ErrnoException) => {
        // spawn failed (no such file, not executable); a failed kill also lands here, harmlessly
        if (this.child.pid === undefined) finish(null, null, e);
      });
      this.child.on("close", (code, signal) => finish(code, signal, null));
    });
    if (this.child.pid === undefined) return; // the 'error' event follows
    live.add(this);
    installHandlers();
    this.child.stdin!.on("error", () => {}); // EPIPE once the worker is gone: its exit reports the failure
    this.child.stdout!.on("data", (chunk: Buffer) => this.channel.push(chunk));
    this.child.stderr!.on("data", (chunk: Buffer) => {
      onStderr(chunk);
      const lines = (this.stderrPartial + chunk.toString("utf8")).split("\n");
      this.stderrPartial = lines.pop()!.slice(-1000);
      for (const l of lines) if (l.trim()) this.stderrTail.push(l.slice(0, 1000));
      this.stderrTail.splice(0, Math.max(0, this.stderrTail.length - STDERR_LINES));
    });
  }

  /** What the worker said about itself. */
  get info(): Hello {
    return this.channel.info;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.isExited;
  }

  /** Sends request `op` after the ones before it; resolves with the reply's fields, rejects with its error. */
  call(op: string, fields: Record<string, unknown> = {}): Promise<Reply> {
    return this.channel.call(op, fields);
  }

  /** Asks the worker to shut down and waits for it to exit (killing it after `timeoutMs`). */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.isExited) return;
    if (this.channel.closing) return this.exitedPromise;
    if (this.channel.failure) {
      this.kill();
      return this.exitedPromise;
    }
    const shutdown = this.call("shutdown").catch(() => {});
    this.channel.closing = true;
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await shutdown;
    this.busy(); // keep Node alive until the exit is seen
    this.child.stdin!.end();
    await this.exitedPromise;
    clearTimeout(timer);
  }

  /** Kills the process (group) at once. */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.isExited || this.pid < 0) return;
    try {
      process.kill(-this.pid, signal); // its process group: anything the worker started goes too
    } catch {
      try {
        this.child.kill(signal);
      } catch {
        // gone already
      }
    }
  }

  private onExit(code: number | null, signal: string | null, spawnError: NodeJS.ErrnoException | null, workerDir: string): void {
    if (this.stderrPartial.trim()) this.stderrTail.push(this.stderrPartial);
    const ch = this.channel;
    let e: Error;
    const stderr = this.stderrTail.join("\n");
    const partial = ch.partialFrame;
    if (spawnError) e = noPython(this.python, spawnError.code);
    else if (!ch.started && /No module named '?torch'?/.test(stderr)) e = noTorch(this.python);
    else if (!ch.started && /No module named '?colloquy_worker/.test(stderr)) e = noWorkerPackage(this.python, workerDir);
    else if (ch.closing && !ch.pending) e = new Error("the torch worker is closed");
    else if (partial && code === 0) e = new Error(`the torch worker's stdout ended in the middle of a frame (${partial})`);
    else {
      const notPython = !ch.started && !signal ? `is ${this.python} a Python 3.8+ with PyTorch? ${INSTALL_HINT}` : undefined;
      e = workerExited(ch.inFlightOp ?? (ch.started ? "no call (it was idle)" : "start-up"), code, signal, this.stderrTail, notPython);
    }
    ch.fail(e); // no effect when it failed already (protocol, internal error)
  }

  /** Between calls the worker must not keep Node alive. */
  private idle(): void {
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
  }

  private busy(): void {
    this.child.ref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as { ref?: () => void }).ref?.();
  }
}

// ---- every live worker dies with the Node process ----

const live = new Set<WorkerProcess>();
let installed = false;

function killAll(): void {
  for (const w of live) w.kill("SIGKILL");
}

function onSignal(signal: NodeJS.Signals): void {
  // another listener (a server's graceful stop) owns the shutdown and may still need the worker: the 'exit' hook
  // kills it then. Alone, we kill the workers and raise the signal again for its default action.
  if (process.listenerCount(signal) > 1) return;
  killAll();
  uninstallHandlers();
  process.kill(process.pid, signal);
}

const onSigint = () => onSignal("SIGINT");
const onSigterm = () => onSignal("SIGTERM");

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
}

function uninstallHandlers(): void {
  if (!installed) return;
  installed = false;
  process.off("exit", killAll);
  process.off("SIGINT", onSigint);
  process.off("SIGTERM", onSigterm);
}
