/**
 * Progress on stderr: a live bar on a terminal, a line every few seconds otherwise (CI logs), nothing when quiet.
 */
import cliProgress from "cli-progress";

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progress(label: string, total: number, opts: { quiet?: boolean } = {}): Progress {
  if (opts.quiet) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} {eta_formatted} {status}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { status: "" });
    return {
      update: (done, fields) => bar.update(done, { status: formatFields(fields) }),
      stop: () => bar.stop(),
    };
  }
  const t0 = Date.now();
  let lastPrint = 0;
  return {
    update(done, fields) {
      const now = Date.now();
      if (now - lastPrint < 5000 && done < total) return;
      lastPrint = now;
      process.stderr.write(`${label} ${done}/${total} (${((now - t0) / 1000).toFixed(0)} s) ${formatFields(fields)}\n`);
    },
    stop() {},
  };
}

function formatFields(fields?: Record<string, string | number>): string {
  if (!fields) return "";
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`)
    .join(" | ");
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
}
