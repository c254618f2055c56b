/**
 * Two kinds of error (STYLE.md habit 7):
 * - UserError: bad input the user can fix. Carries a code and a hint, prints as one line, exit status 2.
 * - anything else: a bug. The CLI prints its stack.
 */
export class UserError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.name = "UserError";
    this.code = code;
    this.hint = hint;
  }

  /** The one line the CLI prints. */
  oneLine(): string {
    const text = `error[${this.code}]: ${this.message}` + (this.hint ? ` (hint: ${this.hint})` : "");
    return text.replace(/\s*\n\s*/g, " ");
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** Throws a UserError unless `cond` holds. */
export function check(cond: unknown, code: string, message: string, hint?: string): asserts cond {
  if (!cond) throw new UserError(code, message, hint);
}

/** Internal invariant: a failure is a bug, not a user error. */
export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`internal invariant failed: ${message}`);
}
