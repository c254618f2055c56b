/**
 * The `split` source: each episode takes one document and deals its chunks out to the agents in turn (agent i
 * gets chunks i, i+K, i+2K, ...), so that the agents read interleaved parts of one text. Honest messages are
 * a sentence of the agent's excerpt; lies are a sentence from another document.
 */
import { UserError } from "../../util/errors.ts";
import { Rng } from "../../util/rng.ts";
import { chunk, documentsOf, firstSentence, loadDocuments } from "./documents.ts";
import type { EpisodeText, Split, TextSource } from "./source.ts";

export interface CorpusOptions {
  files: string[];
  field?: string; // JSONL text field
  chunkChars?: number; // excerpt size (default 240 characters)
  seed?: number;
}

export class SplitSource implements TextSource {
  readonly name = "split";
  private readonly docs: string[];
  private readonly chunkChars: number;
  private readonly seed: number;

  constructor(o: CorpusOptions) {
    this.docs = loadDocuments(o.files, o.field);
    this.chunkChars = o.chunkChars ?? 240;
    this.seed = o.seed ?? 0;
  }

  episode(split: Split, index: number, agents: number, rounds: number): EpisodeText {
    const need = agents * (rounds + 1);
    const pool = documentsOf(this.docs, split)
      .map((d) => chunk(d, this.chunkChars))
      .filter((c) => c.length >= need);
    if (pool.length === 0) {
      throw new UserError(
        "E_BAD_DATA",
        `no ${split} document has ${need} chunks of ≤ ${this.chunkChars} characters`,
        "use fewer agents or rounds, smaller chunks, or longer documents",
      );
    }
    const rng = new Rng(`split/${this.seed}/${split}/${index}`);
    const chunks = pool[rng.int(pool.length)];
    const start = rng.int(chunks.length - need + 1);
    const streams = Array.from({ length: agents }, (_, i) => Array.from({ length: rounds + 1 }, (_, t) => chunks[start + t * agents + i]));
    const other = pool[(pool.indexOf(chunks) + 1) % pool.length];
    return {
      streams,
      oracle: streams.map((s) => s.map(() => null)),
      truths: streams.map((s) => s.map((c) => [firstSentence(c)])),
      lies: streams.map((s) => s.map(() => [firstSentence(rng.pick(other))])),
      world: null,
    };
  }

  checkChannel(): null {
    return null;
  }

  checkClaims(): null {
    return null;
  }
}
