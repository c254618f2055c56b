// Metric curves: every field of metrics.jsonl that holds a number (one curve) or a list of numbers (one curve per
// agent) gets a chart; several runs overlay in the same charts (one dash pattern per run). Long runs are drawn
// downsampled: at most ~2 points per pixel column, each bucket keeping its minimum and maximum, so spikes stay.
import uPlot from "/vendor/uPlot.esm.js";
import { clear, el } from "/dom.js";

/** The column store of one run's metrics lines, appended as they arrive. */
export class RunData {
  constructor(id) {
    this.id = id;
    this.generation = -1;
    this.reset();
  }

  reset() {
    this.count = 0;
    this.iters = []; // iteration of each line
    this.raw = new Map(); // key → value of each line (number | number[] | number[][] | null)
    this.kinds = new Map(); // key → "scalar" | "vector" | "matrix"
    this.width = new Map(); // key → components of a vector
  }

  append(lines) {
    for (const line of lines) {
      const i = this.count++;
      this.iters.push(line.iteration);
      let fields = 0;
      for (const key in line) {
        if (key === "iteration") continue;
        fields++;
        let col = this.raw.get(key);
        if (col === undefined) this.raw.set(key, (col = new Array(i).fill(null)));
        const v = line[key];
        col.push(v);
        if (v === null) continue;
        let kind = this.kinds.get(key);
        if (kind === undefined) {
          kind = kindOf(v);
          if (kind) this.kinds.set(key, kind);
        }
        if (kind === "vector" && v.length > (this.width.get(key) || 0)) this.width.set(key, v.length);
      }
      if (fields !== this.raw.size) for (const col of this.raw.values()) if (col.length < this.count) col.push(null); // a field this line lacks
    }
  }

  get lastIteration() {
    return this.count ? this.iters[this.count - 1] : null;
  }
}

/** "scalar", "vector" (numbers per agent), "matrix" (per sender and recipient), or null while a value holds no number. */
function kindOf(v) {
  if (typeof v === "number") return "scalar";
  if (Array.isArray(v)) {
    if (v.some((x) => Array.isArray(x))) return "matrix";
    if (v.some((x) => typeof x === "number")) return "vector";
  }
  return null;
}

const X_STEPS = [
  1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000, 100000, 200000, 500000, 1000000,
];

/** Tick labels with as many decimals as the step between ticks needs. */
function ticks(_u, splits) {
  const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
  const big = Math.max(...splits.map((v) => Math.abs(v)));
  if (big >= 1e6 || (big > 0 && big < 1e-4)) return splits.map((v) => (v === 0 ? "0" : v.toExponential(1)));
  const digits = step > 0 ? Math.min(8, Math.max(0, -Math.floor(Math.log10(step) + 1e-9))) : 0;
  return splits.map((v) => v.toFixed(digits));
}

/** Charts in this order first; validation and timing fields share a chart each; anything new is appended. */
const LAYOUT = [
  { id: "reward", title: "reward (learners, mean)", keys: ["reward"] },
  { id: "learner_gain", title: "information gain (learners, mean)", keys: ["learner_gain"] },
  { id: "information_gain", title: "information gain per agent", keys: ["information_gain"] },
  { id: "oracle_gain", title: "oracle gain (learners)", keys: ["oracle_gain"] },
  {
    id: "validation",
    title: "validation information gain",
    keys: ["val_information_gain", "val_information_gain_no_messages", "val_oracle_gain"],
  },
  { id: "kl", title: "KL to the base policy (per token)", keys: ["kl"] },
  { id: "kl_coef", title: "KL coefficient β", keys: ["kl_coef"] },
  { id: "entropy", title: "entropy (per token)", keys: ["entropy"] },
  { id: "grad_norm", title: "gradient norm", keys: ["grad_norm"] },
  { id: "state_tokens", title: "state length (tokens)", keys: ["state_tokens"] },
  { id: "messages", title: "messages per learner-round", keys: ["messages"] },
  { id: "violations", title: "protocol violations per agent", keys: ["violations"] },
  { id: "honesty", title: "honesty (share of true claims) per sender", keys: ["honesty"] },
  { id: "clip_fraction", title: "PPO clip fraction", keys: ["clip_fraction"] },
  { id: "value_loss", title: "value loss", keys: ["value_loss"] },
  { id: "tokens_per_s", title: "tokens per second", keys: ["tokens_per_s"] },
  { id: "times", title: "seconds per iteration", keys: ["time_generate", "time_score", "time_train"] },
];

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3]];

/** Downsamples aligned columns to about `maxPoints` points: per bucket the first and last x, and per series its
 * minimum and maximum in the order they occur (a bucket with one value keeps it once). */
export function downsample(x, ys, maxPoints) {
  const n = x.length;
  if (n <= maxPoints) return [x, ...ys];
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  const size = n / buckets;
  const ox = [];
  const oys = ys.map(() => []);
  for (let b = 0; b < buckets; b++) {
    const s = Math.floor(b * size),
      e = Math.min(n, Math.floor((b + 1) * size));
    if (e - s < 2) continue;
    ox.push(x[s], x[e - 1]);
    for (let k = 0; k < ys.length; k++) {
      const y = ys[k];
      let min = Infinity,
        max = -Infinity,
        iMin = -1,
        iMax = -1,
        seen = 0;
      for (let i = s; i < e; i++) {
        const v = y[i];
        if (v === null || v === undefined) continue;
        seen++;
        if (v < min) {
          min = v;
          iMin = i;
        }
        if (v > max) {
          max = v;
          iMax = i;
        }
      }
      if (seen === 0) oys[k].push(null, null);
      else if (seen === 1) oys[k].push(min, null);
      else if (iMin <= iMax) oys[k].push(min, max);
      else oys[k].push(max, min);
    }
  }
  return [ox, ...oys];
}

/** The charts of the selected runs. */
export class ChartGrid {
  constructor(container, emptyNote) {
    this.container = container;
    this.emptyNote = emptyNote;
    this.charts = new Map(); // chart id → { card, plot, signature }
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(container);
  }

  /** The chart layout for these runs: the fixed layout's charts that have data, then any other numeric field. */
  specs(runs) {
    const kinds = new Map();
    for (const r of runs) for (const [k, kind] of r.kinds) if (!kinds.has(k)) kinds.set(k, kind);
    const used = new Set(LAYOUT.flatMap((s) => s.keys));
    const extra = [...kinds.keys()].filter((k) => !used.has(k) && (kinds.get(k) === "scalar" || kinds.get(k) === "vector")).sort();
    const specs = [...LAYOUT, ...extra.map((k) => ({ id: k, title: k, keys: [k] }))];
    const withData = specs.filter((s) => s.keys.some((k) => kinds.get(k) === "scalar" || kinds.get(k) === "vector"));
    const empty = [...new Set(runs.flatMap((r) => [...r.raw.keys()]))].filter((k) => !kinds.has(k)).sort();
    return { specs: withData, empty };
  }

  /** Aligned columns of one chart: x = every iteration of any run; one series per run × field × component. */
  build(spec, runs) {
    const series = [];
    let lo = Infinity,
      hi = -Infinity;
    for (const r of runs)
      if (r.count) {
        lo = Math.min(lo, r.iters[0]);
        hi = Math.max(hi, r.lastIteration);
      }
    if (!(hi >= lo)) return null;
    for (const [rk, r] of runs.entries()) {
      for (const key of spec.keys) {
        const kind = r.kinds.get(key);
        if (kind !== "scalar" && kind !== "vector") continue;
        const col = r.raw.get(key);
        const width = kind === "vector" ? r.width.get(key) || 0 : 1;
        for (let c = 0; c < width; c++) {
          const name =
            [runs.length > 1 ? r.id : null, spec.keys.length > 1 ? key : null, kind === "vector" ? `agent ${c}` : null]
              .filter(Boolean)
              .join(" · ") || key;
          series.push({
            label: name,
            run: rk,
            color: COLORS[(kind === "vector" ? c : spec.keys.indexOf(key)) % COLORS.length],
            r,
            col,
            c: kind === "vector" ? c : -1,
          });
        }
      }
    }
    if (!series.length) return null;
    const n = hi - lo + 1;
    const x = new Array(n);
    for (let i = 0; i < n; i++) x[i] = lo + i;
    const ys = series.map((s) => {
      const y = new Array(n).fill(null);
      const { r, col, c } = s;
      for (let i = 0; i < r.count; i++) {
        const v = c < 0 ? col[i] : col[i] ? col[i][c] : null;
        if (typeof v === "number" && Number.isFinite(v)) y[r.iters[i] - lo] = v;
      }
      return y;
    });
    return { series, x, ys, sparse: ys.map((y) => y.filter((v) => v !== null).length < n / 4) };
  }

  render(runs) {
    const { specs, empty } = this.specs(runs);
    this.emptyNote.textContent = empty.length ? `no values yet: ${empty.join(", ")}` : "";
    const keep = new Set();
    let points = 0;
    for (const spec of specs) {
      const data = this.build(spec, runs);
      if (!data) continue;
      keep.add(spec.id);
      points = Math.max(points, data.x.length);
      this.draw(spec, data);
    }
    for (const [id, ch] of this.charts)
      if (!keep.has(id)) {
        ch.plot.destroy();
        ch.card.remove();
        this.charts.delete(id);
      }
    // keep the layout order
    for (const spec of specs) {
      const ch = this.charts.get(spec.id);
      if (ch) this.container.append(ch.card);
    }
    return points;
  }

  width() {
    const first = this.container.querySelector(".chart-card");
    return Math.max(240, (first ? first.clientWidth : 420) - 16);
  }

  draw(spec, data) {
    const w = this.width();
    const maxPoints = Math.max(200, 2 * w);
    const cols = downsample(data.x, data.ys, maxPoints);
    const signature = data.series.map((s) => `${s.label}|${s.run}`).join(";") + `|${data.sparse.join(",")}`;
    let ch = this.charts.get(spec.id);
    if (ch && ch.signature !== signature) {
      ch.plot.destroy();
      clear(ch.body);
      ch.signature = null;
    }
    if (!ch) {
      const body = el("div", { class: "chart-body" });
      const card = el("div", { class: "chart-card", dataset: { chart: spec.id } }, el("h3", { text: spec.title }), body);
      this.container.append(card);
      ch = { card, body, plot: null, signature: null };
      this.charts.set(spec.id, ch);
    }
    if (ch.signature === null) {
      const opts = {
        width: w,
        height: 200,
        scales: { x: { time: false } },
        cursor: { sync: { key: "colloquy" } },
        legend: { live: true },
        axes: [
          { size: 36, incrs: X_STEPS },
          { size: 60, values: ticks },
        ],
        series: [
          { label: "iteration", value: (_u, v) => (v === null || v === undefined ? "–" : String(Math.round(v))) },
          ...data.series.map((s, k) => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            dash: DASHES[s.run % DASHES.length],
            spanGaps: true,
            points: { show: data.sparse[k], size: 5 },
            value: (_u, v) =>
              v === null || v === undefined
                ? "–"
                : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3)
                  ? v.toExponential(2)
                  : v.toFixed(4),
          })),
        ],
      };
      ch.plot = new uPlot(opts, cols, ch.body);
      ch.signature = signature;
    } else {
      ch.plot.setData(cols);
    }
    ch.card.dataset.points = String(data.x.length);
    ch.card.dataset.drawn = String(cols[0].length);
    ch.card.dataset.lastX = String(data.x[data.x.length - 1]);
  }

  resize() {
    const w = this.width();
    for (const ch of this.charts.values()) if (ch.plot && Math.abs(ch.plot.width - w) > 4) ch.plot.setSize({ width: w, height: 200 });
  }
}
