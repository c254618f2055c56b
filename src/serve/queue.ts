/**
 * Bounded concurrency: requests wait in one FIFO queue, and whenever the engine is free the requests waiting
 * (up to `maxBatch` rows) go to it together as one batch, one engine call, whatever adapters they use. A full
 * queue refuses new requests (429); a request that is cancelled while it waits leaves the queue; `close()`
 * refuses what waits (503) and lets the running batch finish.
 */
import type { Engine, EngineRow, RowResult } from "./engine.ts";
import { ApiError } from "./errors.ts";

export interface QueueOptions {
  maxQueue: number; // requests waiting (not counting the running batch) before new ones get 429
  maxBatch: number; // rows per engine call; one request's rows are never split
  gatherMs: number; // how long an idle engine waits for more requests before it starts a batch
}

interface Job {
  rows: readonly EngineRow[];
  onText: (row: number, text: string) => void;
  resolve: (r: RowResult[]) => void;
  reject: (e: unknown) => void;
  cancelled: boolean;
  failed: unknown; // what its onText threw: the job fails when the batch ends
}

export class BatchQueue {
  private readonly engine: Engine;
  private readonly opts: QueueOptions;
  private readonly waiting: Job[] = [];
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Counters for /health and tests: batches run, rows run, the largest batch. */
  readonly stats = { batches: 0, rows: 0, largestBatch: 0, refused: 0 };

  constructor(engine: Engine, opts: QueueOptions) {
    this.engine = engine;
    this.opts = opts;
  }

  get queued(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * Queues a request's rows; resolves with their results in order. A request that cannot be queued (full queue,
   * shutting down, too many rows) throws at once, so that its HTTP status can still be set.
   */
  submit(rows: readonly EngineRow[], onText: (row: number, text: string) => void = () => {}, signal?: AbortSignal): Promise<RowResult[]> {
    if (this.closed) throw new ApiError(503, "the server is shutting down", { code: "server_shutting_down" });
    if (rows.length > this.opts.maxBatch) {
      throw new ApiError(
        400,
        `this request asks for ${rows.length} completions (prompts × n); the server runs at most ${this.opts.maxBatch} in one batch (--max-batch)`,
        { param: "n" },
      );
    }
    if (this.waiting.length >= this.opts.maxQueue) {
      this.stats.refused++;
      throw new ApiError(
        429,
        `the server is busy: ${this.waiting.length} requests are waiting (--max-queue ${this.opts.maxQueue}); retry later`,
        { type: "requests", code: "rate_limit_exceeded" },
      );
    }
    return new Promise((resolve, reject) => {
      const job: Job = { rows, onText, resolve, reject, cancelled: false, failed: null };
      this.waiting.push(job);
      if (signal?.aborted) return this.cancel(job);
      signal?.addEventListener("abort", () => this.cancel(job), { once: true });
      this.schedule();
    });
  }

  /** Refuses what waits (503) and resolves when the running batch has finished. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const job of this.waiting.splice(0))
      job.reject(new ApiError(503, "the server is shutting down", { code: "server_shutting_down" }));
    await this.running;
  }

  private cancel(job: Job): void {
    job.cancelled = true;
    const i = this.waiting.indexOf(job);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      job.reject(new ApiError(499, "the client closed the request", { code: "client_closed_request" }));
    }
  }

  private schedule(): void {
    if (this.running || this.timer || this.closed || this.waiting.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.runBatch().finally(() => {
        this.running = null;
        this.schedule();
      });
    }, this.opts.gatherMs);
  }

  private async runBatch(): Promise<void> {
    const jobs: Job[] = [];
    let n = 0;
    while (this.waiting.length > 0 && (jobs.length === 0 || n + this.waiting[0].rows.length <= this.opts.maxBatch)) {
      const job = this.waiting.shift()!;
      jobs.push(job);
      n += job.rows.length;
    }
    if (jobs.length === 0) return;
    const rows: EngineRow[] = [];
    const owner: [Job, number][] = []; // batch row → (job, its row)
    for (const job of jobs) {
      job.rows.forEach((r, i) => {
        rows.push(r);
        owner.push([job, i]);
      });
    }
    this.stats.batches++;
    this.stats.rows += rows.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, rows.length);
    try {
      const results = await this.engine.run(rows, (row, text) => {
        const [job, i] = owner[row];
        if (job.cancelled || job.failed) return;
        try {
          job.onText(i, text);
        } catch (e) {
          job.failed = e ?? new Error("onText failed");
        }
      });
      let k = 0;
      for (const job of jobs) {
        if (job.failed) job.reject(job.failed);
        else job.resolve(results.slice(k, k + job.rows.length));
        k += job.rows.length;
      }
    } catch (e) {
      for (const job of jobs) job.reject(e);
    }
  }
}
