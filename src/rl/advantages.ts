/**
 * Returns and advantages over the rounds of each (episode, agent) trajectory, and the baselines of REINFORCE:
 *   none      A = G
 *   moving    A = G − b, b an exponential moving average of past returns (per adapter, kept across iterations)
 *   batch     A = G − mean of the batch (per adapter)
 *   rloo      A = G − mean of the other replicas of the same world, agent and round (leave-one-out)
 *   group     A = (G − mean) / std over the replicas (GRPO / the Markovian paper)
 * With splitAdvantage, REINFORCE also gives the message tokens an advantage of their own, of the return they can
 * still change: messageReward_t + γ G_{t+1}. The rest of r_t (the agent's and the team's gain this round) is fixed
 * by the state, written before the messages, and by the other agents, who see the messages only next round; leaving
 * it out of the message tokens' weight removes its variance without biasing the gradient (the reward-to-go argument).
 * A2C uses the TD error r + γV' − V; PPO uses GAE(γ, λ); both whiten their advantages per adapter by default.
 */
import { groupBy } from "../util/collections.ts";
import { mean } from "../util/stats.ts";
import type { Sample } from "./sample.ts";

function trajectories(samples: readonly Sample[]): Sample[][] {
  return [...groupBy(samples, (s) => `${s.episode}/${s.agent}`).values()].map((t) => t.sort((a, b) => a.round - b.round));
}

/** G_t = r_t + γ G_{t+1} and the message tokens' messageReward_t + γ G_{t+1}, within each trajectory. */
export function discountedReturns(samples: readonly Sample[], gamma: number): void {
  for (const traj of trajectories(samples)) {
    let g = 0;
    for (let k = traj.length - 1; k >= 0; k--) {
      traj[k].messageRet = traj[k].messageReward + gamma * g;
      g = traj[k].reward + gamma * g;
      traj[k].ret = g;
    }
  }
}

export interface BaselineState {
  moving: Record<string, number>; // per adapter
}

/** REINFORCE's advantages: of the whole return, and of the message tokens' return (their own baselines). */
export function reinforceAdvantages(samples: readonly Sample[], kind: string, state: BaselineState, momentum: number): void {
  baselined(
    samples,
    (s) => s.ret,
    (s, a) => (s.advantage = a),
    kind,
    state,
    "",
    momentum,
  );
  baselined(
    samples,
    (s) => s.messageRet,
    (s, a) => (s.messageAdvantage = a),
    kind,
    state,
    "/messages",
    momentum,
  );
}

/** set(s, G − b) for every sample, b the chosen baseline of the return `ret`; moving averages are kept under adapter + suffix. */
function baselined(
  samples: readonly Sample[],
  ret: (s: Sample) => number,
  set: (s: Sample, advantage: number) => void,
  kind: string,
  state: BaselineState,
  suffix: string,
  momentum: number,
): void {
  if (kind === "none") for (const s of samples) set(s, ret(s));
  else if (kind === "moving") {
    for (const [adapter, list] of groupBy(samples, (s) => s.adapter + suffix)) {
      const b = state.moving[adapter] ?? 0;
      for (const s of list) set(s, ret(s) - b);
      const m = mean(list.map(ret));
      state.moving[adapter] = adapter in state.moving ? momentum * b + (1 - momentum) * m : m;
    }
  } else if (kind === "batch") {
    for (const list of groupBy(samples, (s) => s.adapter).values()) {
      const m = mean(list.map(ret));
      for (const s of list) set(s, ret(s) - m);
    }
  } else {
    for (const list of groupBy(samples, (s) => `${s.world}/${s.agent}/${s.round}`).values()) {
      const n = list.length;
      const sum = list.reduce((a, s) => a + ret(s), 0);
      const sd = kind === "group" ? Math.sqrt(list.reduce((a, s) => a + (ret(s) - sum / n) ** 2, 0) / n) : 0;
      for (const s of list) set(s, n < 2 ? 0 : kind === "rloo" ? ret(s) - (sum - ret(s)) / (n - 1) : (ret(s) - sum / n) / (sd + 1e-6));
    }
  }
}

/** A2C: δ_t = r_t + γ V(s_{t+1}) − V(s_t), with V = 0 after the last round; target r_t + γV(s_{t+1}). */
export function tdAdvantages(samples: readonly Sample[], gamma: number): void {
  for (const traj of trajectories(samples)) {
    traj.forEach((s, k) => {
      const next = k + 1 < traj.length ? traj[k + 1].value : 0;
      s.ret = s.reward + gamma * next;
      s.advantage = s.ret - s.value;
    });
  }
}

/** PPO: generalised advantage estimation across rounds; the value target is A + V. */
export function gaeAdvantages(samples: readonly Sample[], gamma: number, lambda: number): void {
  for (const traj of trajectories(samples)) {
    let gae = 0;
    for (let k = traj.length - 1; k >= 0; k--) {
      const next = k + 1 < traj.length ? traj[k + 1].value : 0;
      const delta = traj[k].reward + gamma * next - traj[k].value;
      gae = delta + gamma * lambda * gae;
      traj[k].advantage = gae;
      traj[k].ret = gae + traj[k].value;
    }
  }
}

/** A ← (A − mean) / std per adapter over the batch (as PPO implementations do); value targets are left alone. */
export function whitenAdvantages(samples: readonly Sample[]): void {
  for (const list of groupBy(samples, (s) => s.adapter).values()) {
    const m = mean(list.map((s) => s.advantage));
    const sd = Math.sqrt(mean(list.map((s) => (s.advantage - m) ** 2)));
    for (const s of list) s.advantage = list.length > 1 ? (s.advantage - m) / (sd + 1e-8) : 0;
  }
}

// re-exported for the modules that still import them from here (algorithms.ts, trainer.ts)
