/**
 * A request body read with a size limit enforced while it streams in: a declared Content-Length over the limit
 * is refused before a byte is read, and a chunked upload is refused as soon as it passes the limit, so that a
 * server never holds more than `maxBytes` of one body whatever the client sends. A client that goes away
 * mid-upload is told apart from a bug.
 */
import type { IncomingMessage } from "node:http";

/** The body is larger than the limit. */
export class BodyTooLarge extends Error {
  readonly limit: number;
  readonly declared: number | null; // the Content-Length, when that is how it was found out

  constructor(limit: number, declared: number | null) {
    super(
      declared === null
        ? `the request body is larger than ${limit} bytes`
        : `the request body has ${declared} bytes; at most ${limit} are accepted`,
    );
    this.name = "BodyTooLarge";
    this.limit = limit;
    this.declared = declared;
  }
}

/** The client closed the connection before the whole body arrived. */
export class BodyAborted extends Error {
  constructor(cause?: unknown) {
    super("the client closed the connection before the request body was complete", { cause });
    this.name = "BodyAborted";
  }
}

/**
 * Reads the whole body of `req`, at most `maxBytes`; throws BodyTooLarge or BodyAborted. Under @hono/node-server,
 * pass the Node request (`c.env.incoming`): it is read directly and paused at the limit, so that what the client
 * still sends is discarded by the HTTP server (which drains a little, then closes the connection) without passing
 * through a web stream that would keep it.
 */
export async function readBody(req: Request, maxBytes: number, incoming?: IncomingMessage | null): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && !req.headers.has("transfer-encoding")) {
    const n = Number(declared);
    if (Number.isFinite(n) && n > maxBytes) throw new BodyTooLarge(maxBytes, n);
  }
  if (incoming) return readIncoming(incoming, maxBytes);
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let step: Awaited<ReturnType<typeof reader.read>>;
    try {
      step = await reader.read();
    } catch (e) {
      throw new BodyAborted(e);
    }
    if (step.done) break;
    size += step.value.byteLength;
    if (size > maxBytes) {
      reader.cancel().catch(() => {});
      throw new BodyTooLarge(maxBytes, null);
    }
    chunks.push(step.value);
  }
  if (req.signal?.aborted) throw new BodyAborted(req.signal.reason);
  return concat(chunks, size);
}

function readIncoming(incoming: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  if (incoming.readableEnded) return Promise.resolve(new Uint8Array(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= maxBytes) return void chunks.push(chunk);
      cleanup();
      incoming.pause();
      reject(new BodyTooLarge(maxBytes, null));
    };
    const onEnd = () => {
      cleanup();
      resolve(concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new BodyAborted(e));
    };
    const onClose = () => {
      cleanup();
      if (incoming.readableEnded) resolve(concat(chunks, size));
      else reject(new BodyAborted());
    };
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onError);
    incoming.on("close", onClose);
  });
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
