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
import { FrameError, FrameReader, encodeFrame } from "./frames.ts";
import { type WorkerErrorReply, noPython, noTorch, noWorkerPackage, protocolMismatch, workerError, workerExited } from "./errors.ts";

export const PROTOCOL_VERSION = 1;

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

export interface Hello {
  op: "hello";
  protocol: number;
  worker: string;
  torch: string;
  python: string;
  cuda: boolean;
  devices: number;
}

export type Reply = Record<string, unknown>;

interface Call {
  op: string;
  fields: Record<string, unknown>;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

const STDERR_LINES = 8;

export function defaultPython(): string {
  return process.env.COLLOQUY_PYTHON || "python3";
}

export class WorkerProcess {
  readonly python: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly reader: FrameReader;
  private readonly stderrTail: string[] = [];
  private stderrPartial = "";
  private hello: Hello | null = null;
  private onHello: ((h: Hello | Error) => void) | null = null;
  private readonly queue: Call[] = [];
  private inFlight: (Call & { id: number }) | null = null;
  private nextId = 1;
  private failure: Error | null = null;
  private closing = false;
  private exitedPromise: Promise<void>;
  private isExited = false;

  /** Starts the worker and waits for its hello (checked against PROTOCOL_VERSION). */
  static async start(opts: WorkerOptions = {}): Promise<WorkerProcess> {
    const w = new WorkerProcess(opts);
    const timeout = opts.helloTimeoutMs ?? 300_000;
    const hello = await new Promise<Hello | Error>((resolve) => {
      const timer = setTimeout(
        () => resolve(new Error(`the torch worker (${w.python}) sent no hello within ${timeout / 1000} s`)),
        timeout,
      );
      w.onHello = (h) => {
        clearTimeout(timer);
        resolve(h);
      };
    });
    w.onHello = null;
    if (hello instanceof Error) {
      w.kill();
      await w.exitedPromise;
      throw hello;
    }
    w.idle();
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
    this.reader = new FrameReader((h) => this.onFrame(h));
    this.reader.maxHeader = 1 << 16; // until the hello: a stray print must not look like a 2 GB frame
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
    this.child.stdout!.on("data", (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch (e) {
        this.fail(e instanceof FrameError ? new Error(`the torch worker broke the protocol: ${e.message}`) : (e as Error));
      }
    });
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
    if (!this.hello) throw new Error("the torch worker has not started");
    return this.hello;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.isExited;
  }

  /** Sends request `op` after the ones before it; resolves with the reply's fields, rejects with its error. */
  call(op: string, fields: Record<string, unknown> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      if (this.closing && op !== "shutdown") return reject(new Error(`the torch worker is closed (${op} after close)`));
      this.queue.push({ op, fields, resolve, reject });
      this.pump();
    });
  }

  /** Asks the worker to shut down and waits for it to exit (killing it after `timeoutMs`). */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.isExited) return;
    if (this.closing) return this.exitedPromise;
    if (this.failure) {
      this.kill();
      return this.exitedPromise;
    }
    const shutdown = this.call("shutdown").catch(() => {});
    this.closing = true;
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

  private pump(): void {
    if (this.inFlight || !this.hello || this.failure) return;
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      const id = this.nextId++;
      let frame: Buffer;
      try {
        frame = encodeFrame({ id, op: next.op, ...next.fields });
      } catch (e) {
        next.reject(e as Error); // a request that cannot be a frame is the caller's bug; the worker saw nothing
        continue;
      }
      this.inFlight = { ...next, id };
      this.busy();
      this.child.stdin!.write(frame);
      return;
    }
    this.idle();
  }

  private onFrame(h: Record<string, unknown>): void {
    if (!this.hello) {
      if (h.op !== "hello") throw new FrameError(`the first frame must be the hello, got ${JSON.stringify(h).slice(0, 120)}`);
      if (h.protocol !== PROTOCOL_VERSION) {
        this.onHello?.(protocolMismatch(h.protocol, PROTOCOL_VERSION));
        return;
      }
      this.hello = h as unknown as Hello;
      this.reader.maxHeader = 64 << 20;
      this.onHello?.(this.hello);
      return;
    }
    const call = this.inFlight;
    if (!call) throw new FrameError(`a frame came while no request was in flight: ${JSON.stringify(h).slice(0, 120)}`);
    // id null: the worker read a frame it could not understand (it answers before it knows the id)
    if (h.id !== call.id && !(h.id === null && h.ok === false)) {
      throw new FrameError(`the reply to request ${call.id} (${call.op}) has id ${JSON.stringify(h.id)}`);
    }
    this.inFlight = null;
    if (h.ok === true) {
      call.resolve(h);
      this.pump();
      return;
    }
    const err = (h.error ?? {
      kind: "internal",
      code: "E_WORKER",
      message: `malformed error reply ${JSON.stringify(h).slice(0, 120)}`,
      traceback: null,
    }) as WorkerErrorReply;
    const e = workerError(call.op, err);
    call.reject(e);
    if (err.kind === "user") this.pump();
    else this.fail(new Error(`the torch worker was closed after an internal error in ${call.op}: ${e.message}`), false);
  }

  /** Puts the worker in its failed state: the call in flight and everything queued reject; the process is killed. */
  private fail(e: Error, rejectInFlight = true): void {
    if (this.failure) return;
    this.failure = e;
    if (!this.hello) this.onHello?.(e);
    if (rejectInFlight) this.inFlight?.reject(e);
    this.inFlight = null;
    for (const c of this.queue.splice(0)) c.reject(e);
    this.kill();
  }

  private onExit(code: number | null, signal: string | null, spawnError: NodeJS.ErrnoException | null, workerDir: string): void {
    if (this.stderrPartial.trim()) this.stderrTail.push(this.stderrPartial);
    let e: Error;
    const stderr = this.stderrTail.join("\n");
    if (spawnError) e = noPython(this.python, spawnError.code);
    else if (!this.hello && /No module named '?torch'?/.test(stderr)) e = noTorch(this.python);
    else if (!this.hello && /No module named '?colloquy_worker/.test(stderr)) e = noWorkerPackage(this.python, workerDir);
    else if (this.closing && !this.inFlight && this.queue.length === 0) e = new Error("the torch worker is closed");
    else if (this.reader.pending > 0 && code === 0) {
      e = new Error(
        `the torch worker's stdout ended in the middle of a frame (${this.reader.pending} of ${this.reader.expected ?? "?"} bytes)`,
      );
    } else
      e = workerExited(this.inFlight ? this.inFlight.op : this.hello ? "no call (it was idle)" : "start-up", code, signal, this.stderrTail);
    if (this.failure) {
      // already failed (protocol, internal error): the exit changes nothing, but a pending start-up learns why
      this.onHello?.(this.failure);
      return;
    }
    this.fail(e);
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
