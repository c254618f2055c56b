/**
 * A worker group that the user started (e.g. with torchrun, on this machine or others) and whose rank 0 listens:
 * `python -m colloquy_worker --listen HOST:PORT --token-file F`. colloquy connects, sends the auth frame
 * {"op": "auth", "token"} (worker/PROTOCOL.md), and then speaks the protocol over the socket. A token is required
 * for any address but loopback; it comes from --token-file or $COLLOQUY_WORKER_TOKEN and never appears in a message.
 */
import fs from "node:fs";
import net from "node:net";
import { Channel, type Hello, type Reply } from "./channel.ts";
import { remoteError } from "./errors.ts";
import { encodeFrame } from "./frames.ts";
import type { WorkerLink } from "./process.ts";

export interface RemoteOptions {
  address: string; // HOST:PORT of rank 0
  tokenFile?: string | null; // a file holding the token (else $COLLOQUY_WORKER_TOKEN)
  helloTimeoutMs?: number; // connecting and the hello (default 60 s)
}

/** HOST:PORT (IPv6 in brackets) → its parts; a one-line error otherwise. */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(address.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw remoteError(`--worker ${address}: expected HOST:PORT of the worker group's rank 0`, "e.g. 10.0.0.5:29600 or [::1]:29600");
  }
  return { host: m[1] ?? m[2]!, port };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The token, from the file or the environment; null when neither gives one. */
export function readToken(tokenFile: string | null | undefined): string | null {
  if (tokenFile) {
    let text: string;
    try {
      text = fs.readFileSync(tokenFile, "utf8");
    } catch (e) {
      throw remoteError(
        `--token-file ${tokenFile}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`,
      );
    }
    const token = text.trim();
    if (!token) throw remoteError(`--token-file ${tokenFile} is empty`);
    return token;
  }
  return process.env.COLLOQUY_WORKER_TOKEN?.trim() || null;
}

export class RemoteWorker implements WorkerLink {
  readonly pid = -1;
  readonly address: string;
  private readonly socket: net.Socket;
  private readonly channel: Channel;
  private readonly closed: Promise<void>;

  static async connect(o: RemoteOptions): Promise<RemoteWorker> {
    const { host, port } = parseAddress(o.address);
    const token = readToken(o.tokenFile);
    if (!token && !isLoopback(host)) {
      throw remoteError(
        `--worker ${o.address} is not a loopback address, and no token was given`,
        "the worker group's token in --token-file F or $COLLOQUY_WORKER_TOKEN",
      );
    }
    const w = new RemoteWorker(o.address, host, port, token);
    try {
      await w.channel.waitHello(o.helloTimeoutMs ?? 60_000, `the torch worker at ${o.address}`);
    } catch (e) {
      w.socket.destroy();
      throw e;
    }
    return w;
  }

  private constructor(address: string, host: string, port: number, token: string | null) {
    this.address = address;
    this.socket = net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.channel = new Channel({
      send: (frame) => this.socket.write(frame),
      busy: () => this.socket.ref(),
      idle: () => this.socket.unref(),
      onFail: () => this.socket.destroy(),
    });
    this.socket.on("connect", () => this.socket.write(encodeFrame({ op: "auth", ...(token ? { token } : {}) })));
    this.socket.on("data", (chunk: Buffer) => this.channel.push(chunk));
    this.closed = new Promise((resolve) => {
      this.socket.on("error", (e: NodeJS.ErrnoException) => {
        const why = e.code === "ECONNREFUSED" ? "connection refused (is the worker group listening there?)" : e.message;
        this.channel.fail(remoteError(`the torch worker at ${address}: ${why}`));
      });
      this.socket.on("close", () => {
        const ch = this.channel;
        ch.fail(
          ch.closing && !ch.pending
            ? new Error("the torch worker is closed")
            : remoteError(`the torch worker at ${address} closed the connection${ch.inFlightOp ? ` during ${ch.inFlightOp}` : ""}`),
        );
        resolve();
      });
    });
  }

  get info(): Hello {
    return this.channel.info;
  }

  call(op: string, fields: Record<string, unknown> = {}): Promise<Reply> {
    return this.channel.call(op, fields);
  }

  /** Ends the session: the group forgets this client's model and adapters and waits for the next. */
  async close(): Promise<void> {
    if (this.channel.failure || this.channel.closing) return;
    const shutdown = this.call("shutdown").catch(() => {});
    this.channel.closing = true;
    await shutdown;
    this.socket.end();
    await this.closed;
  }
}
