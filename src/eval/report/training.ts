/**
 * Figures of metrics.jsonl: a training curve for every numeric metric (related ones share a chart: learner gain
 * with its oracle bound, the validation gains, KL with its coefficient, the time split; per-agent metrics get a
 * line per agent), and heatmaps of the matrix metrics (talk, message value) over the last block of iterations.
 * Metrics this file does not know still get a chart of their own, by shape.
 */
import { blockMatrices } from "../language.ts";
import { heatmap, lineChart, type Series } from "./svg.ts";

export interface Figure {
  id: string; // file-safe: the PNG is report/<id>.png
  title: string;
  svg: string;
  caption?: string;
  metrics: string[];
}

type Line = Record<string, unknown>;

interface CurveSpec {
  id: string;
  title: string;
  yLabel: string;
  fields: string[];
  caption?: string;
}

export const CURVES: CurveSpec[] = [
  { id: "reward", title: "Reward (learners' mean, before the KL penalty)", yLabel: "nats/token", fields: ["reward"] },
  {
    id: "information_gain",
    title: "Information gain per agent (training episodes)",
    yLabel: "nats/token",
    fields: ["information_gain"],
    caption: "Iteration 0: the validation episodes before training.",
  },
  {
    id: "learner_gain",
    title: "Learners' information gain vs the oracle bound (training)",
    yLabel: "nats/token",
    fields: ["learner_gain", "oracle_gain"],
  },
  {
    id: "validation",
    title: "Validation information gain (learners)",
    yLabel: "nats/token",
    fields: ["val_information_gain", "val_information_gain_no_messages", "val_oracle_gain"],
    caption: "Measured before training (iteration 0), every evalEvery iterations and at the end.",
  },
  { id: "kl", title: "KL to the base policy and its coefficient β", yLabel: "nats/token; β", fields: ["kl", "kl_coef"] },
  { id: "entropy", title: "Policy entropy", yLabel: "nats/token", fields: ["entropy"] },
  { id: "grad_norm", title: "Gradient norm (before clipping)", yLabel: "norm", fields: ["grad_norm"] },
  { id: "state_tokens", title: "State length (learners)", yLabel: "tokens", fields: ["state_tokens"] },
  { id: "messages", title: "Messages sent per learner per round", yLabel: "messages", fields: ["messages"] },
  { id: "violations", title: "Protocol violations per agent", yLabel: "violations per iteration", fields: ["violations"] },
  {
    id: "honesty",
    title: "Honesty per sender: share of checkable claims that are true (training)",
    yLabel: "share true",
    fields: ["honesty"],
  },
  { id: "clip_fraction", title: "PPO clip fraction", yLabel: "fraction", fields: ["clip_fraction"] },
  { id: "value_loss", title: "Value loss", yLabel: "loss", fields: ["value_loss"] },
  { id: "tokens_per_s", title: "Throughput", yLabel: "sampled tokens/s", fields: ["tokens_per_s"] },
  { id: "time", title: "Time per iteration", yLabel: "seconds", fields: ["time_generate", "time_score", "time_train"] },
];

const LABELS: Record<string, string> = {
  learner_gain: "learners",
  oracle_gain: "oracle bound",
  val_information_gain: "with messages",
  val_information_gain_no_messages: "messages off",
  val_oracle_gain: "oracle bound",
  kl: "KL per token",
  kl_coef: "β (kl_coef)",
  time_generate: "generate",
  time_score: "score",
  time_train: "train",
};

const MATRICES: Record<string, { title: string; diverging: boolean; digits: number }> = {
  talk: { title: "Who talks to whom: messages delivered per iteration", diverging: false, digits: 1 },
  message_value: {
    title: "Message value (nats/token): what the sender's messages were worth to the recipient",
    diverging: true,
    digits: 3,
  },
};

export type Shape = "scalar" | "vector" | "matrix" | "empty" | "other";

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** A metric's shape, from its non-null values: a number, a number per agent, or a matrix. */
export function fieldShape(metrics: readonly Line[], field: string): Shape {
  const values = metrics.map((m) => m[field]).filter((v) => v !== null && v !== undefined);
  if (!values.length) return "empty";
  if (values.every((v) => typeof v === "number")) return values.some(isNum) ? "scalar" : "empty";
  if (values.every((v) => Array.isArray(v) && v.every((x) => x === null || typeof x === "number")))
    return (values as unknown[][]).some((v) => v.some(isNum)) ? "vector" : "empty";
  if (values.every((v) => Array.isArray(v) && v.every((r) => Array.isArray(r))))
    return (values as unknown[][][]).some((v) => v.flat().some(isNum)) ? "matrix" : "empty";
  return "other";
}

export const agentLabel = (agents: readonly string[], i: number) => `agent ${i}${agents[i] ? ` (${agents[i]})` : ""}`;

function seriesOf(metrics: readonly Line[], field: string, agents: readonly string[], alone: boolean): Series[] {
  const shape = fieldShape(metrics, field);
  const x = (m: Line) => Number(m.iteration);
  if (shape === "scalar")
    return [{ name: LABELS[field] ?? field, points: metrics.map((m) => ({ x: x(m), y: isNum(m[field]) ? (m[field] as number) : null })) }];
  if (shape === "vector") {
    const K = Math.max(...metrics.map((m) => (Array.isArray(m[field]) ? (m[field] as unknown[]).length : 0)));
    return Array.from({ length: K }, (_, i) => ({
      name: alone ? agentLabel(agents, i) : `${LABELS[field] ?? field}: ${agentLabel(agents, i)}`,
      points: metrics.map((m) => {
        const v = Array.isArray(m[field]) ? (m[field] as unknown[])[i] : null;
        return { x: x(m), y: isNum(v) ? v : null };
      }),
    })).filter((s) => s.points.some((p) => p.y !== null));
  }
  return [];
}

/** One chart per curve spec with data, then one per unknown scalar or vector metric; `empty` lists metrics never recorded. */
export function trainingFigures(metrics: readonly Line[], agents: readonly string[]): { figures: Figure[]; empty: string[] } {
  const figures: Figure[] = [];
  const fields = [...new Set(metrics.flatMap((m) => Object.keys(m)))].filter((f) => f !== "iteration");
  const known = new Set([...CURVES.flatMap((c) => c.fields), ...Object.keys(MATRICES)]);
  const specs: CurveSpec[] = [
    ...CURVES,
    ...fields
      .filter((f) => !known.has(f) && ["scalar", "vector"].includes(fieldShape(metrics, f)))
      .map((f) => ({ id: f, title: f, yLabel: f, fields: [f] })),
  ];
  for (const spec of specs) {
    const present = spec.fields.filter((f) => ["scalar", "vector"].includes(fieldShape(metrics, f)));
    if (!present.length) continue;
    const series = present.flatMap((f) => seriesOf(metrics, f, agents, spec.fields.length === 1));
    const id = `curve-${safeId(spec.id)}`;
    figures.push({
      id,
      title: spec.title,
      metrics: present,
      caption: spec.caption,
      svg: lineChart({
        id,
        title: spec.title,
        xLabel: "iteration",
        yLabel: spec.yLabel,
        series,
        metrics: present,
        ...(spec.id === "honesty" ? { yMin: 0, yMax: 1 } : {}),
      }),
    });
  }
  return { figures, empty: fields.filter((f) => fieldShape(metrics, f) === "empty").sort() };
}

/** The mean of a matrix metric over the lines of the last block of `block` iterations. */
function lastBlockMean(
  metrics: readonly Line[],
  field: string,
  block: number,
): { matrix: (number | null)[][]; from: number; to: number } | null {
  const lines = metrics.filter((m) => Array.isArray(m[field]) && isNum(m.iteration));
  if (!lines.length) return null;
  const last = Math.max(...lines.map((m) => m.iteration as number));
  const b = Math.floor((last - 1) / block);
  const mine = lines.filter((m) => Math.floor(((m.iteration as number) - 1) / block) === b);
  const R = Math.max(...mine.map((m) => (m[field] as unknown[]).length));
  const matrix = Array.from({ length: R }, (_, i) =>
    Array.from({ length: R }, (_, j) => {
      const xs = mine.map((m) => ((m[field] as unknown[][])[i] ?? [])[j]).filter(isNum);
      return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
    }),
  );
  return { matrix, from: b * block + 1, to: last };
}

/** Heatmaps of the matrix metrics (talk, message value, and any other), last block of iterations. */
export function matrixFigures(metrics: readonly Line[], agents: readonly string[], block: number): Figure[] {
  const fields = [...new Set(metrics.flatMap((m) => Object.keys(m)))].filter((f) => fieldShape(metrics, f) === "matrix");
  const blocks = blockMatrices(metrics, block);
  const lastBlock = blocks[blocks.length - 1];
  const out: Figure[] = [];
  for (const f of fields.sort((a, b) => (a in MATRICES ? 0 : 1) - (b in MATRICES ? 0 : 1))) {
    const known = lastBlock && (f === "talk" || f === "message_value");
    const m = known
      ? { matrix: f === "talk" ? lastBlock.talk : lastBlock.message_value, from: lastBlock.from, to: lastBlock.to }
      : lastBlockMean(metrics, f, block);
    if (!m) continue;
    const meta = MATRICES[f] ?? { title: f, diverging: m.matrix.flat().some((v) => v !== null && v < 0), digits: 3 };
    const id = `matrix-${safeId(f)}`;
    const title = `${meta.title}, ${span(m.from, m.to)}`;
    out.push({
      id,
      title,
      metrics: [f],
      svg: heatmap({
        id,
        title,
        matrix: m.matrix,
        rowLabels: m.matrix.map((_, i) => agentLabel(agents, i)),
        colLabels: m.matrix.map((_, j) => String(j)),
        rowTitle: "sender",
        colTitle: "recipient",
        diverging: meta.diverging,
        digits: meta.digits,
        metrics: [f],
      }),
    });
  }
  return out;
}

export const span = (from: number, to: number) => (from === to ? `iteration ${from}` : `iterations ${from}–${to}`);

export function safeId(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "-")
      .replace(/^-+|-+$/g, "") || "x"
  );
}
