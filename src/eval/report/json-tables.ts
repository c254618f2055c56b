/**
 * Any evaluation result (runs/<id>/eval/<kind>.json) rendered generically: scalars as a key–value table, a value
 * `x` and its interval `x_ci95` together as "x [low, high]", arrays of records (and records of records) as tables,
 * matrices as grids, nested objects as subsections; and for records that carry intervals, a dot-and-whisker chart
 * per measure (e.g. accuracy per system). The evaluations can change their fields without this file changing.
 */
import { type Cell, kvTable, table, withInterval } from "./html.ts";
import { dotChart, esc, fmtNum } from "./svg.ts";
import { type Figure, safeId } from "./training.ts";

const MAX_ROWS = 200;
const MAX_DEPTH = 4;
const MAX_CHARTS = 8;
const LABEL_KEYS = ["system", "name", "label", "agent", "game", "type", "group", "kind", "id"];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isPrim = (v: unknown) => v === null || ["string", "number", "boolean"].includes(typeof v);
const isInterval = (v: unknown): v is [number | null, number | null] =>
  Array.isArray(v) && v.length === 2 && v.every((x) => x === null || typeof x === "number");
const isMatrix = (v: unknown): v is (number | null)[][] =>
  Array.isArray(v) && v.length > 0 && v.every((r) => Array.isArray(r) && r.every((x) => x === null || typeof x === "number"));
const CI = /_ci(\d+)$/;

/** A record's columns that fit in a cell: primitives, intervals folded into their value, short lists of primitives. */
function flatCells(o: Obj): [string, Cell][] {
  const out: [string, Cell][] = [];
  for (const [k, v] of Object.entries(o)) {
    const m = CI.exec(k);
    if (m && isInterval(v)) {
      const base = k.slice(0, m.index);
      if (typeof o[base] === "number") continue; // folded into base
      out.push([k, `[${fmtNum(v[0], 4)}, ${fmtNum(v[1], 4)}]`]);
      continue;
    }
    const ci = o[`${k}_ci95`];
    if (typeof v === "number" && isInterval(ci)) out.push([`${k} [95% CI]`, withInterval(v, ci)]);
    else if (isPrim(v)) out.push([k, v as Cell]);
    else if (Array.isArray(v) && v.every(isPrim) && v.length <= 16)
      out.push([k, v.map((x) => (typeof x === "number" ? fmtNum(x, 4) : String(x))).join(", ")]);
    else if (Array.isArray(v) && v.every((x) => typeof x === "number"))
      out.push([k, `${v.length} values, mean ${fmtNum((v as number[]).reduce((s, x) => s + x, 0) / v.length, 4)}`]);
  }
  return out;
}

/** The values that did not fit in a cell: nested records, arrays of records, matrices, long lists. */
function nested(o: Obj): [string, unknown][] {
  return Object.entries(o).filter(([k, v]) => {
    if (isPrim(v)) return false;
    if (CI.test(k) && isInterval(v)) return false;
    if (Array.isArray(v) && v.every(isPrim) && (v.length <= 16 || v.every((x) => typeof x === "number"))) return false;
    return true;
  });
}

const hasLabel = (o: Obj) => LABEL_KEYS.some((k) => typeof o[k] === "string" || typeof o[k] === "number");

function labelOf(o: Obj, fallback: string): string {
  for (const k of LABEL_KEYS) if (typeof o[k] === "string" || typeof o[k] === "number") return String(o[k]);
  return fallback;
}

interface Ctx {
  figures: Figure[];
  kind: string;
}

/** Rows of records → a table, and a chart per measure that has intervals. */
function records(rows: [string, Obj][], path: string, ctx: Ctx, labelColumn: boolean): string {
  const cells = rows.map(([label, o]) => [label, new Map(flatCells(o))] as const);
  const cols = [...new Set(cells.flatMap(([, m]) => [...m.keys()]))];
  const shown = cells.slice(0, MAX_ROWS);
  let html = table(
    [...(labelColumn ? [""] : []), ...cols],
    shown.map(([label, m]) => [...(labelColumn ? [label] : []), ...cols.map((c) => m.get(c) ?? null)]),
  );
  if (cells.length > MAX_ROWS) html += `<p class="note">${esc(`${cells.length - MAX_ROWS} more rows not shown; see the JSON file`)}</p>`;
  // charts: measures x with an interval x_ci95
  const measures = [
    ...new Set(rows.flatMap(([, o]) => Object.keys(o).filter((k) => typeof o[k] === "number" && isInterval(o[`${k}_ci95`])))),
  ];
  for (const x of measures) {
    if (ctx.figures.length >= MAX_CHARTS || rows.length > 40) break;
    const id = `eval-${safeId(ctx.kind)}-${safeId(path)}-${safeId(x)}`;
    const title = `${ctx.kind}: ${x} (95% CI)${path ? `, ${path}` : ""}`;
    ctx.figures.push({
      id,
      title,
      metrics: [x],
      svg: dotChart({
        id,
        title,
        xLabel: x,
        metrics: [x],
        items: rows.map(([label, o]) => {
          const iv = o[`${x}_ci95`] as [number | null, number | null];
          return { label, value: o[x] as number, low: iv[0], high: iv[1] };
        }),
      }),
    });
  }
  return html;
}

function render(value: unknown, path: string, depth: number, ctx: Ctx): string {
  const h = (s: string) => (path ? `<h4>${esc(s)}</h4>` : "");
  if (depth > MAX_DEPTH) return `${h(path)}<pre>${esc(JSON.stringify(value).slice(0, 2000))}</pre>`;
  if (isMatrix(value)) {
    return (
      h(path) +
      table(
        ["", ...value[0].map((_, j) => String(j))],
        value.map((r, i) => [String(i), ...r]),
      )
    );
  }
  if (Array.isArray(value)) {
    if (value.length && value.every(isObj))
      return (
        h(path) +
        records(
          value.map((o, i) => [labelOf(o as Obj, String(i)), o as Obj]),
          path,
          ctx,
          !value.every((o) => hasLabel(o as Obj)),
        ) +
        value
          .slice(0, 20)
          .map((o, i) => nestedOf(o as Obj, `${path}[${labelOf(o as Obj, String(i))}]`, depth, ctx))
          .join("")
      );
    return `${h(path)}<pre>${esc(JSON.stringify(value).slice(0, 2000))}</pre>`;
  }
  if (isObj(value)) {
    const entries = Object.entries(value);
    if (entries.length && entries.every(([, v]) => isObj(v)) && entries.every(([, v]) => flatCells(v as Obj).length > 0)) {
      return (
        h(path) +
        records(
          entries.map(([k, v]) => [k, v as Obj]),
          path,
          ctx,
          true,
        ) +
        entries
          .slice(0, 20)
          .map(([k, v]) => nestedOf(v as Obj, `${path}.${k}`, depth, ctx))
          .join("")
      );
    }
    const flat = flatCells(value);
    return h(path) + (flat.length ? kvTable(flat) : "") + nestedOf(value, path, depth, ctx);
  }
  return `${h(path)}<p>${esc(String(value))}</p>`;
}

function nestedOf(o: Obj, path: string, depth: number, ctx: Ctx): string {
  return nested(o)
    .map(([k, v]) => render(v, path ? `${path}.${k}` : k, depth + 1, ctx))
    .join("");
}

/** One evaluation's JSON as HTML tables, plus the charts it gave rise to. */
export function jsonSection(kind: string, value: unknown): { html: string; figures: Figure[] } {
  const ctx: Ctx = { figures: [], kind };
  return { html: render(value, "", 0, ctx), figures: ctx.figures };
}
