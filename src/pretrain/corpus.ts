/**
 * The text the default base model is pretrained on (SYSTEM.md, "Making learning visible on a small model"):
 *   - the facts world narrated (agents' streams),
 *   - agent transcripts in the protocol's format whose states and messages are well-formed but mostly
 *     uninformative (empty, random statements about the world, copies of a sentence of the excerpt), with a
 *     share of useful ones (a fact from the excerpt or the inbox; a fifth of the states keep what the next
 *     excerpt is about, and three senders in five tell their news), so that RL has something to
 *     reinforce and has to learn *what* to write and *whom* to tell, not *how* to write it,
 *   - scorer texts (STATE / INBOX / NEXT) whose states and inboxes usually hold the facts the next excerpt
 *     restates, so that the frozen base model reads a state the way the reward assumes,
 *   - a share of plain English prose (the State of the Union addresses), for the `split` source.
 * Worlds come from the facts source's training split only.
 */
import type { Rng } from "../util/rng.ts";
import { agentPrompt, renderCompletion, renderInbox, systemPrompt, type InboxEntry } from "../env/prompt.ts";
import { chunk, defaultCorpusFiles, documentsOf, loadDocuments } from "../env/sources/documents.ts";
import { FactsSource } from "../env/sources/facts/index.ts";
import { NAMES, RELATIONS } from "../env/sources/facts/vocab.ts";
import { type FactsWorld, factKey, statement } from "../env/sources/facts/world.ts";
import type { EpisodeText, Split } from "../env/sources/source.ts";

export interface CorpusMix {
  episodes: number; // facts-world episodes drawn
  copyTexts: number; // random word sequences said twice: the plain copying that attention must learn first
  transcriptsPerEpisode: number;
  scorerTextsPerEpisode: number;
  proseChunks: number; // chunks of State of the Union text
}

// Shares of the prior's transcripts written by a listener that keeps what its next excerpt is about, and by a
// sender that tells its news. Without them (a prior that only copied whole spans or random sentences) the trained
// listeners kept 7–16% of the facts delivered to them and the senders fell silent; with news in only 30% of the
// transcripts, the senders garbled half of what they told after their first round. The measurements are in the
// README, "How communication came to pay".
const ATTENTIVE_STATES = 0.2;
const NEWS_MESSAGES = 0.6;

function randomStatement(rng: Rng): string {
  const r = rng.pick(RELATIONS);
  return r.state(rng.pick(NAMES), rng.pick(r.values));
}

function sentencesOf(text: string): string[] {
  return text.match(/[^.?!]+[.?!]/g)?.map((s) => s.trim()) ?? [text];
}

/**
 * A state as an untrained policy might write it (well-formed, mostly useless): empty, a copy of the excerpt, a copy
 * of the whole inbox, or up to three items, each most often a sentence copied from the excerpt (a new fact, a
 * restatement, filler or the "Next:" line) or a message from the inbox, rarely a random statement about the world;
 * and a share of attentive states (below). Some hold what the next excerpt needs: RL can reinforce those, and it
 * can only find them if copying is what the prior does. Random statements stay rare: every one teaches the model
 * to write a name or a value it was not shown, and a prior that garbles its copies gives RL nothing to reinforce.
 * Whole copies (of the excerpt, of the inbox) are spans the model copies faithfully; picking one sentence out by
 * its name is what the attentive states teach.
 */
function priorState(rng: Rng, excerpt: string, inbox: readonly InboxEntry[]): string {
  const u = rng.float();
  if (u < ATTENTIVE_STATES) return attentiveState(excerpt, inbox);
  if (u < ATTENTIVE_STATES + 0.12) return "";
  if (u < ATTENTIVE_STATES + 0.2) return excerpt;
  if (u < ATTENTIVE_STATES + 0.4 && inbox.length) return inbox.map((m) => m.text).join(" ");
  return Array.from({ length: 1 + rng.int(3) }, () => {
    const v = rng.float();
    if (v < 0.05) return randomStatement(rng);
    if (v < 0.45 && inbox.length) return rng.pick(inbox).text;
    return rng.pick(sentencesOf(excerpt));
  }).join(" ");
}

/**
 * The state of a listener that keeps what its next excerpt is about: for each item of the excerpt's "Next:" line
 * ("Ben's place"), the first statement about that person and relation in the excerpt or the inbox, copied
 * verbatim whatever its value (a faithful copier: whom to believe is RL's to learn).
 */
function attentiveState(excerpt: string, inbox: readonly InboxEntry[]): string {
  const items = /Next: (.*)\.$/.exec(excerpt)?.[1].split(", ") ?? [];
  const sentences = [...sentencesOf(excerpt), ...inbox.flatMap((m) => sentencesOf(m.text))];
  const kept = items.flatMap((item) => {
    const [person, noun] = item.split("'s ");
    const relation = RELATIONS.find((r) => r.name === noun);
    const found = sentences.find((s) => relation?.parse.exec(s)?.[1] === person);
    return found ? [found] : [];
  });
  return [...new Set(kept)].join(" ");
}

function priorMessages(
  rng: Rng,
  self: number,
  agents: number,
  excerpt: string,
  news: readonly string[],
): { from: number; to: number | "*"; text: string }[] {
  const others = Array.from({ length: agents }, (_, j) => j).filter((j) => j !== self);
  const to = () => (rng.float() < 0.5 ? ("*" as const) : rng.pick(others));
  // a sender that tells what it read first: its excerpt's new facts
  if (news.length && rng.float() < NEWS_MESSAGES) return news.slice(0, 2).map((text) => ({ from: self, to: to(), text }));
  return Array.from({ length: rng.int(3) }, () => ({
    from: self,
    to: to(),
    text: rng.float() < 0.05 ? randomStatement(rng) : rng.pick(sentencesOf(excerpt)),
  }));
}

function inboxFor(rng: Rng, ep: EpisodeText, self: number, t: number): InboxEntry[] {
  const out: InboxEntry[] = [];
  for (let j = 0; j < ep.streams.length; j++) {
    if (j === self || t === 0 || rng.float() < 0.4) continue;
    const pool = ep.truths[j][t - 1];
    const lies = ep.lies[j][t - 1];
    for (let k = 0; k < pool.length; k++) {
      const u = rng.float();
      out.push({ from: j, text: u < 0.7 ? pool[k] : u < 0.85 ? lies[k] : randomStatement(rng) });
    }
  }
  return out;
}

function transcript(rng: Rng, ep: EpisodeText): string {
  const K = ep.streams.length,
    T = ep.streams[0].length - 1;
  const i = rng.int(K),
    t = rng.int(T);
  const excerpt = ep.streams[i][t];
  const inbox = inboxFor(rng, ep, i, t);
  const memory = t === 0 ? "" : priorState(rng, ep.streams[i][t - 1], []);
  const prompt = agentPrompt(systemPrompt(rng.float() < 0.95 ? "short" : "proposal", i, K), memory, excerpt, inbox);
  return prompt + renderCompletion(priorState(rng, excerpt, inbox), priorMessages(rng, i, K, excerpt, ep.truths[i][t]));
}

function scorerText(rng: Rng, ep: EpisodeText): string {
  const K = ep.streams.length,
    T = ep.streams[0].length - 1;
  const i = rng.int(K),
    t = 1 + rng.int(T);
  const oracle = sentencesOf(ep.oracle[i][t] ?? "");
  const u = rng.float();
  const facts = u < 0.55 ? oracle : u < 0.75 ? oracle.filter(() => rng.float() < 0.5) : u < 0.9 ? [randomStatement(rng)] : [];
  // true facts the next excerpt does not need: the model must match person and relation, not copy any value
  const shuffled = rng.shuffle([...facts, ...distractors(rng, ep.world as FactsWorld, i, t, rng.int(4))]);
  // the scorer's window: the end of the excerpt before (up to about 32 tokens), or nothing (window 0)
  const context = rng.float() < 0.8 ? `CONTEXT:${tail(ep.streams[i].slice(0, t).join(" "), 130)}\n` : "";
  if (rng.float() < 0.5) {
    // the message-value form: most facts arrive in the inbox instead of the state
    const inState = shuffled.filter(() => rng.float() < 0.3);
    const inbox = shuffled
      .filter((s) => !inState.includes(s))
      .map((text) => ({ from: rng.pick([...Array(K).keys()].filter((j) => j !== i)), text }));
    return `${context}STATE: ${inState.join(" ")}\nINBOX:\n${renderInbox(inbox)}\nNEXT: ${ep.streams[i][t]}`;
  }
  return `${context}STATE: ${shuffled.join(" ")}\nNEXT: ${ep.streams[i][t]}`;
}

/** The last words of `text` within about `chars` characters, with their leading space (as the window's tokens). */
function tail(text: string, chars: number): string {
  const cut = text.slice(-chars);
  const space = cut.indexOf(" ");
  return space >= 0 ? cut.slice(space) : ` ${cut}`;
}

/** n true statements about the episode's people that excerpt t of agent i does not restate. */
function distractors(rng: Rng, w: FactsWorld, i: number, t: number, n: number): string[] {
  const needed = new Set(w.restated[i][t].map((f) => factKey(f.person, f.relation)));
  const out: string[] = [];
  for (let k = 0; k < 4 * n && out.length < n; k++) {
    const person = rng.pick(w.cast),
      relation = rng.int(RELATIONS.length);
    if (needed.has(factKey(person, relation))) continue;
    out.push(statement({ person, relation, value: w.values.get(factKey(person, relation))! }));
  }
  return out;
}

const COPY_WORDS = [
  ...NAMES,
  ...new Set(RELATIONS.flatMap((r) => r.values.flatMap((v) => v.split(" ")))),
  "is",
  "in",
  "the",
  "has",
  "a",
  "likes",
  "coins",
  "and",
  "then",
];

/** "REPEAT: w1 w2 … wn\nAGAIN: w1 w2 … wn": the second half is predictable only by copying the first. */
function copyText(rng: Rng): string {
  const words = Array.from({ length: 6 + rng.int(20) }, () => rng.pick(COPY_WORDS)).join(" ");
  return `REPEAT: ${words}\nAGAIN: ${words}`;
}

/** Documents for one split: facts-world texts of every kind, and prose chunks. */
export function pretrainDocuments(split: Split, mix: CorpusMix, rng: Rng): string[] {
  const source = new FactsSource(0);
  const docs: string[] = [];
  for (let e = 0; e < mix.episodes; e++) {
    const ep = source.episode(split, 2_000_000 + e, 2 + rng.int(3), 2 + rng.int(3));
    docs.push(ep.streams[rng.int(ep.streams.length)].join(" "));
    for (let k = 0; k < mix.transcriptsPerEpisode; k++) docs.push(transcript(rng, ep));
    for (let k = 0; k < mix.scorerTextsPerEpisode; k++) docs.push(scorerText(rng, ep));
  }
  for (let k = 0; k < mix.copyTexts; k++) docs.push(copyText(rng));
  if (mix.proseChunks > 0) {
    const chunks = documentsOf(loadDocuments(defaultCorpusFiles()), split).flatMap((d) => chunk(d, 600));
    for (let k = 0; k < mix.proseChunks && chunks.length; k++) docs.push(chunks[rng.int(chunks.length)]);
  }
  return rng.shuffle(docs);
}
