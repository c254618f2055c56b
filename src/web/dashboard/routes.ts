/**
 * The dashboard's HTTP API.
 *   GET /api/runs                         the run list (name, preset, status, iteration, best validation gain, …)
 *   GET /api/metrics?run=ID&from=N&generation=G
 *                                         metrics lines from the N-th on, as the file has them (no re-encoding);
 *                                         a stale generation (the file was rewritten) gets every line from 0
 *   GET /api/transcripts?run=ID[&iteration=&agent=&round=&episode=&offset=&limit=]
 *                                         matching transcript records, read back by byte range
 *   GET /api/transcript-iterations?run=ID the iterations that have transcripts
 *   GET /api/stream?run=ID&from=G:N…[&transcripts=ID]
 *                                         server-sent events: `metrics` (new lines of each run, from its cursor),
 *                                         `reset` (a file was rewritten: start that run again), `runs` (the run list,
 *                                         when it changed), `transcripts` (the focus run has new records)
 * Every `pollMs` a stream looks at the files (one stat each; the appended bytes only when they grew).
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { HttpError } from "../http.ts";
import type { WatchedRun } from "./run.ts";
import type { RunsIndex } from "./runs.ts";

export interface DashboardOptions {
  index: RunsIndex;
  pollMs?: number; // how often a live stream looks for new lines (default 1000)
  heartbeatMs?: number; // a comment line after this long without events, so proxies keep the stream (default 15000)
  signal?: AbortSignal; // ends every stream (server shutdown)
}

const MAX_LIMIT = 500;

/** A query parameter as a non-negative integer (absent: undefined). */
function intParam(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^\d{1,9}$/.test(value))
    throw new HttpError(400, "E_BAD_QUERY", `${name} must be a non-negative integer, got "${value.slice(0, 40)}"`);
  return Number(value);
}

function runOf(index: RunsIndex, id: string | undefined): WatchedRun {
  if (!id) throw new HttpError(400, "E_BAD_QUERY", "run is required", "GET /api/runs lists the run ids");
  index.refresh();
  const run = index.get(id);
  if (!run)
    throw new HttpError(404, "E_NO_RUN", `no run "${id.slice(0, 200)}" under the dashboard's folder`, "GET /api/runs lists the run ids");
  return run;
}

const json = (body: string) => new Response(body, { headers: { "Content-Type": "application/json; charset=utf-8" } });

/** `{"run":…,"generation":…,"from":…,"total":…,"lines":[…]}` with the lines' own text. */
function metricsBody(run: WatchedRun, from: number): string {
  const m = run.metrics;
  const lines = m.lines.slice(from);
  return `{"run":${JSON.stringify(run.id)},"generation":${m.generation},"from":${from},"total":${m.count},"lines":[${lines.join(",")}]}`;
}

export function mountDashboard(app: Hono, o: DashboardOptions): void {
  const { index } = o;
  const pollMs = o.pollMs ?? 1000;
  const heartbeatMs = o.heartbeatMs ?? 15000;

  app.get("/api/runs", (c) => {
    index.refresh();
    return c.json({ root: index.root, runs: index.list().map((r) => r.summary()) });
  });

  app.get("/api/metrics", (c) => {
    const run = runOf(index, c.req.query("run"));
    run.metrics.keepLines();
    run.refresh();
    const generation = intParam(c.req.query("generation"), "generation");
    let from = intParam(c.req.query("from"), "from") ?? 0;
    if (generation !== undefined && generation !== run.metrics.generation) from = 0;
    return json(metricsBody(run, Math.min(from, run.metrics.count)));
  });

  app.get("/api/transcripts", (c) => {
    const run = runOf(index, c.req.query("run"));
    const t = run.transcripts();
    t.refresh();
    const q = (k: string) => intParam(c.req.query(k), k);
    const limit = Math.min(q("limit") ?? 50, MAX_LIMIT);
    const page = t.query({
      iteration: q("iteration"),
      agent: q("agent"),
      round: q("round"),
      episode: q("episode"),
      offset: q("offset"),
      limit,
    });
    return json(
      `{"run":${JSON.stringify(run.id)},"generation":${t.generation},"total":${page.total},"offset":${page.offset},"records":[${page.records.join(",")}]}`,
    );
  });

  app.get("/api/transcript-iterations", (c) => {
    const run = runOf(index, c.req.query("run"));
    const t = run.transcripts();
    t.refresh();
    return c.json({ run: run.id, generation: t.generation, count: t.count, iterations: t.iterations });
  });

  app.get("/api/stream", (c) => {
    index.refresh();
    const ids = c.req.queries("run") ?? [];
    const froms = c.req.queries("from") ?? [];
    if (ids.length > 16) throw new HttpError(400, "E_BAD_QUERY", `at most 16 runs per stream, got ${ids.length}`);
    const cursors = ids.map((id, k) => {
      const run = runOf(index, id);
      run.metrics.keepLines();
      const m = /^(\d+):(\d+)$/.exec(froms[k] ?? "");
      return { id, generation: m ? Number(m[1]) : -1, count: m ? Number(m[2]) : 0, fresh: true };
    });
    const focusId = c.req.query("transcripts");
    const focus = focusId ? { run: runOf(index, focusId), generation: -1, count: -1 } : null;

    return streamSSE(c, async (stream) => {
      let runsSent = "";
      let runsAt = -Infinity;
      let lastWrite = Date.now();
      const send = async (event: string, data: string) => {
        await stream.writeSSE({ event, data });
        lastWrite = Date.now();
      };
      while (!stream.aborted && !stream.closed && !o.signal?.aborted) {
        index.refresh();
        for (const cur of cursors) {
          const run = index.get(cur.id);
          if (!run) continue;
          const m = run.metrics;
          if (m.generation !== cur.generation) {
            if (cur.generation !== -1 || cur.count > 0) await send("reset", JSON.stringify({ run: cur.id, generation: m.generation }));
            cur.generation = m.generation;
            cur.count = 0;
          }
          if (cur.count > m.count) cur.count = m.count;
          if (m.count > cur.count || cur.fresh) {
            await send("metrics", metricsBody(run, cur.count));
            cur.count = m.count;
            cur.fresh = false;
          }
        }
        if (focus) {
          const t = focus.run.transcripts();
          if (t.count !== focus.count || t.generation !== focus.generation) {
            focus.count = t.count;
            focus.generation = t.generation;
            await send(
              "transcripts",
              JSON.stringify({
                run: focus.run.id,
                generation: t.generation,
                count: t.count,
                last_iteration: t.iterations[t.iterations.length - 1] ?? null,
              }),
            );
          }
        }
        if (Date.now() - runsAt >= 2000) {
          runsAt = Date.now();
          const list = JSON.stringify(index.list().map((r) => r.summary()));
          if (list !== runsSent) {
            runsSent = list;
            await send("runs", `{"runs":${list}}`);
          }
        }
        if (Date.now() - lastWrite >= heartbeatMs) {
          await stream.write(": ping\n\n");
          lastWrite = Date.now();
        }
        await stream.sleep(pollMs);
      }
    });
  });
}
