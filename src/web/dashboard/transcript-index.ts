/**
 * An index of a run's transcripts.jsonl: for every record its byte range and its iteration, episode, round and
 * agent, built from the appended bytes only. A query filters the index and reads just the matching records' bytes
 * back from the file, so a page of a long run's transcripts costs a few small reads, whatever the file's size.
 */
import fs from "node:fs";
import { JsonlTail } from "./tail.ts";

export interface TranscriptQuery {
  iteration?: number;
  agent?: number;
  round?: number;
  episode?: number;
  offset?: number; // skip this many matching records
  limit?: number; // at most this many (default 50)
}

export interface TranscriptPage {
  total: number; // matching records
  offset: number;
  records: string[]; // their JSON text, in file order
}

/** The order in which the trainer writes a record's first keys: `{ iteration, ...AgentRound }`. */
const HEAD = /^\{"iteration":(-?\d+),"episode":(\d+),"world":-?\d+,"round":(\d+),"agent":(\d+)[,}]/;

export class TranscriptIndex {
  private readonly tail: JsonlTail;
  private start: number[] = []; // byte offset of each record
  private bytes: number[] = []; // its length
  private iter: number[] = [];
  private episode: number[] = [];
  private round: number[] = [];
  private agent: number[] = [];
  iterations: number[] = []; // distinct iterations, in file order
  bad = 0;

  constructor(file: string) {
    this.tail = new JsonlTail(file);
  }

  get count(): number {
    return this.start.length;
  }

  get generation(): number {
    return this.tail.generation;
  }

  get bytesRead(): number {
    return this.tail.bytesRead;
  }

  refresh(): { reset: boolean; added: number } {
    const before = this.count;
    const add = (text: string, start: number, bytes: number) => this.add(text, start, bytes);
    if (this.tail.read(add).reset) {
      this.start = [];
      this.bytes = [];
      this.iter = [];
      this.episode = [];
      this.round = [];
      this.agent = [];
      this.iterations = [];
      this.bad = 0;
      this.tail.read(add);
      return { reset: true, added: this.count };
    }
    return { reset: false, added: this.count - before };
  }

  private add(text: string, start: number, bytes: number): void {
    let key: [number, number, number, number] | null = null;
    const m = HEAD.exec(text.slice(0, 200));
    if (m) key = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
    else {
      try {
        const r = JSON.parse(text);
        const ok = (x: unknown) => typeof x === "number" && Number.isInteger(x);
        if (r && ok(r.iteration) && ok(r.round) && ok(r.agent)) key = [r.iteration, ok(r.episode) ? r.episode : 0, r.round, r.agent];
      } catch {
        // a torn line: skipped, counted
      }
    }
    if (!key) {
      this.bad++;
      return;
    }
    this.start.push(start);
    this.bytes.push(bytes);
    this.iter.push(key[0]);
    this.episode.push(key[1]);
    this.round.push(key[2]);
    this.agent.push(key[3]);
    if (this.iterations[this.iterations.length - 1] !== key[0]) this.iterations.push(key[0]);
  }

  query(q: TranscriptQuery): TranscriptPage {
    const offset = Math.max(0, q.offset ?? 0);
    const limit = Math.max(0, q.limit ?? 50);
    const picked: number[] = [];
    let total = 0;
    for (let i = 0; i < this.start.length; i++) {
      if (q.iteration !== undefined && this.iter[i] !== q.iteration) continue;
      if (q.agent !== undefined && this.agent[i] !== q.agent) continue;
      if (q.round !== undefined && this.round[i] !== q.round) continue;
      if (q.episode !== undefined && this.episode[i] !== q.episode) continue;
      if (total >= offset && picked.length < limit) picked.push(i);
      total++;
    }
    const records: string[] = [];
    if (picked.length) {
      const fd = fs.openSync(this.tail.file, "r");
      try {
        for (const i of picked) {
          const buf = Buffer.allocUnsafe(this.bytes[i]);
          fs.readSync(fd, buf, 0, buf.length, this.start[i]);
          const text = buf.toString("utf8");
          if (isJson(text)) records.push(text); // else the file changed under the index: the next refresh resets it
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    return { total, offset, records };
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
