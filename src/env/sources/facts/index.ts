/**
 * The `facts` source: a generated world narrated in simple English, where information is split among agents and
 * later excerpts depend on facts only other agents saw. It knows the truth, so it gives oracle states (every fact
 * an excerpt depends on) and checks the claims in messages. Episode k of a split uses world seed
 * (seed, split, k): the three splits never share a world.
 */
import { Rng } from "../../../util/rng.ts";
import type { ChannelCheck, ClaimCheck, EpisodeText, Split, TextSource } from "../source.ts";
import { RELATIONS } from "./vocab.ts";
import { type Fact, type FactsWorld, factKey, makeWorld, statement, swapValue } from "./world.ts";

/** The checkable claims of a text about this world: the fact's key and whether the value stated is its value. */
function claimsOf(world: FactsWorld, text: string): { key: string; true: boolean }[] {
  const out: { key: string; true: boolean }[] = [];
  for (const sentence of text.match(/[^.?!]+[.?!]/g) ?? []) {
    for (let ri = 0; ri < RELATIONS.length; ri++) {
      const m = RELATIONS[ri].parse.exec(sentence.trim());
      if (!m) continue;
      const truth = world.values.get(factKey(m[1], ri));
      if (truth === undefined || !RELATIONS[ri].values.includes(m[2])) continue; // not about this world
      out.push({ key: factKey(m[1], ri), true: truth === m[2] });
      break;
    }
  }
  return out;
}

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
    const out = { claims: 0, true: 0, false: 0 };
    for (const c of claimsOf(episode.world as FactsWorld, message)) {
      out.claims++;
      if (c.true) out.true++;
      else out.false++;
    }
    return out;
  }

  checkChannel(
    episode: EpisodeText,
    agent: number,
    next: number,
    inbox: readonly string[],
    state: string,
    sent: readonly string[],
  ): ChannelCheck {
    const world = episode.world as FactsWorld;
    const claimed = (texts: readonly string[], truth: boolean) =>
      new Set(
        texts.flatMap((t) =>
          claimsOf(world, t)
            .filter((c) => c.true === truth)
            .map((c) => c.key),
        ),
      );
    const trueIn = (texts: readonly string[]) => claimed(texts, true);
    const key = (f: Fact) => factKey(f.person, f.relation);
    const own = new Set(world.revealed[agent].slice(0, next).flat().map(key));
    const needed = (world.restated[agent][next] ?? []).map(key).filter((k) => !own.has(k));
    const inInbox = trueIn(inbox),
      inState = trueIn([state]),
      falseInState = claimed([state], false),
      inSent = trueIn(sent);
    const delivered = needed.filter((k) => inInbox.has(k));
    const wanted = new Set(world.restated.flatMap((perExcerpt, j) => (j === agent ? [] : (perExcerpt[next + 1] ?? []).map(key))));
    const news = (world.revealed[agent][next - 1] ?? []).map(key).filter((k) => wanted.has(k));
    return {
      needed: needed.length,
      delivered: delivered.length,
      kept: delivered.filter((k) => inState.has(k)).length,
      garbled: delivered.filter((k) => !inState.has(k) && falseInState.has(k)).length,
      news: news.length,
      passed: news.filter((k) => inSent.has(k)).length,
    };
  }

  sampleDocuments(split: Split, count: number): string[] {
    return Array.from({ length: count }, (_, k) => {
      const ep = this.episode(split, 1_000_000 + k, 3, 3);
      return ep.streams.map((s) => s.join(" ")).join("\n");
    });
  }
}
