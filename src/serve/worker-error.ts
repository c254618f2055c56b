/**
 * An error thrown in a worker thread, as a plain object the main thread can rebuild: a user error keeps its code
 * and hint (and stays a one-line error), anything else keeps its stack.
 */
import { UserError, isUserError } from "../util/errors.ts";

export interface WorkerError {
  userError: boolean;
  code: string | null;
  message: string;
  hint: string | null;
  stack: string | null;
}

export function workerError(e: unknown): WorkerError {
  const err = e as Error & { code?: string; hint?: string };
  return {
    userError: isUserError(e),
    code: isUserError(e) ? e.code : null,
    message: err?.message ?? String(e),
    hint: isUserError(e) ? (e.hint ?? null) : null,
    stack: err?.stack ?? null,
  };
}

export function asError(e: WorkerError): Error {
  if (e.userError) return new UserError(e.code ?? "E_ENGINE", e.message, e.hint ?? undefined);
  const err = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  return err;
}
