/**
 * A download's progress on stderr, in bytes and bytes per second: a live bar on a terminal, otherwise a line every
 * few seconds and one per finished file (CI logs); nothing when quiet.
 */
import cliProgress from "cli-progress";

export interface ByteProgress {
  add(bytes: number): void; // bytes received (of the transfer's total)
  file(name: string): void; // the file now downloading
  done(name: string): void; // a file finished
  stop(): void;
}

/** 1234567 → "1.23 MB" (decimal units, as the Hub shows sizes). */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** `total` bytes to receive, of which `start` are already on disk (a resumed download). */
export function byteProgress(label: string, total: number, start: number, o: { quiet?: boolean } = {}): ByteProgress {
  if (o.quiet) return { add() {}, file() {}, done() {}, stop() {} };
  const t0 = Date.now();
  let got = start;
  let current = "";
  const speed = () => `${formatBytes(Math.round((got - start) / Math.max((Date.now() - t0) / 1000, 1e-3)))}/s`;
  const fields = () => ({ bytes: `${formatBytes(got)} / ${formatBytes(total)}`, speed: speed(), file: current });
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {bytes} {speed} {file}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(Math.max(total, 1), start, fields());
    return {
      add(n) {
        got += n;
        bar.update(got, fields());
      },
      file(name) {
        current = name;
        bar.update(got, fields());
      },
      done() {},
      stop: () => bar.stop(),
    };
  }
  let last = Date.now();
  const line = (what: string) => {
    last = Date.now();
    const pct = total > 0 ? ` (${Math.floor((100 * got) / total)}%)` : "";
    process.stderr.write(`${label}: ${formatBytes(got)} / ${formatBytes(total)}${pct}, ${speed()}, ${what}\n`);
  };
  return {
    add(n) {
      got += n;
      if (Date.now() - last >= 5000) line(current);
    },
    file(name) {
      current = name;
    },
    done(name) {
      line(`${name} done`);
    },
    stop() {},
  };
}
