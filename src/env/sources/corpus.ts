/**
 * The `corpus` source: independent streams per agent — each agent reads T+1 consecutive chunks of its own
 * document (the proposal's "random text excerpt"). With one file per agent, agent i reads file i; with fewer files,
 * every agent draws from all of them.
 */
import { UserError } from "../../util/errors.ts";
import { Rng } from "../../util/rng.ts";
import { chunk, documentsOf, firstSentence, loadDocuments } from "./documents.ts";
import type { CorpusOptions } from "./split.ts";
import type { EpisodeText, Split, TextSource } from "./source.ts";

export class CorpusSource implements TextSource {
  readonly name = "corpus";
  private readonly perAgent: string[][] | null;
  private readonly shared: string[];
  private readonly chunkChars: number;
  private readonly seed: number;

  constructor(o: CorpusOptions) {
    this.shared = loadDocuments(o.files, o.field);
    this.perAgent = o.files.length > 1 ? o.files.map((f) => loadDocuments([f], o.field)) : null;
    this.chunkChars = o.chunkChars ?? 240;
    this.seed = o.seed ?? 0;
  }

  episode(split: Split, index: number, agents: number, rounds: number): EpisodeText {
    if (this.perAgent && this.perAgent.length !== agents) {
      throw new UserError(
        "E_BAD_CONFIG",
        `the corpus source has ${this.perAgent.length} files for ${agents} agents`,
        "give one file per agent, or a single file for all",
      );
    }
    const rng = new Rng(`corpus/${this.seed}/${split}/${index}`);
    const streams = Array.from({ length: agents }, (_, i) => {
      const pool = documentsOf(this.perAgent ? this.perAgent[i] : this.shared, split)
        .map((d) => chunk(d, this.chunkChars))
        .filter((c) => c.length > rounds);
      if (pool.length === 0) throw new UserError("E_BAD_DATA", `agent ${i}: no ${split} document has ${rounds + 1} chunks`);
      const chunks = rng.pick(pool);
      const start = rng.int(chunks.length - rounds);
      return chunks.slice(start, start + rounds + 1);
    });
    return {
      streams,
      oracle: streams.map((s) => s.map(() => null)),
      truths: streams.map((s) => s.map((c) => [firstSentence(c)])),
      lies: streams.map((s, i) => s.map(() => [firstSentence(rng.pick(streams[(i + 1) % agents]))])),
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
