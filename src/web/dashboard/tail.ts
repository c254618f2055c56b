/**
 * Following a growing JSONL file without reading it again: each `read()` looks at the file's size (one stat) and
 * reads only the bytes appended since the last call, up to the last complete line; a torn last line is read again
 * next time, once it is whole. A file that was replaced (another inode, as the run folder's atomic rewrite on resume
 * does) or that shrank is reported as a reset (`generation` counts them): the reader drops what it had and calls
 * again, which reads the new file from its start.
 */
import fs from "node:fs";

/** Called once per complete line: its text, and where its bytes are in the file (for reading it again later). */
export type LineHandler = (line: string, start: number, bytes: number) => void;

export interface TailResult {
  reset: boolean; // the file was replaced, shrank or vanished: everything read before is void
  lines: number; // complete lines handed over by this call
}

/**
 * Where generations start in this process: a page that reconnects after a server restart sends the generation it
 * knew, and this makes it differ from the new server's, so the page reloads that run rather than trust its cursor.
 */
const GENERATION_BASE = (Date.now() % 1_000_000) * 1000;

/** Bytes read per system call; a longer line grows the buffer for as long as it needs. */
const CHUNK = 1 << 20;

export class JsonlTail {
  readonly file: string;
  offset = 0; // bytes consumed: everything before it was handed over as complete lines
  generation = GENERATION_BASE; // moves on at each restart from the beginning
  bytesRead = 0; // total, for measurements
  private ino = -1;
  private seenSize = 0; // file size at the last read: a torn last line is not read again until the file grows

  constructor(file: string) {
    this.file = file;
  }

  /** Hands every new complete line to `onLine`. */
  read(onLine: LineHandler): TailResult {
    const st = fs.statSync(this.file, { throwIfNoEntry: false });
    if (!st) {
      if (this.ino === -1 && this.offset === 0) return { reset: false, lines: 0 };
      this.restart();
      return { reset: true, lines: 0 };
    }
    if ((this.ino !== -1 && st.ino !== this.ino) || st.size < this.offset) {
      this.restart(); // the caller drops what it had, then calls again to read the new file
      return { reset: true, lines: 0 };
    }
    this.ino = st.ino;
    if (st.size === this.offset || st.size === this.seenSize) return { reset: false, lines: 0 };
    this.seenSize = st.size;
    let count = 0;
    const fd = fs.openSync(this.file, "r");
    try {
      let buf = Buffer.allocUnsafe(Math.min(CHUNK, st.size - this.offset));
      while (this.offset < st.size) {
        const want = Math.min(buf.length, st.size - this.offset);
        const got = fs.readSync(fd, buf, 0, want, this.offset);
        this.bytesRead += got;
        if (got === 0) break;
        const last = buf.lastIndexOf(10, got - 1);
        if (last < 0) {
          if (this.offset + got >= st.size) break; // a torn last line: wait for the rest
          buf = Buffer.allocUnsafe(buf.length * 2); // a line longer than the buffer
          continue;
        }
        let start = 0;
        while (start <= last) {
          const nl = buf.indexOf(10, start);
          if (nl > start) {
            onLine(buf.toString("utf8", start, nl), this.offset + start, nl - start);
            count++;
          }
          start = nl + 1;
        }
        this.offset += last + 1;
      }
    } finally {
      fs.closeSync(fd);
    }
    return { reset: false, lines: count };
  }

  /** Reads the file from its beginning again on the next call (as a restart: `generation` moves on). */
  rewind(): void {
    this.restart();
  }

  private restart(): void {
    this.offset = 0;
    this.seenSize = 0;
    this.ino = -1;
    this.generation++;
  }
}
