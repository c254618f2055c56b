/**
 * The torch backend's errors, each one line (util/errors.ts): what the user can fix is a UserError with a code and
 * a hint (no interpreter, no torch, a worker `user` error, a protocol mismatch, a worker that died); a worker's
 * `internal` error or a broken frame is a bug (a plain Error).
 */
import { UserError } from "../util/errors.ts";

export const INSTALL_HINT = "apt-get install python3-torch, or pip install torch; or set --python / $COLLOQUY_PYTHON";

/** The interpreter could not be started (ENOENT, EACCES). */
export function noPython(python: string, code?: string): UserError {
  return new UserError("E_NO_PYTHON", `no Python at ${python}${code && code !== "ENOENT" ? ` (${code})` : ""}`, INSTALL_HINT);
}

/** The interpreter runs but cannot import torch. */
export function noTorch(python: string): UserError {
  return new UserError("E_NO_TORCH", `the Python at ${python} cannot import torch`, INSTALL_HINT);
}

/** The interpreter runs but cannot find the worker package. */
export function noWorkerPackage(python: string, workerDir: string): UserError {
  return new UserError(
    "E_NO_WORKER",
    `the Python at ${python} cannot import colloquy_worker from ${workerDir}`,
    "the worker/ folder of colloquy's package must be there (it is put on PYTHONPATH)",
  );
}

export function protocolMismatch(worker: unknown, client: number): UserError {
  return new UserError(
    "E_PROTOCOL",
    `the torch worker speaks protocol ${JSON.stringify(worker)}, this colloquy speaks protocol ${client}`,
    "use the worker/ folder that came with this colloquy",
  );
}

/** An error reply: {kind, code, message, traceback}. */
export interface WorkerErrorReply {
  kind: "user" | "internal";
  code: string;
  message: string;
  traceback: string | null;
}

/** A worker error reply as the error the call rejects with: `user` → UserError, `internal` → Error (a bug). */
export function workerError(op: string, e: WorkerErrorReply): Error {
  const where = e.traceback ? `full traceback: ${e.traceback}` : undefined;
  const message = oneLine(String(e.message ?? "(no message)"));
  if (e.kind === "user") return new UserError(String(e.code || "E_WORKER"), message, where);
  // a Python exception the worker did not expect: still one line, naming where the traceback is
  return new UserError(
    "E_WORKER_INTERNAL",
    `torch worker: internal error in ${op} [${e.code}]: ${message}`,
    where ?? "the worker wrote no traceback",
  );
}

/** The worker exited (a signal, OOM, kill -9, a crash) while `what` was in flight. */
export function workerExited(
  what: string,
  code: number | null,
  signal: string | null,
  stderrTail: readonly string[],
  hint?: string,
): UserError {
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  const tail = stderrTail.length ? `; last stderr: ${stderrTail.map(oneLine).join(" | ")}` : "; no stderr";
  return new UserError(
    "E_WORKER_EXITED",
    `the torch worker ${how} during ${what}${tail}`,
    hint ?? (signal === "SIGKILL" ? "out of memory? (the kernel's OOM killer sends SIGKILL)" : undefined),
  );
}

export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

/** A --worker address, token or connection problem. */
export function remoteError(message: string, hint?: string): UserError {
  return new UserError("E_WORKER_CONNECT", message, hint);
}
