// The rating page: sign in with a name (and an optional token), then answer one blinded comparison after another.
// Prompts and responses are model output (untrusted): they are set with textContent only.
import { api } from "/dom.js";

const $ = (id) => document.getElementById(id);
let current = null; // the item on screen
let busy = false;

function showError(err) {
  $("error").textContent = err instanceof Error ? err.message : String(err);
  $("error").hidden = false;
}
function hideError() {
  $("error").hidden = true;
}
$("error").addEventListener("click", hideError);

function show(section) {
  for (const id of ["signin", "compare", "done"]) $(id).hidden = id !== section;
}

function progress(p) {
  $("count").textContent = `${p.done} of ${p.total} done`;
  $("progress").max = Math.max(1, p.total);
  $("progress").value = p.done;
  document.body.dataset.done = String(p.done);
  document.body.dataset.total = String(p.total);
}

function signedIn(name) {
  $("who").textContent = `signed in as ${name}`;
  $("signout").hidden = false;
}

async function next() {
  const res = await api("/api/eval/next");
  progress(res);
  current = res.item;
  if (!current) {
    $("done-text").textContent = `You answered all ${res.total} comparisons.`;
    document.body.dataset.item = "";
    document.body.dataset.state = "ready";
    show("done");
    return;
  }
  $("prompt").textContent = current.prompt;
  $("left").textContent = current.left;
  $("right").textContent = current.right;
  $("reason").value = "";
  document.body.dataset.item = current.id;
  document.body.dataset.state = "ready"; // for tests: this item is on screen and can be answered
  show("compare");
}

async function answer(choice) {
  if (!current || busy) return;
  busy = true;
  document.body.dataset.state = "busy";
  for (const b of document.querySelectorAll(".choices button")) b.disabled = true;
  try {
    const reason = $("reason").value.trim();
    const res = await api("/api/eval/answer", { json: { item: current.id, choice, ...(reason ? { reason } : {}) } });
    progress(res);
    hideError();
    await next();
  } catch (err) {
    showError(err.code ? err : new Error(`the answer was not saved (${err.message}); try again`));
    if (err.code === "E_NOT_SIGNED_IN") show("signin");
    else if (err.code === "E_ALREADY_ANSWERED") await next().catch(showError);
  } finally {
    if (document.body.dataset.state === "busy") document.body.dataset.state = "ready";
    busy = false;
    for (const b of document.querySelectorAll(".choices button")) {
      b.disabled = false;
      b.blur();
    }
  }
}

for (const b of document.querySelectorAll(".choices button")) b.addEventListener("click", () => answer(b.dataset.choice));
document.addEventListener("keydown", (e) => {
  if (
    $("compare").hidden ||
    e.target instanceof HTMLTextAreaElement ||
    e.target instanceof HTMLInputElement ||
    e.ctrlKey ||
    e.metaKey ||
    e.altKey
  )
    return;
  const choice = { a: "left", t: "tie", b: "right" }[e.key.toLowerCase()];
  if (choice) {
    e.preventDefault();
    void answer(choice);
  }
});

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const token = $("token").value;
    const res = await api("/api/eval/login", { json: { name: $("name").value, ...(token ? { token } : {}) } });
    $("token").value = "";
    hideError();
    signedIn(res.rater.name);
    await next();
  } catch (err) {
    showError(err);
  }
});

$("signout").addEventListener("click", async () => {
  await api("/api/eval/logout", { method: "POST" }).catch(showError);
  $("who").textContent = "";
  $("signout").hidden = true;
  current = null;
  show("signin");
});

async function start() {
  try {
    const s = await api("/api/eval/session");
    if (!s.rater) {
      show("signin");
      if (s.require_token) $("token").required = true;
      return;
    }
    signedIn(s.rater.name);
    await next();
  } catch (err) {
    showError(err);
    show("signin");
  }
}

void start();
