/**
 * A run's metrics.jsonl as the dashboard needs it: the raw text of every line (kept only once a page asked for
 * them, so that a folder of many long runs costs little memory), and what the run list shows (last iteration, best
 * validation gain, the longest iteration time), all updated from the appended bytes only.
 */
import { JsonlTail } from "./tail.ts";

export interface Best {
  value: number;
  iteration: number;
}

export class MetricsLog {
  private readonly tail: JsonlTail;
  private retain = false;
  lines: string[] = []; // the JSON text of each line, in file order (while retained)
  count = 0; // valid lines
  bad = 0; // lines that are not a JSON object with a numeric iteration (a torn line of a killed run)
  lastIteration: number | null = null;
  best: Best | null = null; // highest val_information_gain
  slowestIteration = 0; // seconds: time_generate + time_score + time_train, the largest seen

  constructor(file: string) {
    this.tail = new JsonlTail(file);
  }

  get file(): string {
    return this.tail.file;
  }

  /** Changes whenever the lines read so far become void (the file was rewritten): readers start over. */
  get generation(): number {
    return this.tail.generation;
  }

  get bytesRead(): number {
    return this.tail.bytesRead;
  }

  /** From now on keep every line's text (read from the start once more if they were not kept). */
  keepLines(): void {
    if (this.retain) return;
    this.retain = true;
    if (this.tail.offset > 0) {
      this.tail.rewind();
      this.clear();
    }
  }

  /** Reads what was appended since the last call. */
  refresh(): { reset: boolean; added: number } {
    const before = this.count;
    const r = this.tail.read((text) => this.add(text));
    if (r.reset) {
      this.clear();
      this.tail.read((text) => this.add(text)); // the new file, from its start
      return { reset: true, added: this.count };
    }
    return { reset: false, added: this.count - before };
  }

  private clear(): void {
    this.lines = [];
    this.count = 0;
    this.bad = 0;
    this.lastIteration = null;
    this.best = null;
    this.slowestIteration = 0;
  }

  private add(text: string): void {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text);
    } catch {
      this.bad++;
      return;
    }
    if (typeof line !== "object" || line === null || typeof line.iteration !== "number") {
      this.bad++;
      return;
    }
    const it = line.iteration;
    this.count++;
    if (this.retain) this.lines.push(text);
    this.lastIteration = it;
    const val = line.val_information_gain;
    if (typeof val === "number" && Number.isFinite(val) && (this.best === null || val > this.best.value))
      this.best = { value: val, iteration: it };
    const seconds = ["time_generate", "time_score", "time_train"].reduce(
      (s, k) => s + (typeof line[k] === "number" ? (line[k] as number) : 0),
      0,
    );
    if (seconds > this.slowestIteration) this.slowestIteration = seconds;
  }
}
