/**
 * The report's section for `colloquy eval language` (runs/<id>/eval/language.json): drift of states and messages
 * (perplexity under the base model over iterations; scripted agents dashed, as the reference), honesty per sender
 * with Wilson bands, talk and message-value heatmaps per block of iterations, and the role-specialisation swaps.
 */
import type { DriftPoint, Honesty, MatrixBlock, Roles, TextScore } from "../language.ts";
import { type Cell, para, table, withInterval } from "./html.ts";
import { dotChart, heatmap, lineChart, type Series } from "./svg.ts";
import { type Figure, agentLabel, span } from "./training.ts";

export interface LanguageResult {
  agents: readonly string[];
  drift: { method: string; groups: string[]; series: DriftPoint[]; overall: DriftPoint["groups"]; note: string | null };
  honesty: Honesty;
  matrices: { block: number; note: string; blocks: MatrixBlock[] };
  roles: Roles;
}

const FIELDS = [
  ["state", "states"],
  ["message", "messages"],
] as const;

function driftFigure(r: LanguageResult): Figure {
  const series: Series[] = [];
  for (const g of r.drift.groups) {
    for (const [field, name] of FIELDS) {
      series.push({
        name: `${g}: ${name}`,
        dashed: g !== "learners",
        points: r.drift.series.map((p) => ({ x: p.iteration, y: p.groups[g]?.[field]?.perplexity ?? null })),
      });
    }
  }
  const id = "language-drift",
    title = "Drift: perplexity of states and messages under the base model";
  return {
    id,
    title,
    metrics: ["drift"],
    caption: `${r.drift.method}. Dashed: the scripted agents, as a reference.`,
    svg: lineChart({
      id,
      title,
      xLabel: "iteration",
      yLabel: "perplexity (per token)",
      series: series.filter((s) => s.points.some((p) => p.y !== null)),
      metrics: ["drift"],
    }),
  };
}

function honestyFigure(r: LanguageResult): Figure | null {
  const h = r.honesty;
  if (!h.checkable || !h.per_iteration.length) return null;
  const senders = h.overall.filter((c) => c.claims > 0);
  if (!senders.length) return null;
  const id = "language-honesty",
    title = "Honesty: share of each sender's checkable claims that are true";
  const series: Series[] = senders.map((c) => ({
    name: agentLabel(r.agents, c.agent),
    points: h.per_iteration.map((p) => {
      const s = p.senders[c.agent];
      return { x: p.iteration, y: s?.share_true ?? null, low: s?.share_true_ci95?.[0] ?? null, high: s?.share_true_ci95?.[1] ?? null };
    }),
  }));
  return {
    id,
    title,
    metrics: ["honesty"],
    caption: `${h.note}. Bands: 95% Wilson intervals.`,
    svg: lineChart({ id, title, xLabel: "iteration", yLabel: "share true", series, metrics: ["honesty"], yMin: 0, yMax: 1 }),
  };
}

function blockFigures(r: LanguageResult): Figure[] {
  const out: Figure[] = [];
  const labels = (m: unknown[]) => m.map((_, i) => agentLabel(r.agents, i));
  for (const b of r.matrices.blocks) {
    const blockSpan = span(b.from, b.to);
    for (const [key, name, diverging, digits] of [
      ["talk", "Talk (messages per iteration)", false, 1],
      ["message_value", "Message value (nats/token)", true, 3],
    ] as const) {
      const id = `language-${key === "talk" ? "talk" : "value"}-${b.from}-${b.to}`;
      const title = `${name}, ${blockSpan}`;
      out.push({
        id,
        title,
        metrics: [key],
        svg: heatmap({
          id,
          title,
          matrix: b[key],
          rowLabels: labels(b[key]),
          colLabels: b[key].map((_, j) => String(j)),
          rowTitle: "sender",
          colTitle: "recipient",
          diverging,
          digits,
          metrics: [key],
        }),
      });
    }
  }
  return out;
}

function rolesFigure(r: LanguageResult): Figure | null {
  if (!r.roles.applicable || !r.roles.swaps.length) return null;
  const id = "language-roles",
    title = "Role specialisation: change in information gain when two adapters are swapped";
  const items = r.roles.swaps.flatMap((s) => [
    {
      label: `swap ${s.agents[0]}↔${s.agents[1]}: all learners`,
      value: s.delta_gain.mean,
      low: s.delta_gain.ci95[0],
      high: s.delta_gain.ci95[1],
    },
    {
      label: `swap ${s.agents[0]}↔${s.agents[1]}: agents ${s.agents[0]}, ${s.agents[1]}`,
      value: s.swapped_agents_delta_gain.mean,
      low: s.swapped_agents_delta_gain.ci95[0],
      high: s.swapped_agents_delta_gain.ci95[1],
    },
  ]);
  return {
    id,
    title,
    metrics: ["roles"],
    caption:
      "Swapped − in place, nats/token, paired per agent-round, 95% intervals. Below 0: the agents specialised (each adapter does better in its own seat).",
    svg: dotChart({ id, title, xLabel: "Δ information gain (nats/token)", items, reference: 0, metrics: ["roles"] }),
  };
}

const ppl = (s: TextScore | undefined): Cell => s?.perplexity ?? null;

function tables(r: LanguageResult): string {
  let html = "<h3>Drift over all transcripts</h3>";
  html += table(
    [
      "group",
      "texts",
      "states: tokens",
      "states: perplexity",
      "states: NLL/token per text [95% CI]",
      "messages: texts",
      "messages: tokens",
      "messages: perplexity",
      "messages: NLL/token per text [95% CI]",
    ],
    r.drift.groups.map((g) => {
      const o = r.drift.overall[g];
      return [
        g,
        o?.state.texts,
        o?.state.tokens,
        ppl(o?.state),
        withInterval(o?.state.nll_per_text, o?.state.nll_per_text_ci95),
        o?.message.texts,
        o?.message.tokens,
        ppl(o?.message),
        withInterval(o?.message.nll_per_text, o?.message.nll_per_text_ci95),
      ];
    }),
  );
  if (r.drift.note) html += para(r.drift.note, "note");
  html += "<h3>Honesty per sender (all transcripts)</h3>" + para(r.honesty.note, "note");
  if (r.honesty.overall.length) {
    html += table(
      ["sender", "messages", "checkable claims", "true", "false", "share true [95% CI]"],
      r.honesty.overall.map((c) => [
        agentLabel(r.agents, c.agent),
        c.messages,
        c.claims,
        c.true,
        c.false,
        c.share_true === null ? "no checkable claim" : withInterval(c.share_true, c.share_true_ci95, 3),
      ]),
    );
  }
  html += "<h3>Role specialisation</h3>" + para(r.roles.note, "note");
  if (r.roles.in_place) {
    html += para(`${r.roles.episodes} validation episodes. ${r.roles.loss_definition}.`, "note");
    const rows: Cell[][] = [["in place", r.roles.in_place.learner_gain, "", r.roles.in_place.learner_loss, "", "", ""]];
    for (const s of r.roles.swaps) {
      rows.push([
        `swap ${s.agents[0]}↔${s.agents[1]} (${s.adapters.join(", ")})`,
        s.learner_gain,
        withInterval(s.delta_gain.mean, s.delta_gain.ci95),
        s.learner_loss,
        withInterval(s.delta_loss.mean, s.delta_loss.ci95),
        withInterval(s.swapped_agents_delta_gain.mean, s.swapped_agents_delta_gain.ci95),
        withInterval(s.swapped_agents_delta_loss.mean, s.swapped_agents_delta_loss.ci95),
      ]);
    }
    html += table(
      [
        "adapters",
        "learner gain",
        "Δ gain [95% CI]",
        "learner loss",
        "Δ loss [95% CI]",
        "Δ gain, swapped agents",
        "Δ loss, swapped agents",
      ],
      rows,
    );
  }
  return html;
}

/** Figures and tables of the language evaluation. */
export function languageSection(r: LanguageResult): { html: string; figures: Figure[] } {
  const figures = [driftFigure(r), honestyFigure(r), ...blockFigures(r), rolesFigure(r)].filter((f): f is Figure => f !== null);
  return { html: tables(r) + para(r.matrices.note, "note"), figures };
}
