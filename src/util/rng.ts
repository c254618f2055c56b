/**
 * A seeded random number generator (xoshiro128**), owned by the caller (STYLE.md habit 11).
 * Its whole state is four 32-bit words, saved into checkpoints with `state()` and restored with `Rng.from()`.
 * `fork(label)` derives an independent stream, so that adding draws in one place does not shift another.
 */
export class Rng {
  private s: Uint32Array; // (4,)

  constructor(seed: number | string = 0) {
    this.s = new Uint32Array(4);
    let x = typeof seed === "number" ? (seed >>> 0) ^ Math.floor(seed / 2 ** 32) : hashString(seed);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0; // splitmix32
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  static from(state: readonly number[]): Rng {
    const r = new Rng(0);
    if (state.length !== 4) throw new Error(`Rng.from: expected 4 state words, got ${state.length}`);
    for (let i = 0; i < 4; i++) r.s[i] = state[i] >>> 0;
    return r;
  }

  state(): number[] {
    return Array.from(this.s);
  }

  /** A new generator whose stream depends on this one's current state and `label`, without advancing this one. */
  fork(label: string | number): Rng {
    const h = hashString(String(label));
    return Rng.from([this.s[0] ^ h, this.s[1] ^ Math.imul(h, 0x9e3779b9), this.s[2], this.s[3] ^ 0x5bd1e995].map((w) => w >>> 0)).warm();
  }

  private warm(): Rng {
    for (let i = 0; i < 8; i++) this.u32();
    return this;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1)) throw new Error(`Rng.int: n must be >= 1, got ${n}`);
    return Math.floor(this.float() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("Rng.pick: empty list");
    return items[this.int(items.length)];
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** FNV-1a over UTF-16 code units, 32 bits. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
