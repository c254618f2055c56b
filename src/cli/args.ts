/**
 * Helpers for reading command-line flags into typed values, each failing with a one-line user error.
 */
import type { ArgsDef } from "citty";
import { UserError } from "../util/errors.ts";

type Raw = string | number | boolean | string[] | undefined;

/** The last value of a flag given once or several times. */
function last(v: Raw): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.length ? String(v[v.length - 1]) : undefined;
  return String(v);
}

/**
 * Every value of a repeatable flag, in order (`--adapter a --adapter=b`), read from the raw arguments: citty's
 * parsed `args` keep only the last one.
 */
export function many(rawArgs: readonly string[], flag: string): string[] {
  const values: string[] = [];
  for (let k = 0; k < rawArgs.length && rawArgs[k] !== "--"; k++) {
    if (rawArgs[k] === `--${flag}` && k + 1 < rawArgs.length) values.push(rawArgs[++k]);
    else if (rawArgs[k].startsWith(`--${flag}=`)) values.push(rawArgs[k].slice(flag.length + 3));
  }
  return values;
}

export function str(v: Raw, flag: string, fallback?: string): string {
  const s = last(v) ?? fallback;
  if (s === undefined) throw new UserError("E_MISSING_FLAG", `--${flag} is required`);
  return s;
}

export function optStr(v: Raw): string | undefined {
  return last(v);
}

export function num(v: Raw, flag: string, fallback: number, range: { min?: number; max?: number; integer?: boolean } = {}): number {
  const s = last(v);
  if (s === undefined || s === "") return fallback;
  const n = Number(s);
  const { min = -Infinity, max = Infinity, integer = false } = range;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    const kind = integer ? "an integer" : "a number";
    const bounds = [min > -Infinity ? `≥ ${min}` : "", max < Infinity ? `≤ ${max}` : ""].filter(Boolean).join(" and ");
    throw new UserError("E_BAD_FLAG", `--${flag} must be ${kind}${bounds ? ` ${bounds}` : ""}, got "${s}"`);
  }
  return n;
}

export function int(v: Raw, flag: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  return num(v, flag, fallback, { ...range, integer: true });
}

/** Rejects flags a command does not define (citty ignores them silently). */
export function rejectUnknownFlags(rawArgs: string[], defs: ArgsDef, command: string): void {
  const known = new Set<string>(["help", "h"]);
  for (const [name, def] of Object.entries(defs)) {
    known.add(name);
    known.add(name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));
    for (const a of ([] as string[]).concat(("alias" in def ? def.alias : undefined) ?? [])) known.add(a);
    if (def.type === "boolean") known.add(`no-${name}`);
  }
  for (const raw of rawArgs) {
    if (raw === "--") break;
    const m = /^--?([^=]+)/.exec(raw);
    if (!m || /^-\d/.test(raw)) continue;
    if (!known.has(m[1]))
      throw new UserError("E_UNKNOWN_FLAG", `unknown flag ${raw.split("=")[0]} for colloquy ${command}`, `see colloquy ${command} --help`);
  }
}
