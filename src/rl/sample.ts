/**
 * One RL sample: what a learner wrote in one round of one episode, the reward it got, and everything the
 * algorithms attach to it (returns, advantages, values, the base policy's log-probs for KL).
 */
export interface Sample {
  adapter: string; // the adapter that produced it and is trained on it
  episode: number; // index in the iteration's batch
  world: number; // episodes with the same world index are replicas (group baselines)
  agent: number;
  round: number; // 1-based
  promptIds: number[];
  completionIds: number[];
  behaviourLogprobs: number[]; // log π_old(a) of each completion token at the sampling temperature
  reward: number; // the environment's reward for this round
  messageStart: number; // index in completionIds of the token that ends the state line (it and the message lines after it take the message advantage; the length when none)
  messageReward: number; // the part of the reward the messages can change: their credit, the violation penalty, their KL
  excerpt: string; // the excerpt the agent read (supervised term)
  refLogprobs: number[] | null; // log π_base(a), adapter off, at the sampling temperature
  kl: number; // KL estimate per completion token (the mean over its tokens)
  hidden: Float32Array | null; // the prompt's last hidden state (value head input)
  value: number; // V(prompt) (0 without a value head)
  ret: number; // return used as the target
  advantage: number;
  messageRet: number; // REINFORCE with splitAdvantage: what the message tokens can still change (messageReward + γ G_{t+1})
  messageAdvantage: number; // its advantage, for the message tokens
}
