// The tidegate dashboard: reads /api/overview and /api/jobs, renders them, and posts the
// actions. Every value is written with textContent (never as HTML): entity and table
// names come from the source database and may contain anything.
"use strict";

const JOB_LABELS = {
  tables: "Table export",
  initial: "Initial export",
  ongoing: "Ongoing export",
  load: "Load",
};
const JOB_COLOURS = {
  init: "#8a8f98", claim: "#8a8f98", tables: "#2f6fde", initial: "#8c4fd6",
  ongoing: "#1c9c74", load: "#d9822b",
};
const OVERVIEW_EVERY_MS = 2000;
const JOBS_EVERY_MS = 1000;

const selected = new Set();
let knownEntities = [];

// --- talking to the API -------------------------------------------------------------

async function api(path, body) {
  const options = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.headers["X-Tidegate-Request"] = "1"; // the service refuses POSTs without it
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("login required");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error(data && data.error ? data.error : response.statusText);
    error.hint = data && data.hint ? data.hint : "";
    throw error;
  }
  return data;
}

function say(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = kind || "info";
  box.hidden = false;
}

// --- small DOM helpers --------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function replaceRows(id, rows) {
  document.getElementById(id).replaceChildren(...rows);
}

function facts(id, pairs) {
  const list = document.getElementById(id);
  list.replaceChildren(
    ...pairs.flatMap(([term, value, testid]) => [
      el("dt", {}, term),
      el("dd", { "data-testid": testid }, value === null || value === undefined ? "–" : value),
    ])
  );
}

const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

const utc = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "–");

// --- rendering ----------------------------------------------------------------------

function renderOverview(view) {
  document.getElementById("source-url").textContent = view.source;
  document.getElementById("target-url").textContent = view.load.target;
  renderChain(view.chain);
  renderLoad(view.load);
  renderEntities(view.entities);
  renderHistory(view.runs);
}

function renderChain(chain) {
  facts("chain", [
    ["last folder", chain.last_folder || "none yet", "chain-last"],
    ["high-water mark", chain.audit_key, "chain-hwm"],
    ["folders", number(chain.exports), "chain-exports"],
    ["pending changes", number(chain.pending_changes), "chain-pending"],
    ["data-time lag", seconds(chain.lag_seconds), "chain-lag"],
    ["newest data exported", utc(chain.last_data_at), "chain-data"],
  ].concat(chain.planned ? [["planned, not written", chain.planned, "chain-planned"]] : []));
  drawLine(document.getElementById("lag-chart"), chain.recent.map((p) => p.lag_seconds));
}

function renderLoad(load) {
  const pairs = [
    ["exports applied", number(load.applied), "load-applied"],
    ["last table export", load.last_table_export || "none", "load-last-table"],
    ["last entity run", load.last_entity_run || "none", "load-last-run"],
    ["last applied (UTC)", utc(load.last_applied_at), "load-at"],
    ["table exports to load", number(load.pending_table_exports.length), "load-pending-tables"],
    ["entity runs to load", number(load.pending_entity_runs.length), "load-pending-runs"],
  ];
  if (load.waiting) pairs.push(["being written", load.waiting, "load-waiting"]);
  if (load.error) pairs.push(["cannot read", load.error, "load-error"]);
  facts("load", pairs);
}

function renderEntities(entities) {
  knownEntities = entities.map((e) => e.name);
  for (const name of [...selected]) if (!knownEntities.includes(name)) selected.delete(name);
  replaceRows("entities", entities.map((e) => {
    const box = el("input", {
      type: "checkbox", "data-entity": e.name, "aria-label": `select ${e.name}`,
      checked: selected.has(e.name), disabled: !e.eligible,
    });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(e.name); else selected.delete(e.name);
      showSelection();
    });
    const initial = e.initial_status + (e.initial_run ? ` (run ${e.initial_run})` : "");
    return el("tr", { "data-entity-row": e.name, title: e.problem || null },
      el("td", {}, box),
      el("td", { class: "name" }, e.name),
      el("td", { class: "muted" }, e.tables.join(", ")),
      el("td", {}, e.export_class + (e.eligible ? "" : " (not eligible)")),
      el("td", { "data-field": "enabled", class: e.enabled ? "yes" : "no" }, e.enabled ? "yes" : "no"),
      el("td", { "data-field": "ongoing", class: e.ongoing ? "yes" : "no" }, e.ongoing ? "on" : "off"),
      el("td", { "data-field": "initial" }, initial),
      el("td", { "data-field": "queue", class: "num" }, number(e.queue_depth)));
  }));
  showSelection();
}

function showSelection() {
  const all = document.getElementById("select-all");
  const eligible = [...document.querySelectorAll("input[data-entity]:not(:disabled)")];
  all.checked = eligible.length > 0 && eligible.every((box) => box.checked);
  document.getElementById("selected-count").textContent =
    selected.size ? `${selected.size} selected` : "none selected";
}

function renderHistory(runs) {
  replaceRows("history", runs.map((r) => el("tr", { "data-run": `${r.job}:${r.run}`, class: r.status },
    el("td", {}, r.job), el("td", { class: "num" }, r.run),
    el("td", { "data-field": "status" }, r.status), el("td", {}, utc(r.started_at)),
    el("td", { class: "num" }, r.duration_seconds === null ? "" : r.duration_seconds.toFixed(2)),
    el("td", { class: "num" }, number(r.rows)), el("td", { class: "num" }, number(r.files)),
    el("td", { class: "num" }, bytes(r.bytes)), el("td", { class: "error" }, r.error))));
  drawBars(document.getElementById("rows-chart"), [...runs].reverse());
  const jobs = [...new Set(runs.map((r) => r.job))];
  document.getElementById("rows-legend").replaceChildren(...jobs.map((job) => {
    const swatch = el("i", {});
    swatch.style.background = JOB_COLOURS[job] || "#888"; // CSSOM: allowed by the CSP
    return el("span", {}, swatch, job);
  }));
}

// "loading export_7_…: 120,000 of 480,000 (25%)"; without a total, the count alone.
function runningText(job) {
  if (job.total) {
    const percent = Math.floor((100 * job.done) / job.total);
    return `${job.doing}: ${number(job.done)} of ${number(job.total)} (${percent}%)`;
  }
  return job.done ? `${job.doing}: ${number(job.done)}` : job.doing;
}

function renderJobs(answer) {
  const schedule = Object.fromEntries(answer.schedule.map((s) => [s.job, s]));
  replaceRows("jobs", answer.jobs.map((job) => {
    const planned = schedule[job.job];
    const button = el("button", {
      "data-start": job.job, disabled: job.state === "running",
      "aria-label": `start ${JOB_LABELS[job.job].toLowerCase()}`,
    }, "Start");
    button.addEventListener("click", () => start(job.job));
    const progress = job.state === "running" ? runningText(job) : job.error || job.summary;
    return el("tr", { "data-job": job.job, class: job.state },
      el("td", {}, JOB_LABELS[job.job]),
      el("td", { "data-field": "state" }, el("span", { class: `state ${job.state}` }, job.state)),
      el("td", { "data-field": "progress", class: job.error ? "error" : "" }, progress),
      el("td", { class: "muted" }, planned
        ? `every ${seconds(planned.every_seconds)}, next ${utc(planned.next_at).slice(11)}`
        : "not scheduled"),
      el("td", {}, button));
  }));
}

// --- charts (inline SVG, no library) ------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// The charts stretch to their box (preserveAspectRatio="none"), so their scale is written
// beside them in HTML rather than as SVG text, which would stretch too.
function axis(chart, top) {
  chart.append(svg("line", { x1: 0, y1: 130, x2: 600, y2: 130, class: "base" }));
  document.getElementById(`${chart.id}-scale`).textContent = top;
}

function drawBars(chart, runs) {
  chart.replaceChildren();
  const most = Math.max(1, ...runs.map((r) => r.rows));
  const width = 600 / Math.max(runs.length, 30); // a few runs do not make fat bars
  runs.forEach((r, index) => {
    const height = Math.max(1, (r.rows / most) * 110);
    const bar = svg("rect", {
      x: index * width + 1, y: 130 - height, width: Math.max(1, width - 2), height,
      fill: r.status === "failed" ? "#d23c3c" : JOB_COLOURS[r.job] || "#888",
    });
    const tip = svg("title", {});
    tip.textContent = `${r.job} run ${r.run}: ${number(r.rows)} rows, ${r.status}`;
    bar.append(tip);
    chart.append(bar);
  });
  axis(chart, `top: ${number(most)} rows`);
}

function drawLine(chart, values) {
  chart.replaceChildren();
  if (!values.length) return axis(chart, "no folders yet");
  const most = Math.max(1, ...values);
  const step = values.length > 1 ? 590 / (values.length - 1) : 0;
  const points = values.map((v, i) => [5 + i * step, 130 - (v / most) * 110]);
  chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "line" }));
  axis(chart, `top: ${seconds(most)}`);
}

// --- actions ------------------------------------------------------------------------

async function entityAction(action) {
  const names = [...selected];
  if (!names.length) return say("Select one or more entities first.", "error");
  const ongoing = document.getElementById("with-ongoing").checked;
  const calls = {
    enable: ["/api/entities/enable", { names, ongoing }, "enabled"],
    disable: ["/api/entities/disable", { names }, "disabled"],
    "disable-ongoing": ["/api/entities/disable", { names, ongoing_only: true }, "ongoing capture removed"],
    reset: ["/api/entities/reset", { names }, "initial export reset"],
  };
  const [path, body, done] = calls[action];
  try {
    const answer = await api(path, body);
    say(`${done}: ${answer.names.join(", ")}`, "ok");
    await refreshOverview();
  } catch (error) {
    say(`${error.message}${error.hint ? ` (${error.hint})` : ""}`, "error");
  }
}

async function start(job) {
  try {
    await api(`/api/jobs/${job}/start`, {});
    say(`${JOB_LABELS[job]} started`, "ok");
    await refreshJobs();
  } catch (error) {
    say(`${error.message}${error.hint ? ` (${error.hint})` : ""}`, "error");
  }
}

// --- live refresh -------------------------------------------------------------------

let lastStates = {};

async function refreshOverview() {
  try {
    renderOverview(await api("/api/overview"));
    document.getElementById("refreshed").textContent =
      `updated ${new Date().toLocaleTimeString("en-GB")}`;
    document.getElementById("live-dot").className = "dot ok";
  } catch (error) {
    document.getElementById("refreshed").textContent = `not updated: ${error.message}`;
    document.getElementById("live-dot").className = "dot bad";
  }
}

async function refreshJobs() {
  try {
    const answer = await api("/api/jobs");
    renderJobs(answer);
    // A run that just ended changed what the overview shows: read it now.
    const ended = answer.jobs.some((j) => lastStates[j.job] === "running" && j.state !== "running");
    lastStates = Object.fromEntries(answer.jobs.map((j) => [j.job, j.state]));
    if (ended) await refreshOverview();
  } catch (error) {
    document.getElementById("live-dot").className = "dot bad";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => entityAction(button.dataset.action));
  }
  document.getElementById("select-all").addEventListener("change", (event) => {
    for (const box of document.querySelectorAll("input[data-entity]:not(:disabled)")) {
      box.checked = event.target.checked;
      if (box.checked) selected.add(box.dataset.entity); else selected.delete(box.dataset.entity);
    }
    showSelection();
  });
  refreshOverview();
  refreshJobs();
  setInterval(refreshOverview, OVERVIEW_EVERY_MS);
  setInterval(refreshJobs, JOBS_EVERY_MS);
});
