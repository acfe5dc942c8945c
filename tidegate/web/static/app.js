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
let allEntities = [];
const entityView = { filter: "", sort: "name", descending: false };
let initialised = true; // false while the source has no tidegate tables (`tidegate init`)

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
    error.code = data && data.code ? data.code : "";
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
  renderFreshness(view.freshness);
  renderChain(view.chain);
  renderLoad(view.load, view.freshness);
  renderRecent(view.load.recent);
  renderEntities(view.entities);
  renderHistory(view.runs);
}

// The banner at the top: how far the target is behind the source, end to end.
function renderFreshness(freshness) {
  const banner = document.getElementById("freshness");
  banner.dataset.state = freshness.state;
  const waiting = freshness.exports_waiting;
  const states = {
    fresh: ["Fresh", "the target holds everything exported"],
    behind: ["Behind", `${number(waiting)} complete export(s) wait to be loaded`],
    failing: ["Load failing", freshness.problem],
  };
  const [state, text] = states[freshness.state];
  document.getElementById("freshness-state").textContent = state;
  document.getElementById("freshness-text").textContent =
    `end-to-end lag ${seconds(freshness.lag_seconds)}: ${text}`;
}

function renderEmpty(error) {
  initialised = false;
  const banner = document.getElementById("freshness");
  banner.dataset.state = "empty";
  document.getElementById("freshness-state").textContent = "Not set up";
  document.getElementById("freshness-text").textContent = "run `tidegate init` first";
  document.getElementById("empty-reason").textContent = error.message;
  document.querySelector("main").classList.add("empty");
  document.getElementById("empty-state").hidden = false;
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
  const times = chain.recent.map((p) => Date.parse(p.published_at) / 1000);
  timeChart("lag-chart", [{ label: "lag at publication", stroke: JOB_COLOURS.tables }],
    [times, chain.recent.map((p) => p.lag_seconds)], seconds);
}

function renderLoad(load, freshness) {
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
  if (freshness.state === "failing" && !load.error) {
    pairs.push(["last load failed", freshness.problem, "load-failed"]);
  }
  facts("load", pairs);
  const flag = document.getElementById("load-flag");
  const flags = { behind: "behind", failing: "failing" };
  flag.hidden = !flags[freshness.state];
  flag.textContent = flags[freshness.state] || "";
  flag.className = `flag ${freshness.state}`;
  document.getElementById("load-card").dataset.state = freshness.state;
}

function renderRecent(folders) {
  const rows = folders.flatMap((folder) => folder.tables.map((t, index) =>
    el("tr", { "data-folder": folder.folder, "data-table": t.table },
      el("td", { class: "muted" }, index === 0 ? folder.folder : ""),
      el("td", { class: "name" }, t.table),
      el("td", { class: "num", "data-field": "rows" }, number(t.rows)),
      el("td", { class: "num", "data-field": "deleted" }, number(t.deleted)))));
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "no table export yet")));
  }
  replaceRows("recent", rows);
}

// Entities are filtered and sorted here, so the table stays usable with hundreds of them;
// it is redrawn only when what it shows changed (a redraw would drop a click in flight).
let entitiesDrawn = "";

function renderEntities(entities) {
  allEntities = entities;
  knownEntities = entities.map((e) => e.name);
  for (const name of [...selected]) if (!knownEntities.includes(name)) selected.delete(name);
  drawEntities();
}

function shownEntities() {
  const needle = entityView.filter.trim().toLowerCase();
  const shown = allEntities.filter((e) => !needle || e.name.toLowerCase().includes(needle)
    || e.tables.some((table) => table.toLowerCase().includes(needle)));
  const key = (e) => {
    const value = entityView.sort === "tables" ? e.tables.join(", ") : e[entityView.sort];
    return typeof value === "string" ? value.toLowerCase() : Number(value);
  };
  shown.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const order = x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    return entityView.descending ? -order : order;
  });
  return shown;
}

function drawEntities() {
  const shown = shownEntities();
  const drawn = JSON.stringify([shown, [...selected]]);
  if (drawn === entitiesDrawn) return;
  entitiesDrawn = drawn;
  replaceRows("entities", shown.map(entityRow));
  document.getElementById("entity-count").textContent =
    `${number(shown.length)} of ${number(allEntities.length)} entities`;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    const sorted = th.dataset.sort === entityView.sort;
    th.setAttribute("aria-sort", sorted ? (entityView.descending ? "descending" : "ascending") : "none");
  }
  showSelection();
}

function entityRow(e) {
  const box = el("input", {
    type: "checkbox", "data-entity": e.name, "aria-label": `select ${e.name}`,
    checked: selected.has(e.name), disabled: !e.eligible,
  });
  box.addEventListener("change", () => {
    if (box.checked) selected.add(e.name); else selected.delete(e.name);
    entitiesDrawn = "";
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
  // One series per job over the runs' start times (a job's value is null at the others).
  const ordered = [...runs].sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
  const jobs = [...new Set(ordered.map((r) => r.job))].sort();
  const times = ordered.map((r) => Date.parse(r.started_at) / 1000);
  const values = jobs.map((job) => ordered.map((r) => (r.job === job ? r.rows : null)));
  timeChart("rows-chart", jobs.map((job) => ({ label: job, stroke: JOB_COLOURS[job] || "#888" })),
    [times, ...values], (n) => `${number(n)} rows`);
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
      "data-start": job.job, disabled: job.state === "running" || !initialised,
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

// --- actions ------------------------------------------------------------------------

async function entityAction(action) {
  const names = [...selected].sort();
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

async function verifyExports() {
  const box = document.getElementById("verify-result");
  const button = document.getElementById("verify-button");
  button.disabled = true;
  box.className = "muted";
  box.textContent = "verifying every export…";
  try {
    const result = await api("/api/verify");
    const checked = `${number(result.table_exports)} table export(s) and ` +
      `${number(result.entity_runs)} entity run(s) checked`;
    const problems = result.problems.map((p) => el("li", {}, `${p.file}: ${p.message}`));
    const notes = result.notes.map((p) => el("li", { class: "muted" }, `${p.file}: ${p.message}`));
    box.className = problems.length ? "verify bad" : "verify ok";
    box.replaceChildren(
      el("p", { "data-testid": "verify-summary" }, problems.length
        ? `${checked}: ${problems.length} problem(s)` : `${checked}: all verified`),
      ...(problems.length || notes.length ? [el("ul", {}, ...problems, ...notes)] : []));
  } catch (error) {
    box.className = "verify bad";
    box.textContent = `${error.message}${error.hint ? ` (${error.hint})` : ""}`;
  } finally {
    button.disabled = false;
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
    const view = await api("/api/overview");
    if (!initialised) window.location.reload(); // `tidegate init` ran: start afresh
    renderOverview(view);
    document.getElementById("refreshed").textContent =
      `updated ${new Date().toLocaleTimeString("en-GB")}`;
    document.getElementById("live-dot").className = "dot ok";
  } catch (error) {
    if (error.code === "not_initialized") {
      renderEmpty(error);
      document.getElementById("live-dot").className = "dot ok";
      document.getElementById("refreshed").textContent =
        `updated ${new Date().toLocaleTimeString("en-GB")}`;
      return;
    }
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
    entitiesDrawn = "";
    showSelection();
  });
  document.getElementById("entity-filter").addEventListener("input", (event) => {
    entityView.filter = event.target.value;
    drawEntities();
  });
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => {
      const column = th.dataset.sort;
      entityView.descending = entityView.sort === column ? !entityView.descending : false;
      entityView.sort = column;
      drawEntities();
    });
  }
  document.getElementById("verify-button").addEventListener("click", verifyExports);
  refreshOverview();
  refreshJobs();
  setInterval(refreshOverview, OVERVIEW_EVERY_MS);
  setInterval(refreshJobs, JOBS_EVERY_MS);
});
