/**
 * Errors of the HTTP API, shaped as OpenAI's: `{error: {message, type, param, code}}` with a 4xx or 5xx status.
 * Handlers throw ApiError for bad requests; anything else that escapes a handler is a bug and becomes a 500 that
 * says so, while the server stays up.
 */
import { isUserError } from "../util/errors.ts";

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;

  constructor(status: number, message: string, opts: { type?: string; param?: string | null; code?: string | null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 with the parameter named. */
export function badRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, { param, code });
}

/**
 * Any thrown value as an ApiError: an ApiError as it is, a UserError (bad input found below the HTTP layer, e.g.
 * an out-of-vocabulary token id or a chat template that rejects the messages) as a 400, anything else as a 500.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isUserError(e)) return new ApiError(400, e.message + (e.hint ? ` (hint: ${e.hint})` : ""), { code: e.code });
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError(500, `internal server error (a bug in colloquy serve, please report it): ${message}`, { code: "internal_error" });
}
