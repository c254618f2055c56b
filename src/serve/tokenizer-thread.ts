/**
 * The prompt tokenizer in a worker thread (tokenizer-worker.ts), seen from the main thread: tokenizing a long
 * prompt or rendering many chat messages takes milliseconds per kilobyte, and done here it would hold up every
 * other request, /health included. Jobs run one at a time in the order they come; `pending` counts them so that
 * the server can refuse more (429) instead of letting them pile up.
 */
import type { Worker } from "node:worker_threads";
import type { PromptJob, PromptResult, PromptTokenizer } from "./prompt-tokenizer.ts";
import type { TokenizerWorkerData } from "./tokenizer-worker.ts";
import { startTsWorker } from "./ts-worker.ts";
import { type WorkerError, asError } from "./worker-error.ts";

const WORKER_URL = new URL("./tokenizer-worker.ts", import.meta.url).href;

type Message =
  | { type: "ready" }
  | { type: "fatal"; error: WorkerError }
  | { id: number; result: PromptResult }
  | { id: number; error: WorkerError };

interface Pending {
  resolve: (r: PromptResult) => void;
  reject: (e: Error) => void;
}

export class TokenizerThread implements PromptTokenizer {
  private readonly worker: Worker;
  private readonly jobs = new Map<number, Pending>();
  private nextId = 0;
  private dead: Error | null = null;
  private closing = false;
  /** Called once if the worker dies while it is not being closed. */
  onDeath: ((e: Error) => void) | null = null;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on("message", (m: Message) => {
      if (!("id" in m)) return;
      const p = this.jobs.get(m.id);
      if (!p) return;
      this.jobs.delete(m.id);
      if (this.jobs.size === 0) worker.unref(); // idle: it does not keep the process alive
      if ("result" in m) p.resolve(m.result);
      else p.reject(asError(m.error));
    });
    const die = (e: Error) => {
      if (this.dead) return;
      this.dead = e;
      for (const p of this.jobs.values()) p.reject(e);
      this.jobs.clear();
      if (!this.closing) this.onDeath?.(e);
    };
    worker.on("error", die);
    worker.on("exit", (code) => die(new Error(`the tokenizer worker exited (code ${code})`)));
    worker.unref();
  }

  /** Starts the worker; resolves once it has loaded the tokenizer. */
  static start(tokenizerPath: string, vocabSize: number): Promise<TokenizerThread> {
    const data: TokenizerWorkerData = { tokenizerPath, vocabSize };
    const worker = startTsWorker(WORKER_URL, data);
    return new Promise((resolve, reject) => {
      const onMessage = (m: Message) => {
        if (!("type" in m)) return;
        worker.off("message", onMessage);
        worker.off("exit", onExit);
        if (m.type === "ready") resolve(new TokenizerThread(worker));
        else {
          void worker.terminate();
          reject(asError(m.error));
        }
      };
      const onExit = (code: number) => reject(new Error(`the tokenizer worker exited (code ${code}) before it was ready`));
      worker.on("message", onMessage);
      worker.on("exit", onExit);
      worker.once("error", reject);
    });
  }

  get pending(): number {
    return this.jobs.size;
  }

  run(job: PromptJob): Promise<PromptResult> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.jobs.size === 0) this.worker.ref();
      this.jobs.set(id, { resolve, reject });
      this.worker.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}
