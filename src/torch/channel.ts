/**
 * The request side of worker/PROTOCOL.md over any byte stream (a child's pipes: process.ts; a socket: remote.ts):
 * wait for the hello and check the protocol version, then send one request at a time from a queue and settle each
 * call's promise from its reply. A broken frame, an `internal` error reply or `fail` (the stream ended) puts the
 * channel in its failed state: the call in flight and everything queued reject with one line, and so does every
 * later call.
 */
import { FrameError, FrameReader, encodeFrame } from "./frames.ts";
import { type WorkerErrorReply, protocolMismatch, remoteError, workerError } from "./errors.ts";

export const PROTOCOL_VERSION = 1;

export interface Hello {
  op: "hello";
  protocol: number;
  worker: string;
  torch: string;
  python: string;
  cuda: boolean;
  devices: number;
  world_size?: number; // processes in the worker's torch.distributed group (1 without one)
}

export type Reply = Record<string, unknown>;

interface Call {
  op: string;
  fields: Record<string, unknown>;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

export interface ChannelHooks {
  send: (frame: Buffer) => void; // write one frame to the worker
  busy: () => void; // a request is in flight: keep Node alive
  idle: () => void; // nothing in flight: let Node exit
  onFail: (e: Error) => void; // the channel failed: drop the stream (kill the process, destroy the socket)
}

export class Channel {
  private readonly reader: FrameReader;
  private readonly hooks: ChannelHooks;
  private hello: Hello | null = null;
  private onHello: ((h: Hello | Error) => void) | null = null;
  private readonly queue: Call[] = [];
  private inFlight: (Call & { id: number }) | null = null;
  private nextId = 1;
  failure: Error | null = null;
  closing = false;

  constructor(hooks: ChannelHooks) {
    this.hooks = hooks;
    this.reader = new FrameReader((h) => this.onFrame(h));
    this.reader.maxHeader = 1 << 16; // until the hello: a stray print must not look like a 2 GB frame
  }

  /** Bytes from the worker. */
  push(chunk: Buffer): void {
    try {
      this.reader.push(chunk);
    } catch (e) {
      this.fail(e instanceof FrameError ? new Error(`the torch worker broke the protocol: ${e.message}`) : (e as Error));
    }
  }

  /** Resolves with the hello, or rejects (timeout, wrong protocol, failure before it). */
  waitHello(timeoutMs: number, what: string): Promise<Hello> {
    if (this.hello) return Promise.resolve(this.hello);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onHello = null;
        reject(new Error(`${what} sent no hello within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.onHello = (h) => {
        clearTimeout(timer);
        this.onHello = null;
        if (h instanceof Error) reject(h);
        else {
          this.hooks.idle();
          resolve(h);
        }
      };
    });
  }

  get info(): Hello {
    if (!this.hello) throw new Error("the torch worker has not started");
    return this.hello;
  }

  get started(): boolean {
    return this.hello !== null;
  }

  /** The op of the request in flight, if any. */
  get inFlightOp(): string | null {
    return this.inFlight?.op ?? null;
  }

  /** Whether a request is in flight or queued. */
  get pending(): boolean {
    return this.inFlight !== null || this.queue.length > 0;
  }

  /** Bytes of a frame the reader has begun but not finished ("N of M"), or null. */
  get partialFrame(): string | null {
    return this.reader.pending > 0 ? `${this.reader.pending} of ${this.reader.expected ?? "?"} bytes` : null;
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

  /** The failed state: the call in flight (unless told otherwise) and everything queued reject; the stream is dropped. */
  fail(e: Error, rejectInFlight = true): void {
    if (this.failure) return;
    this.failure = e;
    if (!this.hello) this.onHello?.(e);
    if (rejectInFlight) this.inFlight?.reject(e);
    this.inFlight = null;
    for (const c of this.queue.splice(0)) c.reject(e);
    this.hooks.onFail(e);
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
      this.hooks.busy();
      this.hooks.send(frame);
      return;
    }
    this.hooks.idle();
  }

  private onFrame(h: Record<string, unknown>): void {
    if (!this.hello) {
      if (h.op !== "hello") {
        // a refusal before the hello (a listening worker that did not accept our token) is a one-line error
        const err = h.ok === false ? (h.error as WorkerErrorReply | undefined) : undefined;
        if (err?.message) {
          this.fail(remoteError(`the torch worker refused the connection: ${err.message}`));
          return;
        }
        throw new FrameError(`the first frame must be the hello, got ${JSON.stringify(h).slice(0, 120)}`);
      }
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
}
