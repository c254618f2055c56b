/**
 * Figures pooled across seeds: every seed's episodes (or claims, messages, pairs) together, as if one larger
 * sample. A mean pools the units of all seeds (its interval is over episodes of every seed); a share pools
 * successes and trials (Wilson). Each cell keeps the per-seed values beside the pooled one.
 */
import { type Mean, type Rate, Z95, mean, rate } from "../eval/stats.ts";

/** One figure of the table: the pooled value, its 95% interval, the units behind it and each seed's value. */
export interface Cell {
  label: string;
  value: number | null;
  low: number | null;
  high: number | null;
  n: number; // units pooled (episodes, messages, claims, pairs)
  per_seed: (number | null)[];
}

/** The mean of all units of several samples, from their means, standard deviations and sizes (exact). */
export function poolMeans(ms: readonly (Mean | null | undefined)[]): Mean | null {
  const xs = ms.filter((m): m is Mean => !!m && m.n > 0 && Number.isFinite(m.mean));
  if (!xs.length) return null;
  const n = xs.reduce((a, m) => a + m.n, 0);
  const grand = xs.reduce((a, m) => a + m.n * m.mean, 0) / n;
  const ss = xs.reduce((a, m) => a + (m.n - 1) * (Number.isFinite(m.sd) ? m.sd ** 2 : 0) + m.n * (m.mean - grand) ** 2, 0);
  const sd = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  const half = n > 1 ? (Z95 * sd) / Math.sqrt(n) : 0;
  return { mean: grand, sd, n, low: grand - half, high: grand + half, level: 0.95 };
}

/** Successes and trials of several samples together. */
export function poolRates(rs: readonly (Rate | null | undefined)[]): Rate | null {
  const xs = rs.filter((r): r is Rate => !!r && r.n > 0);
  if (!xs.length) return null;
  return rate(
    xs.reduce((a, r) => a + r.successes, 0),
    xs.reduce((a, r) => a + r.n, 0),
  );
}

/** A mean rebuilt from a reported value, its 95% normal interval and n (as eval results write them). */
export function meanFromInterval(value: number, ci95: readonly [number, number] | null, n: number): Mean {
  const sd = ci95 && n > 1 ? ((ci95[1] - ci95[0]) / (2 * Z95)) * Math.sqrt(n) : 0;
  return { ...mean([value]), mean: value, sd, n, low: ci95?.[0] ?? value, high: ci95?.[1] ?? value };
}

/** A cell from per-seed samples, pooled: means (`per` gives each seed's sample) or shares. */
export function meanCell(label: string, perSeed: readonly (Mean | null | undefined)[]): Cell {
  const p = poolMeans(perSeed);
  return {
    label,
    value: p?.mean ?? null,
    low: p?.low ?? null,
    high: p?.high ?? null,
    n: p?.n ?? 0,
    per_seed: perSeed.map((m) => m?.mean ?? null),
  };
}

export function rateCell(label: string, perSeed: readonly (Rate | null | undefined)[]): Cell {
  return shareCell(label, poolRates(perSeed), perSeed);
}

/** A cell of a share: `pooled` with its interval, and each seed's rate. */
function shareCell(label: string, pooled: Rate | null, perSeed: readonly (Rate | null | undefined)[]): Cell {
  return {
    label,
    value: pooled?.rate ?? null,
    low: pooled?.low ?? null,
    high: pooled?.high ?? null,
    n: pooled?.n ?? 0,
    per_seed: perSeed.map((r) => (r?.n ? r.rate : null)),
  };
}

/**
 * A share that several systems measured on the same items (each trained agent of each seed on the same HH-RLHF
 * pairs): the mean of their rates, with its Wilson interval over the items counted once — their answers on one
 * item are not independent, so n is the items, not systems × items. Per seed: the mean of that seed's systems.
 */
export function sameItemsCell(label: string, perSeed: readonly (readonly Rate[])[]): Cell {
  const average = (rs: readonly Rate[]): Rate | null => {
    const xs = rs.filter((r) => r.n > 0);
    if (!xs.length) return null;
    const n = Math.max(...xs.map((r) => r.n));
    return rate((n * xs.reduce((a, r) => a + r.rate, 0)) / xs.length, n);
  };
  return shareCell(label, average(perSeed.flat()), perSeed.map(average));
}

/** A cell whose units are the ratio of two pooled means (the interval is the numerator's, divided). */
export function ratioCell(label: string, num: Cell, den: Cell): Cell {
  const d = den.value;
  const div = (x: number | null) => (x === null || !d ? null : x / d);
  return {
    label,
    value: div(num.value),
    low: div(num.low),
    high: div(num.high),
    n: num.n,
    per_seed: num.per_seed.map((x, s) => (x === null || !den.per_seed[s] ? null : x / den.per_seed[s]!)),
  };
}
