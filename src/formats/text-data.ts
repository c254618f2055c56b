/**
 * Text data for language-model training: plain text files (one document) and JSONL files (one document per line,
 * from a text field), optionally gzipped.
 */
import fs from "node:fs";
import zlib from "node:zlib";
import { UserError } from "../util/errors.ts";
import { requireFile } from "../util/fs.ts";
import type { Tokenizer } from "./tokenizer.ts";

export function readTextFile(file: string): string {
  requireFile(file, "data file");
  const raw = fs.readFileSync(file);
  return (file.endsWith(".gz") ? zlib.gunzipSync(raw) : raw).toString("utf8");
}

/** Documents of a .txt (the whole file) or .jsonl (field `field` of each line) file. */
export function readDocuments(file: string, field = "text"): string[] {
  const text = readTextFile(file);
  if (!/\.jsonl(\.gz)?$/.test(file)) return text.length ? [text] : [];
  const docs: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new UserError("E_BAD_JSONL", `${file}:${i + 1}: not valid JSON`);
    }
    const value = (obj as Record<string, unknown>)?.[field];
    if (typeof value !== "string")
      throw new UserError("E_BAD_JSONL", `${file}:${i + 1}: no string field "${field}"`, "choose the field with --text-field");
    docs.push(value);
  });
  return docs;
}

/** Each document's ids, with the tokenizer's BOS first and EOS last when it has them. */
export function tokenDocuments(tok: Tokenizer, docs: readonly string[]): Int32Array[] {
  return docs.map((d) => {
    const ids = tok.encode(d, { addSpecial: false });
    if (tok.bosId !== null) ids.unshift(tok.bosId);
    if (tok.eosId !== null) ids.push(tok.eosId);
    return Int32Array.from(ids);
  });
}

/** One token stream: the documents of tokenDocuments end to end. */
export function tokenStream(tok: Tokenizer, docs: readonly string[]): Int32Array {
  const parts = tokenDocuments(tok, docs);
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
