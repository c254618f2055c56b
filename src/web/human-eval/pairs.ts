/**
 * The pairs file of a human evaluation: JSONL, one comparison per line,
 *   {"id": "...", "prompt": "...", "a": {"system": "...", "response": "..."}, "b": {"system": "...", "response": "..."}}
 * Read strictly: a line that does not have exactly this shape is a user error naming the line.
 */
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../../util/errors.ts";

export interface Side {
  system: string; // which model produced it (hidden from raters)
  response: string;
}

export interface Pair {
  id: string;
  prompt: string;
  a: Side;
  b: Side;
}

const MAX_ID = 200;

export function pairLine(p: Pair): string {
  return JSON.stringify({
    id: p.id,
    prompt: p.prompt,
    a: { system: p.a.system, response: p.a.response },
    b: { system: p.b.system, response: p.b.response },
  });
}

export function parsePair(rec: unknown, where: string): Pair {
  const fail = (what: string): never => {
    throw new UserError(
      "E_BAD_PAIRS",
      `${where}: ${what}`,
      'each line is {"id", "prompt", "a": {"system", "response"}, "b": {"system", "response"}} (colloquy human-eval make-pairs writes them)',
    );
  };
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) return fail("not a JSON object");
  const r = rec as Record<string, unknown>;
  const extra = Object.keys(r).filter((k) => !["id", "prompt", "a", "b"].includes(k));
  if (extra.length) fail(`unknown field ${JSON.stringify(extra[0])}`);
  if (typeof r.id !== "string" || r.id === "" || r.id.length > MAX_ID)
    fail(`"id" must be a non-empty string of at most ${MAX_ID} characters`);
  if (typeof r.prompt !== "string") fail('"prompt" must be a string');
  const side = (k: "a" | "b"): Side => {
    const s = r[k] as Record<string, unknown> | undefined;
    if (typeof s !== "object" || s === null || Array.isArray(s)) return fail(`"${k}" must be an object {"system", "response"}`);
    if (typeof s.system !== "string" || s.system === "") fail(`"${k}.system" must be a non-empty string`);
    if (typeof s.response !== "string") fail(`"${k}.response" must be a string`);
    return { system: s.system as string, response: s.response as string };
  };
  const a = side("a"),
    b = side("b");
  if (a.system === b.system) fail(`"a" and "b" come from the same system "${a.system}"; a comparison needs two`);
  return { id: r.id as string, prompt: r.prompt as string, a, b };
}

export function readPairs(file: string): Pair[] {
  if (!fs.existsSync(file))
    throw new UserError("E_NOT_FOUND", `pairs file not found: ${file}`, "colloquy human-eval make-pairs writes one");
  const pairs: Pair[] = [];
  const seen = new Set<string>();
  const lines = fs.readFileSync(file, "utf8").split(/\r?\n/);
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${path.basename(file)} line ${i + 1}`;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new UserError("E_BAD_PAIRS", `${where} is not valid JSON: ${(e as Error).message}`);
    }
    const p = parsePair(rec, where);
    if (seen.has(p.id)) throw new UserError("E_BAD_PAIRS", `${where}: id "${p.id}" appears twice`, "each comparison needs its own id");
    seen.add(p.id);
    pairs.push(p);
  });
  if (pairs.length === 0) throw new UserError("E_BAD_PAIRS", `pairs file ${file} holds no comparisons`);
  return pairs;
}
