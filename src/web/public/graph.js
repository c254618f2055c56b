// Who talks to whom, and the message-value matrix, at one iteration (or summed over all iterations up to it):
// the fields `talk` ([sender][recipient] delivered messages) and `message_value` ([sender][recipient] mean value,
// nats per token) of metrics.jsonl. Edges are as thick as the traffic and coloured by the value of the messages.
import { clear, el, signed, svg } from "/dom.js";

const SIZE = 340,
  R = 120,
  NODE = 22;

function valueColor(v, scale) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "#9ca3af";
  const t = Math.min(1, Math.abs(v) / (scale || 1));
  return v >= 0 ? `rgba(22, 163, 74, ${0.35 + 0.65 * t})` : `rgba(220, 38, 38, ${0.35 + 0.65 * t})`;
}

/** talk and message value at line `at` of the run, or summed (talk) / message-weighted (value) over lines ≤ at. */
export function matricesAt(run, lineIndices, at, cumulative) {
  const talkCol = run.raw.get("talk"),
    valueCol = run.raw.get("message_value");
  const pick = cumulative ? lineIndices.slice(0, at + 1) : [lineIndices[at]];
  let K = 0;
  for (const i of pick) if (talkCol[i]) K = Math.max(K, talkCol[i].length);
  const talk = Array.from({ length: K }, () => new Array(K).fill(0));
  const vsum = Array.from({ length: K }, () => new Array(K).fill(0));
  const vw = Array.from({ length: K }, () => new Array(K).fill(0));
  for (const i of pick) {
    const t = talkCol[i],
      v = valueCol ? valueCol[i] : null;
    if (!t) continue;
    for (let s = 0; s < t.length; s++)
      for (let r = 0; r < t[s].length; r++) {
        talk[s][r] += t[s][r] || 0;
        const val = v?.[s] ? v[s][r] : null;
        if (typeof val === "number") {
          const w = Math.max(1, t[s][r] || 0);
          vsum[s][r] += val * w;
          vw[s][r] += w;
        }
      }
  }
  const value = vsum.map((row, s) => row.map((x, r) => (vw[s][r] ? x / vw[s][r] : null)));
  return { K, talk, value };
}

export class TalkGraph {
  constructor({ slider, label, cumulative, graph, matrix }) {
    Object.assign(this, { slider, label, cumulative, graph, matrix });
    this.run = null;
    this.agents = [];
    this.follow = true;
    slider.addEventListener("input", () => {
      this.follow = Number(slider.value) === Number(slider.max);
      this.draw();
    });
    cumulative.addEventListener("change", () => this.draw());
  }

  setRun(run, agents) {
    if (run !== this.run) this.follow = true;
    this.run = run;
    this.agents = agents || [];
    this.update();
  }

  /** New lines arrived: extend the slider (and stay on the latest iteration if it was there). */
  update() {
    const run = this.run;
    const talk = run ? run.raw.get("talk") : null;
    this.lines = [];
    if (talk) for (let i = 0; i < run.count; i++) if (talk[i]) this.lines.push(i);
    const max = Math.max(0, this.lines.length - 1);
    this.slider.max = String(max);
    this.slider.disabled = this.lines.length === 0;
    if (this.follow || Number(this.slider.value) > max) this.slider.value = String(max);
    this.draw();
  }

  draw() {
    clear(this.graph);
    clear(this.matrix);
    if (!this.run || this.lines.length === 0) {
      this.label.textContent = "";
      this.graph.append(el("p", { class: "muted", text: this.run ? "no messages logged yet" : "select a run" }));
      return;
    }
    const at = Number(this.slider.value);
    const cumulative = this.cumulative.checked;
    const iteration = this.run.iters[this.lines[at]];
    this.label.textContent = cumulative ? `≤ ${iteration}` : String(iteration);
    this.graph.dataset.iteration = String(iteration);
    const { K, talk, value } = matricesAt(this.run, this.lines, at, cumulative);
    let maxTalk = 0,
      maxValue = 0;
    for (let s = 0; s < K; s++)
      for (let r = 0; r < K; r++) {
        maxTalk = Math.max(maxTalk, talk[s][r]);
        if (value[s][r] !== null) maxValue = Math.max(maxValue, Math.abs(value[s][r]));
      }
    this.drawGraph(K, talk, value, maxTalk, maxValue);
    this.drawMatrix(K, talk, value, maxValue);
  }

  drawGraph(K, talk, value, maxTalk, maxValue) {
    const c = SIZE / 2;
    const pos = Array.from({ length: K }, (_, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / K;
      return [c + R * Math.cos(a), c + R * Math.sin(a)];
    });
    const root = svg("svg", { viewBox: `0 0 ${SIZE} ${SIZE}`, width: SIZE, height: SIZE, role: "img", "aria-label": "who talks to whom" });
    const defs = svg("defs");
    const markers = new Map();
    const marker = (color) => {
      if (!markers.has(color)) {
        const id = `arrow-${markers.size}`;
        defs.append(
          svg(
            "marker",
            { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 5, markerHeight: 5, orient: "auto-start-reverse" },
            svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }),
          ),
        );
        markers.set(color, id);
      }
      return markers.get(color);
    };
    root.append(defs);
    for (let s = 0; s < K; s++)
      for (let r = 0; r < K; r++) {
        if (s === r || !talk[s][r]) continue;
        const [x1, y1] = pos[s],
          [x2, y2] = pos[r];
        const dx = x2 - x1,
          dy = y2 - y1,
          len = Math.hypot(dx, dy) || 1;
        const ux = dx / len,
          uy = dy / len;
        const sx = x1 + ux * NODE,
          sy = y1 + uy * NODE,
          ex = x2 - ux * (NODE + 2),
          ey = y2 - uy * (NODE + 2);
        const mx = (sx + ex) / 2 - uy * 26,
          my = (sy + ey) / 2 + ux * 26; // bend to one side: s→r and r→s do not overlap
        const color = valueColor(value[s][r], maxValue);
        const path = svg("path", {
          d: `M ${sx} ${sy} Q ${mx} ${my} ${ex} ${ey}`,
          fill: "none",
          stroke: color,
          "stroke-width": 1.5 + 6 * (talk[s][r] / (maxTalk || 1)),
          "marker-end": `url(#${marker(color)})`,
          class: "edge",
        });
        const title = svg("title");
        title.textContent = `${s} → ${r}: ${talk[s][r]} messages, value ${signed(value[s][r])}`;
        path.append(title);
        root.append(path);
      }
    for (let i = 0; i < K; i++) {
      const [x, y] = pos[i];
      const g = svg("g", { class: "node" });
      g.append(svg("circle", { cx: x, cy: y, r: NODE, fill: "#fff", stroke: "#334155", "stroke-width": 1.5 }));
      const t = svg("text", { x, y: y + 5, "text-anchor": "middle", class: "node-index" });
      t.textContent = String(i);
      const k = svg("text", { x, y: y + NODE + 14, "text-anchor": "middle", class: "node-kind" });
      k.textContent = this.agents[i] || "";
      g.append(t, k);
      root.append(g);
    }
    this.graph.append(root);
  }

  drawMatrix(K, talk, value, maxValue) {
    const head = el(
      "tr",
      {},
      el("th", { text: "from \\ to" }),
      Array.from({ length: K }, (_, r) => el("th", { text: String(r) })),
    );
    const rows = Array.from({ length: K }, (_, s) =>
      el(
        "tr",
        {},
        el("th", { text: `${s}${this.agents[s] ? ` ${this.agents[s]}` : ""}` }),
        Array.from({ length: K }, (_, r) => {
          if (s === r) return el("td", { class: "diag", text: "" });
          const td = el("td", { text: `${signed(value[s][r])} (${talk[s][r]})` });
          if (value[s][r] !== null) td.style.backgroundColor = valueColor(value[s][r], maxValue);
          return td;
        }),
      ),
    );
    this.matrix.append(el("table", { class: "matrix" }, el("thead", {}, head), el("tbody", {}, rows)));
  }
}
