"use strict";
const $ = (id) => document.getElementById(id);
const FLOWER = document.querySelector('meta[name="flower-url"]');
$("flower-link").href = FLOWER ? FLOWER.content : "#";
let submitted = [];
// The key: this browser's storage, or a link's #key=... (a fragment is never sent to the
// server). A link's key never silently replaces a stored one: the page asks first. Either
// way the fragment leaves the address bar (and the history) at once.
const KEY = "spamq-api-key";
const fragmentKey = (new URLSearchParams(location.hash.slice(1)).get("key") || "").trim();
if (location.hash) history.replaceState(null, "", location.pathname + location.search);
const storedKey = localStorage.getItem(KEY) || "";
if (fragmentKey && !storedKey) localStorage.setItem(KEY, fragmentKey);
$("api-key").value = localStorage.getItem(KEY) || "";
if (fragmentKey && storedKey && fragmentKey !== storedKey) {
  $("key-notice").hidden = false;
  $("key-use").addEventListener("click", () => {
    localStorage.setItem(KEY, fragmentKey);
    $("api-key").value = fragmentKey;
    $("key-notice").hidden = true;
    whoami();
  });
  $("key-keep").addEventListener("click", () => { $("key-notice").hidden = true; });
}
$("api-key").addEventListener("change", () => {
  localStorage.setItem(KEY, $("api-key").value.trim());
  whoami();
});
function api(url, request = {}) {
  const headers = {...(request.headers || {}), "X-API-Key": $("api-key").value.trim()};
  return fetch(url, {...request, headers});
}

// GET /v1/me: the key's id and its area of the artifact store (hdfs_input/hdfs_output go there)
async function whoami() {
  if (!$("api-key").value.trim()) { $("whoami").textContent = "No API key given."; return; }
  let resp;
  try { resp = await api("v1/me"); } catch (e) { $("whoami").textContent = "network error: " + e; return; }
  const me = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    $("whoami").className = "error";
    $("whoami").textContent = `${resp.status}: ${me.message || resp.statusText}`;
    return;
  }
  $("whoami").className = "muted";
  const area = me.store.area || "the whole store";
  const grants = me.store.grants.length ? `; granted ${me.store.grants.join(", ")}` : "";
  $("whoami").textContent = `key ${me.key_id || "(none: authentication is off)"}, store area ${area}${grants}`;
  $("whoami").dataset.keyId = me.key_id || "";
  $("whoami").dataset.area = me.store.area;
}
whoami();

function showError(message) {
  $("status").className = "error";
  $("status").textContent = message;
}

async function submit(request, texts) {
  submitted = texts;
  $("results").tBodies[0].replaceChildren();
  $("status").className = "muted";
  $("status").textContent = "submitting...";
  let resp;
  try { resp = await api("v1/jobs", request); } catch (e) { return showError("network error: " + e); }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) return showError(`${resp.status}: ${body.message || resp.statusText}` + (body.field ? ` (field ${body.field})` : ""));
  poll(body.status_url);
}

async function poll(url) {
  const resp = await api(url.replace(/^\//, ""));
  const job = await resp.json();
  const p = job.progress || {done: 0, total: 1};
  // a store job knows its rows' total only at the end: its bar counts input bytes
  $("progress").max = Math.max(p.bytes_total || p.total || 1, 1);
  $("progress").value = p.bytes_total ? p.bytes_done : p.done;
  const eta = job.rate && job.rate.eta_s !== null ? `, ETA ${job.rate.eta_s} s` : "";
  const rate = job.rate && job.rate.rows_per_s ? `, ${job.rate.rows_per_s} rows/s${eta}` : "";
  $("status").className = "muted";
  $("status").textContent = `job ${job.id}: ${job.status}, ${p.done}/${p.total === null ? "?" : p.total} scored${rate}`;
  if (job.status === "done") return showResults(job);
  if (["failed", "cancelled", "expired"].includes(job.status)) return showError(`job ${job.id} ${job.status}: ${job.error || ""}`);
  setTimeout(() => poll(url), 300);
}

async function showResults(job) {
  let results = job.results;
  if (!results) {
    const page = await (await api(job.results_url.replace(/^\//, "") + "?limit=1000")).json();
    results = page.results;
  }
  const rows = results.map((r, i) => {
    const tr = document.createElement("tr");
    const cells = [String(i + 1), r.label, r.spam_probability.toFixed(4), submitted[i] !== undefined ? submitted[i] : `row ${r.row !== undefined ? r.row : (r.id !== undefined ? r.id : r.ref)}`];
    cells.forEach((text, k) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (k === 1) td.className = r.label;
      if (k === 2) td.className = "p";
      tr.appendChild(td);
    });
    tr.appendChild(feedbackCell(job, r.row !== undefined ? r.row : i));
    return tr;
  });
  $("results").tBodies[0].replaceChildren(...rows);
}

// "report spam" / "not spam" on a row of a texts job: POST /v1/feedback names the job's row,
// whose text the server reads from the job (a store job's rows have no such buttons).
function feedbackCell(job, index) {
  const td = document.createElement("td");
  td.className = "feedback";
  if (job.parts_url) return td;
  const note = document.createElement("span");
  note.className = "muted";
  const buttons = [["spam", "report spam"], ["ham", "not spam"]].map(([label, title]) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = title;
    b.dataset.label = label;
    b.addEventListener("click", () => sendFeedback(job.id, index, label, buttons, note));
    return b;
  });
  td.append(...buttons, note);
  return td;
}

async function sendFeedback(jobId, index, label, buttons, note) {
  buttons.forEach((b) => { b.disabled = true; });
  note.className = "muted";
  note.textContent = " sending...";
  let resp;
  try {
    resp = await api("v1/feedback", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({items: [{job_id: jobId, index, label}]})});
  } catch (e) { resp = null; }
  const body = resp ? await resp.json().catch(() => ({})) : {};
  if (resp && resp.ok) {
    note.textContent = label === "spam" ? " reported as spam" : " reported as not spam";
  } else {
    buttons.forEach((b) => { b.disabled = false; });
    note.className = "error";
    note.textContent = resp ? ` ${resp.status}: ${body.message || resp.statusText}` : " network error";
  }
}

$("text-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const texts = $("texts").value.split("\n").map((t) => t.trim()).filter((t) => t);
  if (!texts.length) return showError("type at least one message");
  submit({method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({texts})}, texts);
});

$("file-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!$("file").files.length) return showError("choose a file first");
  const form = new FormData();
  form.append("file", $("file").files[0]);
  form.append("column", $("column").value || "text");
  submit({method: "POST", body: form}, []);
});
