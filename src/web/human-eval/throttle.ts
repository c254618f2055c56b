/**
 * Failed sign-ins, counted in a sliding window per key (a client address, a rater name): past `max` failures in
 * `windowMs`, a key waits until its oldest failure leaves the window. An attempt counts as a failure from the moment
 * it starts (so that parallel guesses count too) and is forgiven when it succeeds. Kept in memory: a restart forgets
 * it. At most `maxKeys` keys are tracked; past that the oldest are dropped.
 */
export class FailureThrottle {
  private readonly max: number;
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly failures = new Map<string, number[]>(); // key → times of its failures, oldest first

  constructor(max: number, windowMs: number, maxKeys = 10_000) {
    this.max = max;
    this.windowMs = windowMs;
    this.maxKeys = maxKeys;
  }

  private live(key: string, now: number): number[] {
    const times = (this.failures.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (times.length) this.failures.set(key, times);
    else this.failures.delete(key);
    return times;
  }

  /** How long (ms) the first of `keys` that is over its limit must wait; 0 when none is. */
  wait(keys: readonly string[], now = Date.now()): number {
    let wait = 0;
    for (const k of keys) {
      const times = this.live(k, now);
      if (times.length >= this.max) wait = Math.max(wait, times[times.length - this.max] + this.windowMs - now);
    }
    return wait;
  }

  /** Counts an attempt against each key (a failure until `forgive`). */
  attempt(keys: readonly string[], now = Date.now()): void {
    for (const k of keys) {
      const times = this.live(k, now);
      times.push(now);
      this.failures.delete(k); // re-inserted last: the map's order is the keys' last activity
      this.failures.set(k, times);
    }
    while (this.failures.size > this.maxKeys) this.failures.delete(this.failures.keys().next().value as string);
  }

  /** An attempt started at `at` succeeded: it no longer counts. */
  forgive(keys: readonly string[], at: number): void {
    for (const k of keys) {
      const times = this.failures.get(k);
      const i = times?.lastIndexOf(at) ?? -1;
      if (times && i >= 0) times.splice(i, 1);
    }
  }
}
