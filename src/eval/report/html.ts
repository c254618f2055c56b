/**
 * HTML building blocks of the report: tables, figures, sections and the page itself (inline CSS, no scripts, no
 * external requests). Every cell and caption is escaped; only the report's own SVG goes in unescaped.
 */
import { esc, fmtNum } from "./svg.ts";
import type { Figure } from "./training.ts";

export type Cell = string | number | boolean | null | undefined;

export function cell(v: Cell, digits = 4): string {
  if (typeof v === "number") return fmtNum(v, digits);
  if (v === null || v === undefined) return "–";
  return String(v);
}

/** "0.612 [0.592, 0.632]": a value with its interval. */
export function withInterval(v: number | null | undefined, iv: readonly (number | null)[] | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (iv?.length !== 2 || iv.some((x) => x === null || !Number.isFinite(x))) return fmtNum(v, digits);
  return `${fmtNum(v, digits)} [${fmtNum(iv[0], digits)}, ${fmtNum(iv[1], digits)}]`;
}

export function table(head: readonly string[], rows: readonly (readonly Cell[])[], caption?: string): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join("");
  const tr = rows
    .map((r) => `<tr>${r.map((c) => `<td${typeof c === "number" ? ` class="num"` : ""}>${esc(cell(c))}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table>${caption ? `<caption>${esc(caption)}</caption>` : ""}<thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

/** Key–value rows. */
export function kvTable(rows: readonly [string, Cell][], caption?: string): string {
  return table(
    ["", ""],
    rows.map(([k, v]) => [k, v]),
    caption,
  ).replace("<thead><tr><th></th><th></th></tr></thead>", "");
}

export function figureHtml(f: Figure): string {
  return `<figure id="fig-${esc(f.id)}">${f.svg}${f.caption ? `<figcaption>${esc(f.caption)}</figcaption>` : ""}<div class="file">report/${esc(f.id)}.png</div></figure>`;
}

export function para(s: string, cls?: string): string {
  return `<p${cls ? ` class="${esc(cls)}"` : ""}>${esc(s)}</p>`;
}

export interface Section {
  id: string;
  title: string;
  body: string; // HTML
}

const CSS = `
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;padding:16px 28px;color:#222;background:#fafafa;line-height:1.4}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:36px}h3{font-size:15px;margin:22px 0 8px}h4{font-size:13px;margin:14px 0 6px;color:#444}
nav{font-size:13px;margin:8px 0 16px}nav a{margin-right:14px;color:#2c6fad;text-decoration:none}
.grid{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px;max-width:100%;overflow-x:auto}
figcaption{font-size:12px;color:#555;max-width:620px;margin:4px 4px 0}
.file{font-size:10px;color:#999;margin:2px 4px 0;font-family:"DejaVu Sans Mono",monospace}
table{border-collapse:collapse;font-size:12px;margin:6px 0 14px;background:#fff}
caption{text-align:left;font-weight:bold;padding:4px 0;font-size:12px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top;max-width:520px;overflow-wrap:anywhere}
th{background:#f0f0f0;white-space:nowrap}td.num{text-align:right;font-family:"DejaVu Sans Mono",monospace;white-space:nowrap}
.note{font-size:12px;color:#555;max-width:1000px}
pre,.mono{font-family:"DejaVu Sans Mono",monospace;font-size:11px;white-space:pre-wrap;overflow-wrap:anywhere}
`;

/** The whole page: title, table of contents, sections. Self-contained: no scripts, no external resources. */
export function page(title: string, subtitle: string, sections: readonly Section[]): string {
  const nav = sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join("");
  const body = sections.map((s) => `<section id="${esc(s.id)}">\n<h2>${esc(s.title)}</h2>\n${s.body}\n</section>`).join("\n");
  return (
    `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
    `<title>${esc(title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n<h1>${esc(title)}</h1>\n${para(subtitle, "note")}\n<nav>${nav}</nav>\n${body}\n</body>\n</html>\n`
  );
}
