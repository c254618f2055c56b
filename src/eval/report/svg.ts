/**
 * Hand-written SVG charts for the run report: line charts (with optional interval bands), heatmaps and
 * dot-and-whisker charts. Each returns one <svg> element without an xmlns (it sits inline in report.html);
 * `standalone` adds the namespace and a white background for the .svg and .png files. Every piece of text is
 * escaped: labels come from run files, and model outputs are untrusted.
 */

export const FONT = "DejaVu Sans, Helvetica, Arial, sans-serif";
export const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/** Escapes text for HTML and SVG (element content and quoted attributes). */
export function esc(s: unknown): string {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** A number for a label: fixed decimals for ordinary magnitudes, exponent form for tiny or huge ones. */
export function fmtNum(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(2);
  if (Number.isInteger(v)) return String(v);
  return a >= 100 ? v.toFixed(1) : String(Number(v.toPrecision(Math.max(2, digits))));
}

/** "Nice" ticks covering [lo, hi] (Heckbert's step of 1, 2, 5 × 10^k) and the widened domain they span. */
export function niceTicks(lo: number, hi: number, count = 5): { ticks: number[]; lo: number; hi: number; step: number } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { ticks: [0, 1], lo: 0, hi: 1, step: 1 };
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  const step = mag * (r >= 7.5 ? 10 : r >= 3.5 ? 5 : r >= 1.5 ? 2 : 1);
  const start = Math.floor(lo / step + 1e-9) * step,
    end = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0; start + k * step <= end + step * 1e-9; k++) ticks.push(round(start + k * step, step));
  return { ticks, lo: start, hi: end, step };
}

const round = (v: number, step: number) => {
  const d = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(20, d)));
};

function tickLabel(v: number, step: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(1);
  const d = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(8, d));
}

function integerTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let t = Math.ceil(lo); t <= hi; t++) out.push(t);
  return out;
}

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

function open(id: string, w: number, h: number, title: string, metrics: readonly string[]): string {
  const data = metrics.length ? ` data-metrics="${esc(metrics.join(" "))}"` : "";
  return (
    `<svg id="${esc(id)}" class="chart" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}"${data} font-family="${FONT}" font-size="11">` +
    `<rect width="${w}" height="${h}" fill="#fff"/>` +
    text(10, 18, title, `font-size="13" font-weight="bold" fill="#222"`)
  );
}

/** The inline SVG as a file of its own: with its namespace (for .svg files and the PNG renderer). */
export function standalone(svg: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n` + svg.replace(/^<svg /, `<svg xmlns="http://www.w3.org/2000/svg" `);
}

function legend(
  items: { name: string; color: string; dashed?: boolean }[],
  x0: number,
  y: number,
  maxWidth: number,
): { svg: string; height: number } {
  let x = x0,
    row = 0,
    svg = "";
  for (const it of items) {
    const w = 26 + Math.min(40, it.name.length) * 6.2;
    if (x + w > x0 + maxWidth && x > x0) {
      x = x0;
      row++;
    }
    const yy = y + row * 15;
    svg += `<line x1="${x}" y1="${yy - 4}" x2="${x + 18}" y2="${yy - 4}" stroke="${it.color}" stroke-width="2.5"${it.dashed ? ` stroke-dasharray="5 3"` : ""}/>`;
    svg += text(x + 22, yy, it.name.length > 40 ? it.name.slice(0, 39) + "…" : it.name, `fill="#333"`);
    x += w;
  }
  return { svg, height: items.length ? (row + 1) * 15 : 0 };
}

export interface Point {
  x: number;
  y: number | null; // null: not measured (skipped; the line joins its neighbours)
  low?: number | null; // an interval around y, drawn as a band
  high?: number | null;
}

export interface Series {
  name: string;
  points: Point[];
  dashed?: boolean;
  color?: string;
}

export interface LineChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  metrics?: string[]; // the metric names the chart shows (a data-metrics attribute, for readers and tests)
  width?: number;
  height?: number;
  yMin?: number; // force the y domain to include these
  yMax?: number;
}

/** A line chart of one or more series over a shared x axis (iterations). */
export function lineChart(s: LineChartSpec): string {
  const W = s.width ?? 640,
    H = s.height ?? 300;
  const series = s.series.map((x, k) => ({
    ...x,
    color: x.color ?? PALETTE[k % PALETTE.length],
    points: x.points.filter((p) => p.y !== null && Number.isFinite(p.y)),
  }));
  const lg = legend(
    series.map((x) => ({ name: x.name, color: x.color, dashed: x.dashed })),
    64,
    38,
    W - 80,
  );
  const top = 30 + lg.height + 10,
    bottom = H - 40,
    left = 64,
    right = W - 16;
  const all = series.flatMap((x) => x.points);
  const xs = all.map((p) => p.x);
  const ys = all.flatMap((p) => [
    p.y!,
    ...(p.low !== null && p.low !== undefined && Number.isFinite(p.low) ? [p.low] : []),
    ...(p.high !== null && p.high !== undefined && Number.isFinite(p.high) ? [p.high] : []),
  ]);
  if (s.yMin !== undefined) ys.push(s.yMin);
  if (s.yMax !== undefined) ys.push(s.yMax);
  let out = open(s.id, W, H, s.title, s.metrics ?? []) + lg.svg;
  if (!all.length) return out + text(W / 2, (top + bottom) / 2, "no data", `text-anchor="middle" fill="#888"`) + "</svg>";
  let xt = niceTicks(Math.min(...xs), Math.max(...xs), 6);
  if (xs.every(Number.isInteger) && xt.step < 1) xt = { ...xt, step: 1, ticks: integerTicks(Math.min(...xs), Math.max(...xs)) };
  const xLo = Math.min(...xs),
    xHi = Math.max(...xs);
  const xDomain: [number, number] = xLo === xHi ? [xLo - 1, xHi + 1] : [xLo, xHi];
  const yt = niceTicks(Math.min(...ys), Math.max(...ys), 5);
  const X = (v: number) => left + ((v - xDomain[0]) / (xDomain[1] - xDomain[0])) * (right - left);
  const Y = (v: number) => bottom - ((v - yt.lo) / (yt.hi - yt.lo)) * (bottom - top);
  // grid and axes
  for (const t of yt.ticks)
    out +=
      `<line x1="${left}" y1="${Y(t).toFixed(1)}" x2="${right}" y2="${Y(t).toFixed(1)}" stroke="${t === 0 ? "#999" : "#e5e5e5"}"/>` +
      text(left - 6, Y(t) + 4, tickLabel(t, yt.step), `text-anchor="end" fill="#555"`);
  const xticks = xt.ticks.filter((t) => t >= xDomain[0] - 1e-9 && t <= xDomain[1] + 1e-9);
  for (const t of xticks)
    out +=
      `<line x1="${X(t).toFixed(1)}" y1="${bottom}" x2="${X(t).toFixed(1)}" y2="${bottom + 4}" stroke="#555"/>` +
      text(X(t), bottom + 16, tickLabel(t, xt.step), `text-anchor="middle" fill="#555"`);
  out += `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#555"/><line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#555"/>`;
  out += text((left + right) / 2, H - 8, s.xLabel, `text-anchor="middle" fill="#333"`);
  out += text(
    14,
    (top + bottom) / 2,
    s.yLabel,
    `text-anchor="middle" fill="#333" transform="rotate(-90 14 ${((top + bottom) / 2).toFixed(1)})"`,
  );
  // bands, lines, points
  for (const x of series) {
    const band = x.points.filter(
      (p) =>
        p.low !== null &&
        p.low !== undefined &&
        p.high !== null &&
        p.high !== undefined &&
        Number.isFinite(p.low) &&
        Number.isFinite(p.high),
    );
    if (band.length >= 2) {
      const pts = [
        ...band.map((p) => `${X(p.x).toFixed(1)},${Y(p.high!).toFixed(1)}`),
        ...band.reverse().map((p) => `${X(p.x).toFixed(1)},${Y(p.low!).toFixed(1)}`),
      ];
      out += `<polygon points="${pts.join(" ")}" fill="${x.color}" fill-opacity="0.15" stroke="none"/>`;
    } else {
      for (const p of band)
        out += `<line x1="${X(p.x).toFixed(1)}" y1="${Y(p.low!).toFixed(1)}" x2="${X(p.x).toFixed(1)}" y2="${Y(p.high!).toFixed(1)}" stroke="${x.color}" stroke-opacity="0.5" stroke-width="3"/>`;
    }
  }
  for (const x of series) {
    if (x.points.length > 1) {
      const d = x.points.map((p, k) => `${k ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y!).toFixed(1)}`).join("");
      out += `<path d="${d}" fill="none" stroke="${x.color}" stroke-width="2"${x.dashed ? ` stroke-dasharray="5 3"` : ""}/>`;
    }
    if (x.points.length <= 60)
      for (const p of x.points) out += `<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y!).toFixed(1)}" r="2.8" fill="${x.color}"/>`;
  }
  return out + "</svg>";
}

export interface HeatmapSpec {
  id: string;
  title: string;
  matrix: (number | null)[][]; // [row][column]
  rowLabels: string[];
  colLabels: string[];
  rowTitle: string; // e.g. "sender"
  colTitle: string; // e.g. "recipient"
  diverging?: boolean; // colour around 0 (red below, blue above) instead of from 0 up
  metrics?: string[];
  digits?: number;
}

function mix(a: string, b: string, t: number): string {
  const p = (c: string, i: number) => parseInt(c.slice(1 + 2 * i, 3 + 2 * i), 16);
  const v = [0, 1, 2].map((i) => Math.round(p(a, i) + (p(b, i) - p(a, i)) * Math.max(0, Math.min(1, t))));
  return `#${v.map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

const BLUE = "#2c6fad",
  RED = "#c8413b",
  WHITE = "#ffffff";

function cellColor(v: number, max: number, diverging: boolean): string {
  if (!(max > 0)) return WHITE;
  return v >= 0 ? mix(WHITE, BLUE, v / max) : mix(WHITE, diverging ? RED : BLUE, -v / max);
}

/** A K×K (or any R×C) matrix as coloured cells with their values printed. */
export function heatmap(s: HeatmapSpec): string {
  const R = s.matrix.length,
    C = Math.max(0, ...s.matrix.map((r) => r.length));
  const labelW = Math.min(150, 14 + 6.2 * Math.max(4, ...s.rowLabels.map((l) => l.length)));
  const cell = Math.max(34, Math.min(64, Math.floor(440 / Math.max(1, C))));
  const left = 24 + labelW,
    top = 62;
  const W = Math.max(360, left + C * cell + 20, Math.ceil(24 + s.title.length * 7.4)),
    H = top + R * cell + 58;
  const values = s.matrix.flat().filter((v): v is number => v !== null && Number.isFinite(v));
  const max = values.length ? Math.max(...values.map(Math.abs)) : 0;
  let out = open(s.id, W, H, s.title, s.metrics ?? []);
  out += text(left + (C * cell) / 2, 40, `${s.colTitle} →`, `text-anchor="middle" fill="#333"`);
  s.colLabels.forEach((l, j) => (out += text(left + j * cell + cell / 2, top - 6, l, `text-anchor="middle" fill="#555"`)));
  out += text(
    12,
    top + (R * cell) / 2,
    `${s.rowTitle} →`,
    `text-anchor="middle" fill="#333" transform="rotate(-90 12 ${(top + (R * cell) / 2).toFixed(1)})"`,
  );
  s.matrix.forEach((row, i) => {
    out += text(left - 6, top + i * cell + cell / 2 + 4, s.rowLabels[i] ?? String(i), `text-anchor="end" fill="#555"`);
    for (let j = 0; j < C; j++) {
      const v = row[j] ?? null;
      const ok = v !== null && Number.isFinite(v);
      const fill = ok ? cellColor(v, max, Boolean(s.diverging)) : "#f0f0f0";
      out += `<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${fill}" stroke="#ddd"/>`;
      const dark = ok && max > 0 && Math.abs(v) / max > 0.6;
      out += text(
        left + j * cell + cell / 2,
        top + i * cell + cell / 2 + 4,
        ok ? (Math.abs(v) >= 1e4 ? v.toExponential(1) : v.toFixed(s.digits ?? 2)) : "–",
        `text-anchor="middle" font-size="10" fill="${dark ? "#fff" : "#222"}"`,
      );
    }
  });
  // colour scale
  const y = top + R * cell + 22,
    steps = 9,
    sw = 18;
  const lo = s.diverging ? -max : 0;
  for (let k = 0; k < steps; k++) {
    const v = lo + ((max - lo) * k) / (steps - 1);
    out += `<rect x="${left + k * sw}" y="${y}" width="${sw}" height="10" fill="${cellColor(v, max, Boolean(s.diverging))}" stroke="#ddd" stroke-width="0.5"/>`;
  }
  out +=
    text(left, y + 24, fmtNum(lo, 3), `fill="#555"`) + text(left + steps * sw, y + 24, fmtNum(max, 3), `text-anchor="end" fill="#555"`);
  return out + "</svg>";
}

export interface DotItem {
  label: string;
  value: number | null;
  low?: number | null;
  high?: number | null;
}

export interface DotChartSpec {
  id: string;
  title: string;
  xLabel: string;
  items: DotItem[];
  reference?: number; // a vertical line (e.g. 0, or chance)
  metrics?: string[];
}

/** One row per item: a dot at its value and a whisker over its interval. */
export function dotChart(s: DotChartSpec): string {
  const labelW = Math.min(220, 16 + 6.2 * Math.max(4, ...s.items.map((i) => i.label.length)));
  const left = labelW + 12,
    right = 620,
    top = 40,
    row = 22;
  const W = 640,
    H = top + s.items.length * row + 46;
  const vals = s.items
    .flatMap((i) => [i.value, i.low, i.high])
    .filter((v): v is number => v !== null && v !== undefined && Number.isFinite(v));
  if (s.reference !== undefined) vals.push(s.reference);
  let out = open(s.id, W, H, s.title, s.metrics ?? []);
  if (!vals.length) return out + text(W / 2, H / 2, "no data", `text-anchor="middle" fill="#888"`) + "</svg>";
  const t = niceTicks(Math.min(...vals), Math.max(...vals), 5);
  const X = (v: number) => left + ((v - t.lo) / (t.hi - t.lo)) * (right - left);
  const bottom = top + s.items.length * row;
  for (const v of t.ticks)
    out +=
      `<line x1="${X(v).toFixed(1)}" y1="${top - 4}" x2="${X(v).toFixed(1)}" y2="${bottom}" stroke="#e5e5e5"/>` +
      text(X(v), bottom + 16, tickLabel(v, t.step), `text-anchor="middle" fill="#555"`);
  if (s.reference !== undefined)
    out += `<line x1="${X(s.reference).toFixed(1)}" y1="${top - 4}" x2="${X(s.reference).toFixed(1)}" y2="${bottom}" stroke="#999" stroke-dasharray="4 3"/>`;
  s.items.forEach((it, k) => {
    const y = top + k * row + row / 2;
    out += text(left - 8, y + 4, it.label.length > 34 ? it.label.slice(0, 33) + "…" : it.label, `text-anchor="end" fill="#333"`);
    if (
      it.low !== null &&
      it.low !== undefined &&
      it.high !== null &&
      it.high !== undefined &&
      Number.isFinite(it.low) &&
      Number.isFinite(it.high)
    ) {
      out += `<line x1="${X(it.low).toFixed(1)}" y1="${y}" x2="${X(it.high).toFixed(1)}" y2="${y}" stroke="${PALETTE[0]}" stroke-width="2"/>`;
    }
    if (it.value !== null && Number.isFinite(it.value))
      out += `<circle cx="${X(it.value).toFixed(1)}" cy="${y}" r="4" fill="${PALETTE[0]}"/>`;
  });
  out += text((left + right) / 2, H - 8, s.xLabel, `text-anchor="middle" fill="#333"`);
  return out + "</svg>";
}
