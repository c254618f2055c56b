/**
 * Returns and advantages over the rounds of each (episode, agent) trajectory, and the baselines of REINFORCE:
 *   none      A = G
 *   moving    A = G − b, b an exponential moving average of past returns (per adapter, kept across iterations)
 *   batch     A = G − mean of the batch (per adapter)
 *   rloo      A = G − mean of the other replicas of the same world, agent and round (leave-one-out)
 *   group     A = (G − mean) / std over the replicas (GRPO / the Markovian paper)
 * A2C uses the TD error r + γV' − V; PPO uses GAE(γ, λ); both whiten their advantages per adapter by default.
 */
import type { Sample } from "./sample.ts";

function trajectories(samples: readonly Sample[]): Sample[][] {
  const by = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = `${s.episode}/${s.agent}`;
    if (!by.has(key)) by.set(key, []);
    by.get(key)!.push(s);
  }
  return [...by.values()].map((t) => t.sort((a, b) => a.round - b.round));
}

/** G_t = r_t + γ G_{t+1}, within each trajectory. */
export function discountedReturns(samples: readonly Sample[], gamma: number): void {
  for (const traj of trajectories(samples)) {
    let g = 0;
    for (let k = traj.length - 1; k >= 0; k--) {
      g = traj[k].reward + gamma * g;
      traj[k].ret = g;
    }
  }
}

export interface BaselineState {
  moving: Record<string, number>; // per adapter
}

export function reinforceAdvantages(samples: readonly Sample[], kind: string, state: BaselineState, momentum: number): void {
  const groupKey = (s: Sample) => `${s.world}/${s.agent}/${s.round}`;
  if (kind === "none") for (const s of samples) s.advantage = s.ret;
  else if (kind === "moving") {
    const byAdapter = groupBy(samples, (s) => s.adapter);
    for (const [adapter, list] of byAdapter) {
      const b = state.moving[adapter] ?? 0;
      for (const s of list) s.advantage = s.ret - b;
      const m = mean(list.map((s) => s.ret));
      state.moving[adapter] = adapter in state.moving ? momentum * b + (1 - momentum) * m : m;
    }
  } else if (kind === "batch") {
    for (const list of groupBy(samples, (s) => s.adapter).values()) {
      const m = mean(list.map((s) => s.ret));
      for (const s of list) s.advantage = s.ret - m;
    }
  } else {
    for (const list of groupBy(samples, groupKey).values()) {
      const n = list.length;
      const sum = list.reduce((a, s) => a + s.ret, 0);
      if (kind === "rloo") {
        for (const s of list) s.advantage = n > 1 ? s.ret - (sum - s.ret) / (n - 1) : 0;
      } else {
        const m = sum / n;
        const sd = Math.sqrt(list.reduce((a, s) => a + (s.ret - m) ** 2, 0) / n);
        for (const s of list) s.advantage = n > 1 ? (s.ret - m) / (sd + 1e-6) : 0;
      }
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

export function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    if (!m.has(k)) m.set(k, []);
    m.get(k)!.push(it);
  }
  return m;
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}
