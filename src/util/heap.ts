/**
 * A binary heap ordered by the caller: `before(x, y)` is true when x must come out before y, so
 * `(x, y) => x.score > y.score` makes a max-heap on score. Give `before` a tie-break (a smaller key, a further-left
 * position) when the pop order of equal entries matters: without one, equal entries come out in an order that
 * depends only on the sequence of pushes and pops (deterministic, but not first-in first-out).
 */
export class Heap<T> {
  private readonly items: T[] = [];
  private readonly before: (x: T, y: T) => boolean;

  constructor(before: (x: T, y: T) => boolean) {
    this.before = before;
  }

  get size(): number {
    return this.items.length;
  }

  push(x: T): void {
    const h = this.items;
    h.push(x);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** The first entry in `before` order, removed; undefined when empty. */
  pop(): T | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && this.before(h[l]!, h[best]!)) best = l;
        if (r < h.length && this.before(h[r]!, h[best]!)) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best]!, h[i]!];
        i = best;
      }
    }
    return top;
  }
}
