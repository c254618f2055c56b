/**
 * The records a run writes and its readers rely on: one metrics line per iteration (metrics.jsonl, fixed fields;
 * iteration 0 holds the evaluation before training) and a validation evaluation.
 */

export interface Evaluation {
  learner_gain: number; // mean information gain of the learners, nats per token
  oracle_gain: number | null;
  information_gain: number[]; // per agent
  episode_gain: number[]; // the learners' mean gain in each validation episode (the same episodes every time)
}

export interface MetricsLine {
  iteration: number;
  reward: number | null; // mean reward of the learners' samples
  information_gain: number[] | null; // per agent
  learner_gain: number | null;
  oracle_gain: number | null;
  kl: number | null; // per completion token, to the base policy
  kl_coef: number;
  entropy: number | null; // per completion token
  grad_norm: number | null;
  state_tokens: number | null; // learners' mean state length
  messages: number | null; // messages sent per learner per round
  violations: number[] | null; // protocol violations per agent
  honesty: (number | null)[] | null; // share of true claims per sender
  talk: number[][] | null; // delivered messages, [sender][recipient]
  message_value: (number | null)[][] | null; // mean value, [sender][recipient]
  clip_fraction: number | null;
  value_loss: number | null;
  tokens_per_s: number | null; // sampled tokens per second of the iteration
  time_generate: number | null;
  time_score: number | null;
  time_train: number | null;
  val_information_gain: number | null;
  val_information_gain_no_messages: number | null;
  val_oracle_gain: number | null;
}

/** A line with every field null but the iteration and β (the initial evaluation's line fills its validation fields). */
export function emptyLine(iteration: number, beta: number): MetricsLine {
  return {
    iteration,
    reward: null,
    information_gain: null,
    learner_gain: null,
    oracle_gain: null,
    kl: null,
    kl_coef: beta,
    entropy: null,
    grad_norm: null,
    state_tokens: null,
    messages: null,
    violations: null,
    honesty: null,
    talk: null,
    message_value: null,
    clip_fraction: null,
    value_loss: null,
    tokens_per_s: null,
    time_generate: null,
    time_score: null,
    time_train: null,
    val_information_gain: null,
    val_information_gain_no_messages: null,
    val_oracle_gain: null,
  };
}
