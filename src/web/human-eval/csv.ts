/**
 * The answers as CSV (RFC 4180: comma-separated, CRLF rows, fields quoted when they hold a comma, quote or line
 * break). A text field that a spreadsheet would read as a formula (starting with = + - @, tab or CR) gets a leading
 * apostrophe: rater reasons and model text are untrusted.
 */
import type { AnswerRow } from "./store.ts";

export const CSV_COLUMNS = [
  "answer_id",
  "item_id",
  "rater",
  "a_system",
  "b_system",
  "left_system",
  "right_system",
  "choice",
  "winner",
  "winner_system",
  "left_is",
  "reason",
  "shown_at",
  "answered_at",
  "prompt",
] as const;

export function csvField(v: string | number | null): string {
  if (v === null) return "";
  if (typeof v === "number") return String(v);
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function answersCsv(rows: readonly AnswerRow[]): string {
  const out = [CSV_COLUMNS.join(",")];
  for (const r of rows) {
    const left = r.left_is === "a" ? r.a_system : r.b_system;
    const right = r.left_is === "a" ? r.b_system : r.a_system;
    const winnerSystem = r.winner === "tie" ? "tie" : r.winner === "a" ? r.a_system : r.b_system;
    const values: (string | number | null)[] = [
      r.id,
      r.item_id,
      r.rater,
      r.a_system,
      r.b_system,
      left,
      right,
      r.choice,
      r.winner,
      winnerSystem,
      r.left_is,
      r.reason,
      r.shown_at,
      r.answered_at,
      r.prompt,
    ];
    out.push(values.map(csvField).join(","));
  }
  return out.join("\r\n") + "\r\n";
}
