/**
 * The engine in a worker thread (worker.ts), seen from the main thread: generation is CPU-bound and synchronous,
 * so running it here keeps the HTTP side free to accept, validate, queue, refuse and stream while a batch runs.
 */
import type { Worker } from "node:worker_threads";
import type { Engine, EngineInfo, EngineRow, OnText, RowResult } from "./engine.ts";
import { startTsWorker } from "./ts-worker.ts";
import type { WorkerData } from "./worker.ts";
import { type WorkerError, asError } from "./worker-error.ts";

interface Pending {
  resolve: (r: RowResult[]) => void;
  reject: (e: Error) => void;
  onText: OnText;
}

type Message =
  | { type: "ready"; info: EngineInfo; tokenizerPath: string | null }
  | { type: "fatal"; error: WorkerError }
  | { type: "text"; id: number; row: number; text: string }
  | { type: "done"; id: number; results: RowResult[] }
  | { type: "failed"; id: number; error: WorkerError };

const WORKER_URL = new URL("./worker.ts", import.meta.url).href;

export class WorkerEngine implements Engine {
  readonly info: EngineInfo;
  readonly tokenizerPath: string | null;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private dead: Error | null = null;
  private closing = false;
  /** Called once if the worker dies while the engine is not being closed. */
  onDeath: ((e: Error) => void) | null = null;

  private constructor(worker: Worker, info: EngineInfo, tokenizerPath: string | null) {
    this.worker = worker;
    this.info = info;
    this.tokenizerPath = tokenizerPath;
    worker.on("message", (m: Message) => this.receive(m));
    worker.on("error", (e) => this.die(e));
    worker.on("exit", (code) => this.die(new Error(`the engine worker exited (code ${code})`)));
  }

  /** Starts a worker that loads its model with `setupModule`'s `setupExport(options)`; resolves when it is ready. */
  static start(setupModule: string, setupExport: string, options: unknown): Promise<WorkerEngine> {
    const data: WorkerData = { setupModule, setupExport, options };
    const worker = startTsWorker(WORKER_URL, data);
    return new Promise((resolve, reject) => {
      const onMessage = (m: Message) => {
        if (m.type === "ready") {
          cleanup();
          resolve(new WorkerEngine(worker, m.info, m.tokenizerPath));
        } else if (m.type === "fatal") {
          cleanup();
          void worker.terminate();
          reject(asError(m.error));
        }
      };
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new Error(`the engine worker exited (code ${code}) before it was ready`));
      };
      const cleanup = () => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  run(rows: readonly EngineRow[], onText: OnText): Promise<RowResult[]> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onText });
      this.worker.postMessage({ type: "run", id, rows });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private receive(m: Message): void {
    if (m.type === "ready" || m.type === "fatal") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === "text") p.onText(m.row, m.text);
    else {
      this.pending.delete(m.id);
      if (m.type === "done") p.resolve(m.results);
      else p.reject(asError(m.error));
    }
  }

  private die(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    if (!this.closing) this.onDeath?.(e);
  }
}
