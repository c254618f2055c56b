/**
 * One episode of the facts world: a cast of people with an attribute value for every relation, and a schedule
 * of which agent learns which fact in which excerpt. Excerpt t of agent i states the facts it reveals to i
 * (new information), restates one fact that i saw one excerpt earlier (memory: the state must carry it) and up to
 * three facts that other agents saw two excerpts earlier (communication: what j read in excerpt t−2 it can send
 * in that round; i receives it in the next round, in time for the state that predicts excerpt t), plus a filler
 * sentence. Each excerpt ends with what the next one is about ("Next: Ben's place, Ana's pet."): a scorer that sees
 * the end of the current excerpt (window > 0) knows who and what comes next, so a state or a message can only
 * add the values — and a false value can only hurt.
 */
import type { Rng } from "../../../util/rng.ts";
import { FILLER, NAMES, RELATIONS, RESTATE } from "./vocab.ts";

export interface Fact {
  person: string;
  relation: number; // index into RELATIONS
  value: string;
}

export interface FactsWorld {
  cast: string[];
  values: Map<string, string>; // `${person}|${relation}` → value, for every person and relation
  revealed: Fact[][][]; // [agent][excerpt] facts stated for the first time to that agent in that excerpt
  restated: Fact[][][]; // [agent][excerpt] facts restated (the ones a state or message can predict)
  excerpts: string[][]; // [agent][excerpt] the narrated text
}

export const factKey = (person: string, relation: number) => `${person}|${relation}`;

/** At most this many facts of other agents are restated in one excerpt. */
const MAX_OTHERS = 3;

export function statement(f: Fact): string {
  return RELATIONS[f.relation].state(f.person, f.value);
}

export function makeWorld(rng: Rng, agents: number, rounds: number): FactsWorld {
  const excerptsPerAgent = rounds + 1;
  const cast = rng.shuffle([...NAMES]).slice(0, Math.min(NAMES.length, 2 * agents + 2));
  const values = new Map<string, string>();
  for (const person of cast) RELATIONS.forEach((r, ri) => values.set(factKey(person, ri), rng.pick(r.values)));

  // each agent learns one new fact per excerpt, never one another agent learns, and in its first excerpt a second
  // fact about the same person: two statements with different names in one excerpt are where a small model
  // confuses whose value is whose when it retells them
  const pool = rng.shuffle(
    cast.flatMap((person) => RELATIONS.map((_, ri) => ({ person, relation: ri, value: values.get(factKey(person, ri))! }))),
  );
  const revealed: Fact[][][] = Array.from({ length: agents }, () => Array.from({ length: excerptsPerAgent }, () => []));
  for (let t = 0; t < rounds; t++) {
    for (let i = 0; i < agents; i++) {
      const first = pool.pop();
      if (!first) continue;
      revealed[i][t].push(first);
      const second = t === 0 ? pool.findIndex((f) => f.person === first.person) : -1;
      if (second >= 0) revealed[i][t].push(...pool.splice(second, 1));
    }
  }

  const restated: Fact[][][] = Array.from({ length: agents }, () => Array.from({ length: excerptsPerAgent }, () => []));
  for (let i = 0; i < agents; i++) {
    for (let t = 1; t < excerptsPerAgent; t++) {
      const memory = revealed[i][t - 1];
      if (memory.length) restated[i][t].push(rng.pick(memory));
      // what the others learned two excerpts ago: exactly what their messages of last round can tell
      const others: Fact[] = [];
      if (t >= 2) for (let j = 0; j < agents; j++) if (j !== i) others.push(...revealed[j][t - 2]);
      restated[i][t].push(...rng.shuffle(others).slice(0, MAX_OTHERS));
    }
  }

  const excerpts: string[][] = Array.from({ length: agents }, (_, i) =>
    Array.from({ length: excerptsPerAgent }, (_, t) => {
      const sentences = rng.shuffle([
        ...revealed[i][t].map(statement),
        ...restated[i][t].map((f) => rng.pick(RESTATE)(RELATIONS[f.relation], f.person, f.value)),
        rng.pick(FILLER),
      ]);
      // the excerpt ends by saying whose facts the next one is about: who and what is no secret, the values are
      const next = t + 1 < excerptsPerAgent ? rng.shuffle([...restated[i][t + 1]]) : [];
      if (next.length) sentences.push(`Next: ${next.map((f) => `${f.person}'s ${RELATIONS[f.relation].name}`).join(", ")}.`);
      return sentences.join(" ");
    }),
  );
  return { cast, values, revealed, restated, excerpts };
}

/** The value `f` would have in a lie: another value of the same relation that shares none of its words. */
export function swapValue(f: Fact, rng: Rng): Fact {
  const words = new Set(f.value.split(" "));
  const others = RELATIONS[f.relation].values.filter((v) => v.split(" ").every((w) => !words.has(w)));
  return { ...f, value: rng.pick(others) };
}
