/**
 * The statistics of a pairwise human evaluation: win, tie and loss rates with 95% Wilson intervals (from
 * src/eval/stats.ts) per pair of systems and per system, Bradley–Terry strengths by the MM algorithm (Hunter 2004)
 * when more than two systems were compared, and agreement between raters on the items that several of them rated:
 * Cohen's kappa for two raters, Fleiss' kappa (with the usual generalisation to unequal numbers of ratings per
 * item) for more. Ties count as half a win for each side in scores and in Bradley–Terry.
 */
import { type Rate, rate } from "../../eval/stats.ts";
import type { AnswerRow, Winner } from "./store.ts";

export interface PairResult {
  x: string; // the two systems, in name order
  y: string;
  n: number;
  x_wins: number;
  y_wins: number;
  ties: number;
  x_win_rate: Rate;
  y_win_rate: Rate;
  tie_rate: Rate;
  x_score: Rate; // (x wins + ties / 2) / n
}

export interface SystemResult {
  system: string;
  n: number;
  wins: number;
  losses: number;
  ties: number;
  score: Rate; // (wins + ties / 2) / n
}

export interface BradleyTerry {
  strengths: { system: string; strength: number; rank: number }[]; // strengths sum to 1; P(i beats j) = s_i / (s_i + s_j)
  iterations: number;
  converged: boolean;
  connected: boolean; // every system is linked to every other by comparisons (else strengths across parts are not comparable)
}

export interface Agreement {
  method: "cohen" | "fleiss" | null; // null: no item was rated by two raters
  kappa: number | null; // null when undefined (chance agreement is 1: every rating the same)
  observed: number | null; // agreement between two ratings of one item, averaged
  expected: number | null; // the same by chance
  items: number; // items rated by at least two raters
  raters: number; // raters on those items
  strength: string | null; // Landis & Koch's words for kappa
}

export interface HumanEvalResults {
  answers: number;
  raters: { name: string; answers: number }[];
  items_answered: number;
  systems: string[];
  pairs: PairResult[];
  per_system: SystemResult[];
  bradley_terry: BradleyTerry | null;
  agreement: Agreement;
  left_picked: Rate; // share of non-tie answers that picked the left response (position bias: 0.5 is none)
}

const CATEGORIES: readonly Winner[] = ["a", "b", "tie"];

export function summarizeAnswers(rows: readonly AnswerRow[]): HumanEvalResults {
  const systems = [...new Set(rows.flatMap((r) => [r.a_system, r.b_system]))].sort();
  const pairs = new Map<string, { x: string; y: string; xw: number; yw: number; t: number }>();
  const per = new Map(systems.map((s) => [s, { wins: 0, losses: 0, ties: 0 }]));
  for (const r of rows) {
    const [x, y] = r.a_system < r.b_system ? [r.a_system, r.b_system] : [r.b_system, r.a_system];
    const key = JSON.stringify([x, y]);
    const p = pairs.get(key) ?? { x, y, xw: 0, yw: 0, t: 0 };
    pairs.set(key, p);
    const winner = r.winner === "tie" ? null : r.winner === "a" ? r.a_system : r.b_system;
    if (winner === null) {
      p.t++;
      per.get(x)!.ties++;
      per.get(y)!.ties++;
    } else {
      if (winner === x) p.xw++;
      else p.yw++;
      per.get(winner)!.wins++;
      per.get(winner === x ? y : x)!.losses++;
    }
  }
  const pairResults: PairResult[] = [...pairs.values()].map((p) => {
    const n = p.xw + p.yw + p.t;
    return {
      x: p.x,
      y: p.y,
      n,
      x_wins: p.xw,
      y_wins: p.yw,
      ties: p.t,
      x_win_rate: rate(p.xw, n),
      y_win_rate: rate(p.yw, n),
      tie_rate: rate(p.t, n),
      x_score: rate(p.xw + p.t / 2, n),
    };
  });
  const perSystem: SystemResult[] = systems.map((s) => {
    const v = per.get(s)!;
    const n = v.wins + v.losses + v.ties;
    return { system: s, n, ...v, score: rate(v.wins + v.ties / 2, n) };
  });
  const decided = rows.filter((r) => r.choice !== "tie");
  const raterCounts = new Map<string, number>();
  for (const r of rows) raterCounts.set(r.rater, (raterCounts.get(r.rater) ?? 0) + 1);
  return {
    answers: rows.length,
    raters: [...raterCounts].map(([name, answers]) => ({ name, answers })).sort((a, b) => a.name.localeCompare(b.name)),
    items_answered: new Set(rows.map((r) => r.item_id)).size,
    systems,
    pairs: pairResults,
    per_system: perSystem,
    bradley_terry:
      systems.length > 2
        ? bradleyTerry(
            systems,
            pairResults.map((p) => ({ x: p.x, y: p.y, xWins: p.x_wins, yWins: p.y_wins, ties: p.ties })),
          )
        : null,
    agreement: agreement(rows),
    left_picked: rate(decided.filter((r) => r.choice === "left").length, decided.length),
  };
}

/**
 * Bradley–Terry strengths by minorization–maximization: s_i ← w_i / Σ_j n_ij / (s_i + s_j), then Σ s = 1, until no
 * strength moves by more than `tol`. w_i counts wins plus half the ties; n_ij all comparisons of i and j.
 */
export function bradleyTerry(
  systems: readonly string[],
  results: readonly { x: string; y: string; xWins: number; yWins: number; ties: number }[],
  o: { tol?: number; maxIterations?: number } = {},
): BradleyTerry {
  const tol = o.tol ?? 1e-10,
    maxIterations = o.maxIterations ?? 10000;
  const K = systems.length;
  const at = new Map(systems.map((s, i) => [s, i]));
  const n = Array.from({ length: K }, () => new Float64Array(K)); // (K, K) comparisons
  const w = new Float64Array(K); // (K) wins, ties as halves
  for (const r of results) {
    const i = at.get(r.x)!,
      j = at.get(r.y)!;
    const total = r.xWins + r.yWins + r.ties;
    n[i][j] += total;
    n[j][i] += total;
    w[i] += r.xWins + r.ties / 2;
    w[j] += r.yWins + r.ties / 2;
  }
  let s = new Float64Array(K).fill(1 / K);
  let iterations = 0,
    converged = false;
  while (iterations < maxIterations && !converged) {
    iterations++;
    const next = new Float64Array(K);
    for (let i = 0; i < K; i++) {
      let d = 0;
      for (let j = 0; j < K; j++) if (j !== i && n[i][j] > 0) d += n[i][j] / (s[i] + s[j]);
      next[i] = d > 0 ? w[i] / d : 0;
    }
    const sum = next.reduce((a, b) => a + b, 0);
    if (sum > 0) for (let i = 0; i < K; i++) next[i] /= sum;
    converged = next.every((v, i) => Math.abs(v - s[i]) <= tol);
    s = next;
  }
  const order = [...s.keys()].sort((a, b) => s[b] - s[a]);
  const rank = new Array<number>(K);
  order.forEach((i, k) => (rank[i] = k + 1));
  return {
    strengths: systems.map((system, i) => ({ system, strength: s[i], rank: rank[i] })),
    iterations,
    converged,
    connected: isConnected(n),
  };
}

function isConnected(n: Float64Array[]): boolean {
  const K = n.length;
  if (K === 0) return true;
  const seen = new Set([0]);
  const stack = [0];
  while (stack.length) {
    const i = stack.pop()!;
    for (let j = 0; j < K; j++)
      if (n[i][j] > 0 && !seen.has(j)) {
        seen.add(j);
        stack.push(j);
      }
  }
  return seen.size === K;
}

/** Cohen's kappa of two raters' labels of the same items: (p_o − p_e) / (1 − p_e); null when p_e = 1. */
export function cohenKappa(
  pairs: readonly [string, string][],
  categories: readonly string[] = CATEGORIES,
): { kappa: number | null; observed: number; expected: number } {
  const N = pairs.length;
  if (N === 0) return { kappa: null, observed: NaN, expected: NaN };
  const observed = pairs.filter(([a, b]) => a === b).length / N;
  let expected = 0;
  for (const k of categories) expected += (pairs.filter(([a]) => a === k).length / N) * (pairs.filter(([, b]) => b === k).length / N);
  return { kappa: expected >= 1 ? null : (observed - expected) / (1 - expected), observed, expected };
}

/**
 * Fleiss' kappa for items with n_i ≥ 2 ratings each (n_i may differ): P_i = (Σ_k n_ik² − n_i) / (n_i (n_i − 1)),
 * P̄ = mean P_i, p_k = Σ_i n_ik / Σ_i n_i, P_e = Σ_k p_k², kappa = (P̄ − P_e) / (1 − P_e); null when P_e = 1.
 */
export function fleissKappa(
  items: readonly (readonly string[])[],
  categories: readonly string[] = CATEGORIES,
): { kappa: number | null; observed: number; expected: number } {
  const rated = items.filter((r) => r.length >= 2);
  if (rated.length === 0) return { kappa: null, observed: NaN, expected: NaN };
  let pBar = 0,
    total = 0;
  const perCategory = new Map(categories.map((k) => [k, 0]));
  for (const ratings of rated) {
    const ni = ratings.length;
    let sq = 0;
    for (const k of categories) {
      const nik = ratings.filter((x) => x === k).length;
      sq += nik * nik;
      perCategory.set(k, perCategory.get(k)! + nik);
    }
    pBar += (sq - ni) / (ni * (ni - 1));
    total += ni;
  }
  pBar /= rated.length;
  let pe = 0;
  for (const k of categories) pe += (perCategory.get(k)! / total) ** 2;
  return { kappa: pe >= 1 ? null : (pBar - pe) / (1 - pe), observed: pBar, expected: pe };
}

/** Landis & Koch (1977). */
export function kappaStrength(kappa: number): string {
  if (kappa < 0) return "poor";
  if (kappa <= 0.2) return "slight";
  if (kappa <= 0.4) return "fair";
  if (kappa <= 0.6) return "moderate";
  if (kappa <= 0.8) return "substantial";
  return "almost perfect";
}

/** Agreement on the items that at least two raters answered (a rater's winner: a, b or tie). */
export function agreement(rows: readonly AnswerRow[]): Agreement {
  const byItem = new Map<string, Map<string, Winner>>();
  for (const r of rows) {
    const m = byItem.get(r.item_id) ?? new Map<string, Winner>();
    byItem.set(r.item_id, m);
    m.set(r.rater, r.winner);
  }
  const shared = [...byItem.values()].filter((m) => m.size >= 2);
  const raters = new Set(shared.flatMap((m) => [...m.keys()]));
  const none: Agreement = { method: null, kappa: null, observed: null, expected: null, items: 0, raters: raters.size, strength: null };
  if (shared.length === 0) return none;
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  if (raters.size === 2) {
    const [r1, r2] = [...raters].sort();
    const k = cohenKappa(shared.map((m) => [m.get(r1)!, m.get(r2)!]));
    return {
      method: "cohen",
      kappa: k.kappa,
      observed: finite(k.observed),
      expected: finite(k.expected),
      items: shared.length,
      raters: 2,
      strength: k.kappa === null ? null : kappaStrength(k.kappa),
    };
  }
  const k = fleissKappa(shared.map((m) => [...m.values()]));
  return {
    method: "fleiss",
    kappa: k.kappa,
    observed: finite(k.observed),
    expected: finite(k.expected),
    items: shared.length,
    raters: raters.size,
    strength: k.kappa === null ? null : kappaStrength(k.kappa),
  };
}
