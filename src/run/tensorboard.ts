/**
 * TensorBoard event files, written by hand (no TensorFlow, no protobuf library): a file is a sequence of TFRecords
 *   u64 length (LE) · u32 masked CRC32C of those 8 bytes · data · u32 masked CRC32C of the data
 * whose data are `Event` protobufs (tensorflow/core/util/event.proto, summary.proto):
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
 * The first record of a file holds only wall_time and file_version "brain.Event:2"; the file is named
 * `events.out.tfevents.<unix seconds>.<hostname>`. TensorBoard reads every such file of a folder, and so do the
 * trackers that import TensorBoard logs.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeFileAtomic } from "../util/fs.ts";

export const FILE_VERSION = "brain.Event:2";
export const EVENT_FILE_PREFIX = "events.out.tfevents.";

// ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup per byte ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 bits, add a constant (so a CRC of data holding CRCs stays useful). */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

// ---- protobuf wire format: the few encodings an Event needs ----

class ProtoWriter {
  private parts: Uint8Array[] = [];

  private varint(n: number): void {
    const out: number[] = [];
    let v = n;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    this.parts.push(Uint8Array.from(out));
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A non-negative integer below 2^53 as varint (int64, wire type 0). */
  uint(field: number, n: number): this {
    this.tag(field, 0);
    this.varint(n);
    return this;
  }

  double(field: number, x: number): this {
    this.tag(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    this.parts.push(b);
    return this;
  }

  float(field: number, x: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    this.parts.push(b);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    this.parts.push(data);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, "utf8"));
  }

  finish(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

export interface EventRecord {
  wallTime: number; // seconds since the epoch
  step: number;
  fileVersion?: string;
  scalars?: readonly (readonly [tag: string, value: number])[]; // Summary values (simple_value: float32)
}

/** One Event protobuf. */
export function encodeEvent(e: EventRecord): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime);
  if (e.step !== 0) w.uint(2, e.step);
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  if (e.scalars?.length) {
    const summary = new ProtoWriter();
    for (const [tag, value] of e.scalars) summary.bytes(1, new ProtoWriter().string(1, tag).float(2, value).finish());
    w.bytes(5, summary.finish());
  }
  return w.finish();
}

/** One TFRecord around `data`. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const head = new Uint8Array(12);
  const view = new DataView(head.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(head.subarray(0, 8)), true);
  const tail = new Uint8Array(4);
  new DataView(tail.buffer).setUint32(0, maskedCrc32c(data), true);
  return Buffer.concat([head, data, tail]);
}

/**
 * The whole records of an event file, in order; reading stops at the first record that is cut short or whose
 * CRCs do not match (what a process killed in the middle of an append leaves).
 */
export function readRecords(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  while (at + 12 <= buf.length) {
    const len = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== maskedCrc32c(buf.subarray(at, at + 8))) break;
    if (at + 12 + len + 4 > buf.length) break;
    const data = buf.subarray(at + 12, at + 12 + len);
    if (view.getUint32(at + 12 + len, true) !== maskedCrc32c(data)) break;
    out.push(data);
    at += 16 + len;
  }
  return out;
}

/** The step of an Event (field 2), and whether it carries file_version (field 3): enough to truncate a file. */
export function eventStep(data: Uint8Array): { step: number; fileVersion: boolean } {
  let at = 0;
  let step = 0;
  let fileVersion = false;
  const varint = (): number => {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = data[at++];
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
  };
  while (at < data.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      const v = varint();
      if (field === 2) step = v;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint();
      if (field === 3) fileVersion = true;
      at += len;
    } else throw new Error(`event record: unexpected wire type ${wire}`);
  }
  return { step, fileVersion };
}

export function isEventFile(name: string): boolean {
  return name.startsWith(EVENT_FILE_PREFIX);
}

/**
 * Drops every event of step ≥ `next` from the event files of `dir` (the file_version records stay), rewriting a
 * file atomically when it changes and removing one left with no event: what a resumed run does, so that the
 * iterations it repeats are not written twice. A torn last record is dropped too.
 */
export function truncateEventFiles(dir: string, next: number): void {
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir).filter(isEventFile)) {
    const file = path.join(dir, name);
    const buf = fs.readFileSync(file);
    const records = readRecords(buf);
    const kept = records.filter((r) => {
      const { step, fileVersion } = eventStep(r);
      return fileVersion || step < next;
    });
    if (!kept.some((r) => !eventStep(r).fileVersion)) fs.rmSync(file);
    else if (kept.length !== records.length || kept.reduce((n, r) => n + r.length + 16, 0) !== buf.length)
      writeFileAtomic(file, Buffer.concat(kept.map(frameRecord)));
  }
}

/**
 * Appends scalar events to a new event file in `dir`, created on the first write (a run that writes nothing
 * leaves no empty file). Each write is one record appended synchronously: a process killed at any moment leaves
 * whole records, at worst followed by a torn one that readers skip.
 */
export class EventFileWriter {
  readonly dir: string;
  private file: string | null = null;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The file written to (null before the first write). */
  get path(): string | null {
    return this.file;
  }

  write(step: number, scalars: readonly (readonly [string, number])[], wallTime = Date.now() / 1000): void {
    if (!this.file) this.file = this.create(wallTime);
    fs.appendFileSync(this.file, frameRecord(encodeEvent({ wallTime, step, scalars })));
  }

  private create(wallTime: number): string {
    fs.mkdirSync(this.dir, { recursive: true });
    const base = path.join(this.dir, `${EVENT_FILE_PREFIX}${Math.floor(wallTime)}.${os.hostname()}`);
    let file = base;
    for (let n = 1; fs.existsSync(file); n++) file = `${base}.${n}`; // a resume within the same second
    fs.writeFileSync(file, frameRecord(encodeEvent({ wallTime, step: 0, fileVersion: FILE_VERSION })), { flag: "wx" });
    return file;
  }
}
