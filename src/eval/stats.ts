/**
 * Small statistics for evaluation reports: proportions with Wilson score intervals, means with normal intervals.
 * Generic on purpose: every evaluation that reports a rate or a mean uses these. The mean itself is util/stats.ts's.
 */
import { mean as plainMean, sampleSd } from "../util/stats.ts";

/** The two-sided 95% normal quantile, Φ⁻¹(0.975). */
export const Z95 = 1.959963984540054;

export interface Interval {
  low: number;
  high: number;
}

/** A proportion with its interval: `successes` may be fractional (a tie counted as half a success). */
export interface Rate extends Interval {
  rate: number; // successes / n (NaN when n = 0)
  successes: number;
  n: number;
  level: number; // confidence level of [low, high], e.g. 0.95
}

/**
 * Wilson score interval for a binomial proportion (Wilson 1927): the set of p whose score test does not reject at
 * level z. Unlike the normal (Wald) interval it stays inside [0, 1] and behaves at 0 and n successes.
 * `successes` may be fractional; n = 0 gives [0, 1].
 */
export function wilson(successes: number, n: number, z = Z95): Interval {
  if (!(n > 0)) return { low: 0, high: 1 };
  if (successes < 0 || successes > n) throw new Error(`wilson: successes ${successes} outside [0, ${n}]`);
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // at 0 or n successes the bound is exactly 0 or 1 (centre − half rounds to ±1e-17 there)
  return { low: successes === 0 ? 0 : Math.max(0, centre - half), high: successes === n ? 1 : Math.min(1, centre + half) };
}

/** A proportion and its 95% Wilson interval. */
export function rate(successes: number, n: number, z = Z95): Rate {
  const { low, high } = wilson(successes, n, z);
  return { rate: n > 0 ? successes / n : NaN, successes, n, low, high, level: levelOf(z) };
}

export interface Mean extends Interval {
  mean: number;
  sd: number; // sample standard deviation (n − 1)
  n: number;
  level: number;
}

/** Mean with a normal-approximation interval mean ± z·sd/√n (n = 0: NaN; n = 1: the interval is the point). */
export function mean(values: ArrayLike<number>, z = Z95): Mean {
  const n = values.length;
  if (n === 0) return { mean: NaN, sd: NaN, n, low: NaN, high: NaN, level: levelOf(z) };
  const m = plainMean(values);
  const sd = sampleSd(values, m);
  const half = n > 1 ? (z * sd) / Math.sqrt(n) : 0;
  return { mean: m, sd, n, low: m - half, high: m + half, level: levelOf(z) };
}

/** The confidence level of a two-sided normal quantile (1.96 → 0.95), rounded to 4 places. */
function levelOf(z: number): number {
  return Math.round(erf(z / Math.SQRT2) * 1e4) / 1e4;
}

/** Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): enough to name a confidence level. */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

/** "0.612 [0.592, 0.632]" — a rate or mean with its interval, for text output. */
export function formatInterval(value: number, iv: Interval, digits = 3): string {
  return `${value.toFixed(digits)} [${iv.low.toFixed(digits)}, ${iv.high.toFixed(digits)}]`;
}
