// The dashboard page: the run list, the metric charts of the ticked runs, the talk graph and the transcripts of the
// focus run. Data: GET /api/metrics once per run, then one server-sent-event stream brings what is appended.
import { ChartGrid, RunData } from "/charts.js";
import { api, clear, el, signed } from "/dom.js";
import { TalkGraph } from "/graph.js";
import { TranscriptBrowser } from "/transcripts.js";

const $ = (id) => document.getElementById(id);
const stats = document.documentElement.dataset; // timings, for people and tests: loadMs, lastUpdateMs, updates

const state = {
  runs: [], // summaries from the server
  selected: [], // ticked run ids
  focus: null,
  data: new Map(), // run id → RunData
  stream: null,
};

function showError(err) {
  const box = $("error");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}
$("error").addEventListener("click", () => ($("error").hidden = true));

const charts = new ChartGrid($("charts"), $("empty-metrics"));
const graph = new TalkGraph({
  slider: $("graph-slider"),
  label: $("graph-iteration"),
  cumulative: $("graph-cumulative"),
  graph: $("graph"),
  matrix: $("matrix"),
});
const transcripts = new TranscriptBrowser({
  slider: $("t-slider"),
  label: $("t-iteration"),
  latest: $("t-latest"),
  agent: $("t-agent"),
  round: $("t-round"),
  episode: $("t-episode"),
  list: $("transcripts"),
  count: $("transcripts-count"),
  more: $("t-more"),
  onError: showError,
});

function summaryOf(id) {
  return state.runs.find((r) => r.id === id) || null;
}

// ---- selection, kept in the URL's fragment (#run=a&run=b&focus=a) so that a reload shows the same runs

function readFragment() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { runs: p.getAll("run"), focus: p.get("focus") };
}

function writeFragment() {
  const p = new URLSearchParams();
  for (const id of state.selected) p.append("run", id);
  if (state.focus) p.set("focus", state.focus);
  history.replaceState(null, "", `#${p}`);
}

// ---- the run list

const STATUS_TEXT = { running: "running", finished: "finished", stopped: "stopped", starting: "starting" };

function renderRuns() {
  const body = $("runs").tBodies[0];
  clear(body);
  $("no-runs").hidden = state.runs.length > 0;
  for (const r of state.runs) {
    const ticked = state.selected.includes(r.id);
    const box = el("input", {
      type: "checkbox",
      checked: ticked,
      "aria-label": `show ${r.id}`,
      onchange: (e) => toggle(r.id, e.target.checked),
    });
    const name = el("button", {
      type: "button",
      class: "link",
      text: r.name,
      title: "make this the focus run",
      onclick: () => {
        if (!state.selected.includes(r.id)) toggle(r.id, true);
        setFocus(r.id);
      },
    });
    body.append(
      el(
        "tr",
        { class: r.id === state.focus ? "focus" : "", dataset: { run: r.id } },
        el("td", {}, box),
        el("td", {}, name),
        el("td", { text: r.preset ?? "–" }),
        el("td", {}, el("span", { class: `badge ${r.status}`, text: STATUS_TEXT[r.status] || r.status })),
        el("td", { class: "num", text: `${r.iteration ?? "–"}${r.iterations ? ` / ${r.iterations}` : ""}` }),
        el("td", { class: "num", text: r.best_val_gain === null ? "–" : `${signed(r.best_val_gain, 4)} (it. ${r.best_val_iteration})` }),
      ),
    );
  }
  const focus = $("focus");
  clear(focus).append(
    ...state.selected.map((id) => el("option", { value: id, text: id, selected: id === state.focus ? "selected" : null })),
  );
}

async function toggle(id, on) {
  state.selected = on ? [...new Set([...state.selected, id])] : state.selected.filter((x) => x !== id);
  if (!state.selected.includes(state.focus)) state.focus = state.selected[0] || null;
  if (on && !state.selected.includes(state.focus)) state.focus = id;
  writeFragment();
  await loadRuns();
  renderRuns();
  draw();
  focusChanged();
  connect();
}

function setFocus(id) {
  if (id === state.focus) return;
  state.focus = id;
  writeFragment();
  renderRuns();
  focusChanged();
  connect();
}

function focusChanged() {
  const s = summaryOf(state.focus);
  graph.setRun(state.focus ? state.data.get(state.focus) : null, s ? s.agents : []);
  void transcripts.setRun(s);
}

$("focus").addEventListener("change", (e) => setFocus(e.target.value));

// ---- metrics

/** Fetches every line of the selected runs that are not loaded yet. */
async function loadRuns() {
  await Promise.all(
    state.selected
      .filter((id) => !state.data.has(id))
      .map(async (id) => {
        const rd = new RunData(id);
        state.data.set(id, rd);
        await resync(rd);
      }),
  );
}

async function resync(rd) {
  try {
    const res = await api(`/api/metrics?run=${encodeURIComponent(rd.id)}`);
    rd.reset();
    rd.generation = res.generation;
    rd.append(res.lines);
  } catch (err) {
    showError(err);
  }
}

function draw() {
  const t0 = performance.now();
  const runs = state.selected.map((id) => state.data.get(id)).filter(Boolean);
  const points = charts.render(runs);
  graph.update();
  $("chart-note").textContent = runs.length
    ? `${points} iterations${points > 2 * charts.width() ? " (drawn downsampled: min and max per pixel column)" : ""}`
    : "tick a run";
  const ms = performance.now() - t0;
  stats.lastDrawMs = ms.toFixed(1);
  return ms;
}

// ---- live updates

function connect() {
  if (state.stream) state.stream.close();
  const q = new URLSearchParams();
  for (const id of state.selected) {
    const rd = state.data.get(id);
    q.append("run", id);
    q.append("from", `${rd ? rd.generation : -1}:${rd ? rd.count : 0}`);
  }
  if (state.focus) q.set("transcripts", state.focus);
  const es = new EventSource(`/api/stream?${q}`);
  state.stream = es;
  const live = $("live");
  es.onopen = () => {
    live.textContent = "live";
    live.className = "live on";
  };
  es.onerror = () => {
    if (state.stream !== es) return;
    live.textContent = "reconnecting…";
    live.className = "live off";
    es.close();
    setTimeout(() => {
      if (state.stream === es) connect();
    }, 2000);
  };
  es.addEventListener("metrics", (ev) => {
    const t0 = performance.now();
    const d = JSON.parse(ev.data);
    const rd = state.data.get(d.run);
    if (!rd) return;
    if (d.generation !== rd.generation || d.from !== rd.count) {
      if (d.from !== 0) return void resync(rd).then(draw);
      rd.reset();
      rd.generation = d.generation;
    }
    if (!d.lines.length) return;
    rd.append(d.lines);
    draw();
    stats.lastUpdateMs = (performance.now() - t0).toFixed(1);
    stats.updates = String(Number(stats.updates || 0) + 1);
  });
  es.addEventListener("reset", (ev) => {
    const d = JSON.parse(ev.data);
    const rd = state.data.get(d.run);
    if (!rd) return;
    rd.reset();
    rd.generation = d.generation;
    draw();
  });
  es.addEventListener("runs", (ev) => {
    state.runs = JSON.parse(ev.data).runs;
    renderRuns();
  });
  es.addEventListener("transcripts", (ev) => {
    const d = JSON.parse(ev.data);
    if (d.run === state.focus) void transcripts.refreshIterations();
  });
}

// ---- start

async function start() {
  try {
    const res = await api("/api/runs");
    $("root").textContent = res.root;
    state.runs = res.runs;
    const frag = readFragment();
    const known = new Set(state.runs.map((r) => r.id));
    state.selected = frag.runs.filter((id) => known.has(id));
    if (!state.selected.length && state.runs.length) {
      const newest = [...state.runs].sort((a, b) => String(b.created).localeCompare(String(a.created)))[0];
      state.selected = [newest.id];
    }
    state.focus = frag.focus && state.selected.includes(frag.focus) ? frag.focus : state.selected[0] || null;
    writeFragment();
    renderRuns();
    await loadRuns();
    draw();
    focusChanged();
    stats.loadMs = performance.now().toFixed(0);
    stats.ready = "1";
  } catch (err) {
    showError(err);
  }
  connect();
}

void start();
