/**
 * Plain statistics shared by every layer. Sums run left to right from 0, so results are the same bit for bit
 * wherever they are computed (eval/stats.ts builds its intervals on these).
 */

/** The mean of xs[from..], summed left to right; 0 when there is nothing to average. */
export function mean(xs: ArrayLike<number>, from = 0): number {
  let s = 0;
  for (let i = from; i < xs.length; i++) s += xs[i]!;
  return s / Math.max(1, xs.length - from);
}

/** The sample standard deviation (n − 1) of xs around their mean m; 0 for fewer than two values. */
export function sampleSd(xs: ArrayLike<number>, m = mean(xs)): number {
  const n = xs.length;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - m) ** 2;
  return n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
}
