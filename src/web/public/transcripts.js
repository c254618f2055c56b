// The transcript browser: the sampled agent-rounds of the focus run (transcripts.jsonl), filtered by iteration,
// agent, round and episode, fetched a page at a time. Everything an agent wrote is model output: shown as text.
import { api, clear, el, fmt, signed } from "/dom.js";

const PAGE = 50;

function option(value, text, selected) {
  return el("option", { value, text, selected: selected ? "selected" : null });
}

export class TranscriptBrowser {
  constructor({ slider, label, latest, agent, round, episode, list, count, more, onError }) {
    Object.assign(this, { slider, label, latest, agent, round, episode, list, count, more, onError });
    this.run = null;
    this.iterations = [];
    this.records = [];
    this.total = 0;
    this.seq = 0;
    slider.addEventListener("input", () => {
      latest.checked = Number(slider.value) === Number(slider.max);
      this.showIteration();
      this.load();
    });
    latest.addEventListener("change", () => {
      if (latest.checked) this.slider.value = this.slider.max;
      this.showIteration();
      this.load();
    });
    for (const s of [agent, round, episode]) s.addEventListener("change", () => this.load());
    more.addEventListener("click", () => this.load(true));
  }

  /** A new focus run (its summary from the run list gives the agents, rounds and episodes). */
  async setRun(summary) {
    this.run = summary ? summary.id : null;
    const keep = (sel) => sel.value;
    const [a, r, e] = [keep(this.agent), keep(this.round), keep(this.episode)];
    clear(this.agent).append(
      option("", "all", true),
      ...(summary ? summary.agents.map((kind, i) => option(String(i), `${i} (${kind})`, a === String(i))) : []),
    );
    clear(this.round).append(
      option("", "all", true),
      ...Array.from({ length: summary?.rounds || 0 }, (_, i) => option(String(i + 1), String(i + 1), r === String(i + 1))),
    );
    clear(this.episode).append(
      option("", "all", true),
      ...Array.from({ length: summary?.transcript_episodes || 0 }, (_, i) => option(String(i), String(i), e === String(i))),
    );
    this.iterations = [];
    await this.refreshIterations();
  }

  /** The run has new transcripts (a live event): extend the slider, and reload when following the latest. */
  async refreshIterations() {
    if (!this.run) {
      clear(this.list);
      return;
    }
    const run = this.run;
    try {
      const res = await api(`/api/transcript-iterations?run=${encodeURIComponent(run)}`);
      if (run !== this.run) return;
      const before = this.currentIteration();
      this.iterations = res.iterations;
      this.count.textContent = `${res.count} records over ${res.iterations.length} iterations`;
      this.slider.max = String(Math.max(0, this.iterations.length - 1));
      this.slider.disabled = this.iterations.length === 0;
      if (this.latest.checked || before === null) this.slider.value = this.slider.max;
      else this.slider.value = String(Math.max(0, this.iterations.indexOf(before)));
      this.showIteration();
      if (this.latest.checked || before === null || this.currentIteration() !== before) await this.load();
    } catch (err) {
      this.onError(err);
    }
  }

  currentIteration() {
    return this.iterations.length ? (this.iterations[Number(this.slider.value)] ?? null) : null;
  }

  showIteration() {
    const it = this.currentIteration();
    this.label.textContent = it === null ? "–" : String(it);
  }

  async load(append = false) {
    const run = this.run,
      it = this.currentIteration();
    if (!run || it === null) {
      clear(this.list).append(el("p", { class: "muted", text: run ? "no transcripts yet" : "" }));
      this.more.hidden = true;
      return;
    }
    const q = new URLSearchParams({ run, iteration: String(it), limit: String(PAGE), offset: String(append ? this.records.length : 0) });
    for (const [k, sel] of [
      ["agent", this.agent],
      ["round", this.round],
      ["episode", this.episode],
    ])
      if (sel.value !== "") q.set(k, sel.value);
    const seq = ++this.seq;
    try {
      const res = await api(`/api/transcripts?${q}`);
      if (seq !== this.seq) return; // a newer request is on its way
      if (!append) {
        this.records = [];
        clear(this.list);
      }
      this.records.push(...res.records);
      this.total = res.total;
      for (const r of res.records) this.list.append(recordCard(r));
      if (!this.records.length) this.list.append(el("p", { class: "muted", text: "no record matches these filters" }));
      this.more.hidden = this.records.length >= this.total;
      this.list.dataset.iteration = String(it);
      this.list.dataset.records = String(this.records.length);
    } catch (err) {
      this.onError(err);
    }
  }
}

function field(label, ...content) {
  return el("div", { class: "field" }, el("span", { class: "label", text: label }), el("div", { class: "value" }, ...content));
}

/** One agent-round: header, excerpt, inbox, state, sent messages with their values, and the raw prompt/completion. */
export function recordCard(r) {
  const values = Array.isArray(r.message_values) ? [...r.message_values] : [];
  const valueOfMessage = (m) => {
    const k = values.findIndex((v) => v.to === m.to && v.text === m.text);
    return k < 0 ? null : values.splice(k, 1)[0].value;
  };
  const sent = Array.isArray(r.sent) ? r.sent : [];
  const received = Array.isArray(r.received) ? r.received : [];
  const violations = Array.isArray(r.violations) ? r.violations : [];
  const honesty = r.honesty && typeof r.honesty === "object" ? `${r.honesty.true}/${r.honesty.claims} true` : null;
  return el(
    "article",
    { class: "record" },
    el(
      "header",
      {},
      el("strong", { text: `iteration ${r.iteration} · episode ${r.episode} · round ${r.round} · agent ${r.agent}` }),
      el("span", { class: "muted", text: ` ${r.kind}${r.adapter ? ` (${r.adapter})` : ""}` }),
      el(
        "span",
        { class: "stats" },
        el("span", { text: `gain ${signed(r.information_gain)}` }),
        el("span", { text: `oracle ${signed(r.oracle_gain)}` }),
        el("span", { text: `reward ${signed(r.reward)}` }),
        honesty ? el("span", { text: honesty }) : null,
        violations.length ? el("span", { class: "bad", text: `violations: ${violations.join(", ")}` }) : null,
      ),
    ),
    field("excerpt", el("p", { class: "text", text: r.excerpt ?? "" })),
    field(
      "inbox",
      received.length
        ? el(
            "ul",
            { class: "msgs" },
            received.map((m) =>
              el("li", {}, el("span", { class: "who", text: `from ${m.from}` }), el("span", { class: "text", text: m.text })),
            ),
          )
        : el("span", { class: "muted", text: "(empty)" }),
    ),
    field("state", el("p", { class: "text state", text: r.state ?? "" })),
    field(
      "sent",
      sent.length
        ? el(
            "ul",
            { class: "msgs" },
            sent.map((m) => {
              const v = valueOfMessage(m);
              return el(
                "li",
                {},
                el("span", { class: "who", text: `to ${m.to}` }),
                el("span", { class: "text", text: m.text }),
                el("span", {
                  class: v === null ? "value muted" : v >= 0 ? "value good" : "value bad",
                  text: v === null ? "value –" : `value ${signed(v)}`,
                }),
              );
            }),
          )
        : el("span", { class: "muted", text: "(none)" }),
    ),
    el(
      "details",
      {},
      el("summary", { text: `prompt and completion (log p with state ${fmt(r.raw_logprob)}, without ${fmt(r.baseline_logprob)})` }),
      el("pre", { class: "text", text: r.prompt ?? "" }),
      el("pre", { class: "text completion", text: r.completion ?? "" }),
    ),
  );
}
