/**
 * The `facts` source: a generated world narrated in simple English, where information is split among agents and
 * later excerpts depend on facts only other agents saw. It knows the truth, so it gives oracle states (every fact
 * an excerpt depends on) and checks the claims in messages. Episode k of a split uses world seed
 * (seed, split, k): the three splits never share a world.
 */
import { Rng } from "../../../util/rng.ts";
import type { ClaimCheck, EpisodeText, Split, TextSource } from "../source.ts";
import { RELATIONS } from "./vocab.ts";
import { type FactsWorld, factKey, makeWorld, statement, swapValue } from "./world.ts";

export class FactsSource implements TextSource {
  readonly name = "facts";
  private readonly seed: number;

  constructor(seed = 0) {
    this.seed = seed;
  }

  episode(split: Split, index: number, agents: number, rounds: number): EpisodeText {
    const rng = new Rng(`facts/${this.seed}/${split}/${index}`);
    const world = makeWorld(rng, agents, rounds);
    const lieRng = rng.fork("lies");
    return {
      streams: world.excerpts,
      oracle: world.restated.map((perExcerpt) => perExcerpt.map((facts, t) => (t === 0 ? null : facts.map(statement).join(" ")))),
      truths: world.revealed.map((perExcerpt) => perExcerpt.map((facts) => facts.map(statement))),
      lies: world.revealed.map((perExcerpt) => perExcerpt.map((facts) => facts.map((f) => statement(swapValue(f, lieRng))))),
      world,
    };
  }

  checkClaims(episode: EpisodeText, message: string): ClaimCheck {
    const world = episode.world as FactsWorld;
    const out = { claims: 0, true: 0, false: 0 };
    for (const sentence of message.match(/[^.?!]+[.?!]/g) ?? []) {
      for (let ri = 0; ri < RELATIONS.length; ri++) {
        const m = RELATIONS[ri].parse.exec(sentence.trim());
        if (!m) continue;
        const truth = world.values.get(factKey(m[1], ri));
        if (truth === undefined || !RELATIONS[ri].values.includes(m[2])) continue; // not about this world
        out.claims++;
        if (truth === m[2]) out.true++;
        else out.false++;
        break;
      }
    }
    return out;
  }

  sampleDocuments(split: Split, count: number): string[] {
    return Array.from({ length: count }, (_, k) => {
      const ep = this.episode(split, 1_000_000 + k, 3, 3);
      return ep.streams.map((s) => s.join(" ")).join("\n");
    });
  }
}
