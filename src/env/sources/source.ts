/**
 * Text sources: where each agent's stream of excerpts comes from. A source makes whole episodes (K streams of
 * T+1 excerpts) deterministically from (split, episode index), with train / validation / test drawn from disjoint
 * documents or world seeds. Sources that know the truth (the facts world) also give oracle states and check the
 * factual claims in messages.
 */
export type Split = "train" | "val" | "test";
export const SPLITS: readonly Split[] = ["train", "val", "test"];

export interface EpisodeText {
  /** streams[i][t]: excerpt c_{t+1} of agent i, t = 0..T (T+1 excerpts for T rounds). */
  streams: string[][];
  /**
   * oracle[i][t]: the best state an agent could hold when predicting streams[i][t] (t ≥ 1): every fact that
   * excerpt depends on. null where the source cannot say.
   */
  oracle: (string | null)[][];
  /** truths[i][t]: true statements agent i learned from excerpt t, as an honest agent would send them. */
  truths: string[][][];
  /** lies[i][t]: plausible but false versions of truths[i][t], as a liar would send them. */
  lies: string[][][];
  /** Opaque handle the source uses to check claims (the world of a facts episode). */
  world: unknown;
}

export interface ClaimCheck {
  claims: number; // statements recognised as checkable claims
  true: number;
  false: number;
}

/**
 * What one round did with the facts that only messages can carry (sources that know the world). `next` is the
 * excerpt the round's state predicts; facts count when stated truly (claims checked against the world).
 */
export interface ChannelCheck {
  needed: number; // facts excerpt `next` restates that only another agent has read
  delivered: number; // of those, stated truly in a message of the inbox
  kept: number; // of those delivered, stated truly in the state
  garbled: number; // of those delivered, stated in the state with a wrong value (a copy that got the value wrong)
  news: number; // facts the agent read for the first time this round that another agent's excerpt `next + 1` restates
  passed: number; // of those, stated truly in the agent's messages of this round
}

export interface TextSource {
  readonly name: string;
  /** Episode `index` of `split` for `agents` agents and `rounds` rounds. Same arguments, same text. */
  episode(split: Split, index: number, agents: number, rounds: number): EpisodeText;
  /** Checks the factual claims of a message against the episode's world (sources without a world: null). */
  checkClaims(episode: EpisodeText, message: string): ClaimCheck | null;
  /** The round's use of the channel (sources without a world: null); `inbox` and `sent` are message texts. */
  checkChannel(
    episode: EpisodeText,
    agent: number,
    next: number,
    inbox: readonly string[],
    state: string,
    sent: readonly string[],
  ): ChannelCheck | null;
  /** Documents of the source's language, for pretraining a base model on it (facts world: generated). */
  sampleDocuments?(split: Split, count: number): string[];
}
