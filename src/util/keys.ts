/**
 * Settings defined once: a key table gives each key its type and bounds (a zod schema), its default, its meaning
 * and its other flag spellings. From a table come the defaults, the validation of config files and flags (the
 * same one-line errors wherever a key is read), the parsing of command lines and the --help text, so that none of
 * them can drift from the others. Values flow one way: defaults → config files → flags.
 */
import type { z } from "zod";
import { UserError } from "./errors.ts";
import { readJsonFile } from "./fs.ts";

export interface KeyDef<T extends z.ZodType = z.ZodType> {
  type: T; // the value's type and bounds
  default: z.output<T>;
  about: string; // one line for --help
  alias?: readonly string[]; // other flag spellings (e.g. the kebab-case contracts "state-tokens", "env")
  hint?: string; // placeholder of the value in --help
  repeat?: boolean; // a flag given several times keeps every value (a list key: all values, commas split)
  verbatim?: boolean; // a list key: each flag value is one element as typed (no comma splitting, no trimming)
}

export type KeyTable = Record<string, KeyDef>;
export type Values<K extends KeyTable> = { -readonly [k in keyof K]: z.output<K[k]["type"]> };

/** A key definition (a helper that keeps the default's type tied to the schema's). */
export function key<T extends z.ZodType>(
  type: T,
  def: z.output<T>,
  about: string,
  more: Omit<KeyDef<T>, "type" | "default" | "about"> = {},
): KeyDef<T> {
  return { type, default: def, about, ...more };
}

export function defaults<K extends KeyTable>(table: K): Values<K> {
  return Object.fromEntries(Object.entries(table).map(([k, d]) => [k, structuredClone(d.default)])) as Values<K>;
}

/** "stateTokens" → "state-tokens" */
export const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

const HELP_HINT = "--help lists every key with its default and meaning";

/** Checks one value against its key; `label` names where it came from (`--rounds=0`, `cfg.json: rounds`). */
export function checkValue(def: KeyDef, value: unknown, label: string, code = "E_BAD_VALUE"): unknown {
  const r = def.type.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const message = issue.message.charAt(0).toLowerCase() + issue.message.slice(1);
  throw new UserError(code, `${label}: ${message}`, `${def.about}; ${HELP_HINT}`);
}

/** The base kind of a schema, looking through nullable / optional / default / pipes. */
function kindOf(t: z.ZodType): { kind: string; nullable: boolean; element?: z.ZodType; options?: z.ZodType[] } {
  let s = t as z.ZodType & { _zod: { def: Record<string, unknown> } };
  let nullable = false;
  for (;;) {
    const d = s._zod.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    if (d.type === "nullable" || d.type === "optional" || d.type === "default") {
      nullable ||= d.type === "nullable";
      s = d.innerType as typeof s;
    } else if (d.type === "pipe") s = d.in as typeof s;
    else break;
  }
  const d = s._zod.def as { type: string; element?: z.ZodType; options?: z.ZodType[] };
  return { kind: d.type, nullable, element: d.element, options: d.options };
}

/** A flag's text as a value of the key's type: numbers, true/false, comma-separated lists, null. */
export function fromText(def: KeyDef, text: string, label: string): unknown {
  const { kind, nullable, element, options } = kindOf(def.type);
  if (nullable && text === "null") return null;
  const scalar = (k: string, s: string): unknown => {
    if (k === "number") {
      const n = Number(s);
      if (s.trim() === "" || !Number.isFinite(n))
        throw new UserError("E_BAD_VALUE", `${label}: expected a number, got "${s}"`, `${def.about}; ${HELP_HINT}`);
      return n;
    }
    if (k === "boolean") {
      if (s !== "true" && s !== "false")
        throw new UserError("E_BAD_VALUE", `${label}: expected true or false, got "${s}"`, `${def.about}; ${HELP_HINT}`);
      return s === "true";
    }
    return s;
  };
  const list = (s: string, el: z.ZodType | undefined) =>
    s === "" ? [] : s.split(",").map((x) => scalar(el ? kindOf(el).kind : "string", x.trim()));
  if (kind === "array") return def.verbatim ? [text] : list(text, element);
  if (kind === "union" && options?.some((o) => kindOf(o).kind === "array")) {
    const array = options.find((o) => kindOf(o).kind === "array")!;
    return text.includes(",") ? list(text, kindOf(array).element) : text;
  }
  return scalar(kind, text);
}

/** Merges layers of values into the defaults, checking every key of every layer; `where` names each layer. */
export function resolveKeys<K extends KeyTable>(table: K, layers: { values: Record<string, unknown>; where: string }[]): Values<K> {
  const merged: Record<string, unknown> = defaults(table);
  for (const { values, where } of layers) {
    for (const [k, v] of Object.entries(values)) {
      const def = table[k];
      if (!def) throw new UserError("E_UNKNOWN_KEY", `${where}: unknown key "${k}"`, HELP_HINT);
      merged[k] = checkValue(def, v, `${where}: ${k}`, "E_BAD_CONFIG");
    }
  }
  return merged as Values<K>;
}

export interface ParsedArgv {
  values: Record<string, unknown>; // key → value, for the flags given
  labels: Record<string, string>; // key → the flag as given (for error messages)
  positionals: string[];
}

/**
 * Reads a command line against a table: `--key=value`, `--key value`, the kebab-case form of every camelCase key,
 * the aliases, booleans as `--flag`, `--no-flag` or `--flag=true|false`; repeatable keys keep every value. Each
 * value is checked against its key as it is read. Unknown flags are one-line errors naming the command.
 */
export function parseArgv(argv: readonly string[], table: KeyTable, command: string): ParsedArgv {
  const names = new Map<string, string>();
  for (const [k, d] of Object.entries(table)) for (const n of [k, kebab(k), ...(d.alias ?? [])]) names.set(n, k);
  const out: ParsedArgv = { values: {}, labels: {}, positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    const m = /^--([^=]+)(?:=([\s\S]*))?$/.exec(arg);
    if (!m) {
      if (/^-[^\d.]/.test(arg))
        throw new UserError("E_UNKNOWN_FLAG", `unknown flag ${arg} for colloquy ${command}`, `see colloquy ${command} --help`);
      out.positionals.push(arg);
      continue;
    }
    let [, name, text] = m as unknown as [string, string, string | undefined];
    let k = names.get(name);
    if (
      k === undefined &&
      name.startsWith("no-") &&
      names.has(name.slice(3)) &&
      kindOf(table[names.get(name.slice(3))!].type).kind === "boolean"
    ) {
      if (text !== undefined) throw new UserError("E_BAD_VALUE", `--${name} takes no value`);
      k = names.get(name.slice(3))!;
      text = "false";
    }
    if (k === undefined)
      throw new UserError("E_UNKNOWN_FLAG", `unknown flag --${name} for colloquy ${command}`, `see colloquy ${command} --help`);
    const def = table[k];
    if (text === undefined) {
      const next = argv[i + 1];
      if (kindOf(def.type).kind === "boolean") text = next === "true" || next === "false" ? argv[++i] : "true";
      else if (next === undefined || (next.startsWith("--") && next.length > 2))
        throw new UserError("E_BAD_FLAG", `--${name} needs a value`, `see colloquy ${command} --help`);
      else text = argv[++i];
    }
    const label = `--${name}=${text}`;
    const value = fromText(def, text, label);
    if (def.repeat && k in out.values) {
      const prev = out.values[k];
      out.values[k] = Array.isArray(prev) ? [...prev, ...(Array.isArray(value) ? value : [value])] : [prev, value];
    } else out.values[k] = def.repeat && kindOf(def.type).kind === "array" && !Array.isArray(value) ? [value] : value;
    out.values[k] = checkValue(def, out.values[k], label);
    out.labels[k] = label;
  }
  return out;
}

/** --help lines of a table: spellings, value placeholder, meaning and default. */
export function helpLines(table: KeyTable): string[] {
  const rows = Object.entries(table).map(([k, d]) => {
    const spellings = [...new Set([k, kebab(k), ...(d.alias ?? [])])].map((n) => `--${n}`).join(", ");
    const isBool = kindOf(d.type).kind === "boolean";
    const flag = isBool ? spellings : `${spellings} <${d.hint ?? placeholder(d)}>`;
    const def = d.default;
    const shown = def === null || def === undefined ? "" : Array.isArray(def) ? (def.length ? def.join(",") : "") : String(def);
    const about = d.about + (isBool && def === false ? "" : shown !== "" ? ` (default ${shown})` : "") + (d.repeat ? " [repeatable]" : "");
    return [flag, about];
  });
  const width = Math.min(44, Math.max(...rows.map(([f]) => f.length)));
  return rows.map(([f, a]) => (f.length > width ? `  ${f}\n  ${" ".repeat(width)}  ${a}` : `  ${f.padEnd(width)}  ${a}`));
}

function placeholder(d: KeyDef): string {
  const { kind, element } = kindOf(d.type);
  if (kind === "number") return "n";
  if (kind === "enum") return ((d.type as unknown as { options?: string[] }).options ?? []).join("|") || "value";
  if (kind === "array") return element && kindOf(element).kind === "number" ? "n,n" : "a,b";
  return "value";
}

/** A config file: a JSON object of keys (its "description", if any, is documentation, not a key). */
export function readConfigFile(file: string): Record<string, unknown> {
  const raw = readJsonFile(file, "config file");
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new UserError("E_BAD_CONFIG", `${file}: a config is a JSON object`);
  const { description: _d, ...rest } = raw as Record<string, unknown>;
  return rest;
}
