/** The registry of text sources: name → factory. */
import { UserError } from "../../util/errors.ts";
import { CorpusSource } from "./corpus.ts";
import { defaultCorpusFiles } from "./documents.ts";
import { FactsSource } from "./facts/index.ts";
import type { TextSource } from "./source.ts";
import { SplitSource } from "./split.ts";

export interface SourceOptions {
  seed?: number;
  files?: string[]; // split / corpus: text or JSONL files (split defaults to the State of the Union corpus)
  field?: string;
  chunkChars?: number;
}

export const SOURCES: Record<string, (o: SourceOptions) => TextSource> = {
  facts: (o) => new FactsSource(o.seed ?? 0),
  split: (o) => new SplitSource({ ...o, files: o.files?.length ? o.files : defaultCorpusFiles() }),
  corpus: (o) => {
    if (!o.files?.length) throw new UserError("E_BAD_CONFIG", "the corpus source needs files", "pass --files a.txt,b.jsonl");
    return new CorpusSource({ ...o, files: o.files });
  },
};

export function makeSource(name: string, o: SourceOptions = {}): TextSource {
  const make = SOURCES[name];
  if (!make) throw new UserError("E_BAD_CONFIG", `unknown text source "${name}"`, `choose one of ${Object.keys(SOURCES).join(", ")}`);
  return make(o);
}
