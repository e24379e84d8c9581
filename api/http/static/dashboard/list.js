// The job list: the fleet's totals, filters (prefix, policy, GPU model, stage), sorting by
// any column, and paging (never loads every job into the page).

import { api, ApiError } from "./api.js";
import { MEASURES, el, joules, percent, stageText, when } from "./format.js";
import { trialCounts } from "./history.js";
import { Sequence, indicator, nowIso, poll, runLatest, since, tickAges } from "./live.js";

const PAGE_SIZE = 50;
const POLICIES = ["zeus", "lsts"];
const STAGES = [
  ["Pruning", "pruning (Zeus)"],
  ["LocalSearch", "local search (LSTS)"],
  ["MAB", "bandit"],
];

// The table's columns: heading, the server's sort key (null: not sortable), and the cell.
const COLUMNS = [
  ["job id", "job_id", null],
  ["policy", "policy", (job) => job.policy],
  ["GPU model", "gpu_model", (job) => job.gpu_model],
  ["stage", "stage", (job) => stageText(job.stage, job.pruning)],
  ["trials", null, (job) => trialCounts(job.trials)],
  ["default batch size", "default_batch_size", (job) => job.default_batch_size],
  ["recommended batch size", "recommended_batch_size", (job) => job.recommended_batch_size ?? "–"],
  ["settled", "settled", (job) => (job.settled ? "yes" : "no")],
  ["cost saved vs default", "savings_fraction", (job) => percent(job.savings_fraction)],
  ["lowest run cost", "min_cost", (job) => (job.min_cost === null ? "–" : `${joules(job.min_cost)} at ${job.min_cost_batch_size}`)],
  ["last activity", "updated_at", (job) => [when(job.updated_at), el("div", { class: "note" }, since("", job.updated_at))]],
];

// What the URL says the page shows: the filters, the sort, and where the page starts.
function listQuery(params) {
  return {
    prefix: params.get("prefix") || "",
    policy: params.get("policy") || "",
    gpu_model: params.get("gpu_model") || "",
    stage: params.get("stage") || "",
    sort: params.get("sort") || "",
    after: Number(params.get("after") || 0),
    back: (params.get("back") || "").split(",").filter(Boolean).map(Number),
  };
}

function listUrl(query) {
  const kept = Object.entries(query).filter(([, value]) => value !== "" && value !== 0 && !(Array.isArray(value) && !value.length));
  return `/?${new URLSearchParams(kept.map(([name, value]) => [name, Array.isArray(value) ? value.join(",") : value]))}`;
}

function jobRow(job, navigate) {
  const href = `/ui/jobs/${encodeURIComponent(job.job_uuid)}`;
  const link = el("a", { href, onclick: (event) => { event.preventDefault(); navigate(href); } }, job.job_id);
  const cells = COLUMNS.slice(1).map(([label, key, cell]) => el("td", { "data-column": key || label }, cell(job)));
  return el("tr", { "data-job": job.job_id }, el("td", {}, link, job.deleted ? el("span", { class: "badge" }, "deleted") : null), cells);
}

// A header cell; a sortable one is a button that sorts ascending, then descending.
function headerCell([label, key], query, navigate) {
  if (!key) return el("th", {}, label);
  const direction = query.sort === key ? "ascending" : query.sort === `-${key}` ? "descending" : null;
  const next = direction === "ascending" ? `-${key}` : key;
  const arrow = direction === "ascending" ? " ▲" : direction === "descending" ? " ▼" : "";
  const button = el("button", { type: "button", class: "sort", title: `sort by ${label}`, onclick: () => navigate(listUrl({ ...query, sort: next, after: 0, back: [] })) }, label, arrow);
  return el("th", { "data-sort": key, "aria-sort": direction || "none" }, button);
}

function select(id, chosen, options, onChange) {
  const node = el("select", { id, onchange: onChange }, el("option", { value: "" }, "any"));
  for (const [value, label] of options) node.append(el("option", { value, selected: value === chosen }, label));
  return node;
}

function filterForm(query, gpuModels, navigate) {
  const prefix = el("input", { id: "prefix", type: "search", value: query.prefix, placeholder: "job id prefix" });
  const apply = () => navigate(listUrl({ prefix: prefix.value, policy: policy.value, gpu_model: gpu.value, stage: stage.value, sort: query.sort }));
  const models = query.gpu_model && !gpuModels.includes(query.gpu_model) ? [...gpuModels, query.gpu_model] : gpuModels;
  const policy = select("filter-policy", query.policy, POLICIES.map((name) => [name, name]), apply);
  const gpu = select("filter-gpu", query.gpu_model, models.map((name) => [name, name]), apply);
  const stage = select("filter-stage", query.stage, STAGES, apply);
  return el(
    "form",
    { class: "filter", onsubmit: (event) => { event.preventDefault(); apply(); } },
    el("label", {}, "Prefix ", prefix),
    el("label", {}, "Policy ", policy),
    el("label", {}, "GPU model ", gpu),
    el("label", {}, "Stage ", stage),
    el("button", { type: "submit" }, "Apply"),
    el("a", { href: "/", onclick: (event) => { event.preventDefault(); navigate("/"); } }, "Clear"),
  );
}

// One measure of a fleet row: what was saved against running every recurrence at the default
// size, and the two totals it is the difference of.
function savedCell(totals, format) {
  if (!totals.default_estimate) return el("td", {}, el("span", { class: "note" }, `actual ${format(totals.actual)}; nothing priced at the default`));
  return el(
    "td",
    {},
    el("strong", {}, `${format(totals.saved)} (${percent(totals.fraction)})`),
    el("div", { class: "note" }, `${format(totals.actual)} actual vs ${format(totals.default_estimate)} at the default`),
  );
}

function fleetRow(label, totals, id) {
  const without = totals.jobs_without_default_estimate;
  return el(
    "tr",
    { "data-fleet": id },
    el("th", {}, label),
    el("td", {}, totals.jobs),
    el("td", {}, totals.settled_jobs),
    MEASURES.map((measure) => savedCell(totals[measure.key], measure.format)),
    el("td", {}, without ? `${without} (counted in actual only)` : "0"),
  );
}

// The fleet's totals: overall and per GPU model (/v1/summary).
function fleetTotals(fleet) {
  const head = ["", "jobs", "settled", ...MEASURES.map((measure) => `${measure.label} saved vs default`), "jobs without a default estimate"];
  const rows = [fleetRow("all jobs", fleet.overall, "overall"), ...Object.entries(fleet.by_gpu_model).map(([gpu, totals]) => fleetRow(gpu, totals, gpu))];
  return el(
    "section",
    { id: "fleet", "data-loaded": true },
    el("h2", {}, "Fleet: what the optimizer saved"),
    el("div", { class: "scroll" }, el("table", { class: "grid fleet" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows))),
    el(
      "p",
      { class: "note" },
      "Saved = each job's converged recurrences priced at its default batch size's mean converged run, minus everything its trials consumed (exploration included). " +
        "Jobs whose default size never converged cannot be priced: they count in the actual totals only. Per job, on its page.",
    ),
  );
}

function pager(query, page, navigate) {
  // Sorted pages start at an offset; unsorted ones at the catalog's cursor, remembered for going back.
  const sorted = Boolean(query.sort);
  const next = sorted ? page.next_offset : page.next_after;
  const previous = sorted
    ? { ...query, after: Math.max(0, query.after - PAGE_SIZE) }
    : { ...query, after: query.back.at(-1) || 0, back: query.back.slice(0, -1) };
  const following = sorted ? { ...query, after: next } : { ...query, after: next, back: [...query.back, query.after] };
  const first = sorted ? query.after + 1 : null;
  const where = first ? `jobs ${first}–${query.after + page.jobs.length}` : `${page.jobs.length} jobs on this page`;
  return el(
    "nav",
    { class: "pager" },
    el("button", { id: "previous-page", disabled: query.after === 0, onclick: () => navigate(listUrl(previous)) }, "← Previous"),
    el("span", { id: "page-status" }, where),
    el("button", { id: "next-page", disabled: next === null || next === undefined, onclick: () => navigate(listUrl(following)) }, "Next →"),
  );
}

const LIST_POLL_MS = 5000; // the page's rows are read again this often while the tab is visible
const FLEET_EVERY_MS = 30000; // the fleet's totals (every job's summary) at most this often
const asks = new Sequence(); // list pages asked for: an answer overtaken by a later ask is dropped
const fleets = new Sequence();
let frame = null; // the list on screen: kept while only its query changes, so the fleet stays

// The list's parts, made once and refilled by every answer.
function listFrame(view) {
  if (frame && view.contains(frame.tableBox)) return frame;
  const fleetBox = el("section", { id: "fleet" }, el("h2", {}, "Fleet: what the optimizer saved"), el("p", { class: "loading" }, "Adding up every job…"));
  const loading = indicator("list-loading", "Loading jobs…");
  const live = el("span", { id: "list-live", class: "note live" });
  const form = el("form");
  const tableBox = el("div", { class: "scroll", id: "jobs-box" }, el("p", { class: "loading" }, "Loading…"));
  const pagerBox = el("div");
  view.replaceChildren(el("h1", {}, "Jobs"), fleetBox, el("h2", {}, "Jobs ", loading, " ", live), form, tableBox, pagerBox);
  frame = { view, fleetBox, loading, live, form, tableBox, pagerBox, gpuModels: [], fleetAt: 0 };
  return frame;
}

function signature(page) {
  return JSON.stringify([page.jobs.map((job) => [job.job_id, job.version, job.deleted]), page.next_after, page.next_offset]);
}

function drawRows(parts, query, page, navigate) {
  const table = el(
    "table",
    { id: "jobs", class: "grid" },
    el("thead", {}, el("tr", {}, COLUMNS.map((column) => headerCell(column, query, navigate)))),
    el("tbody", {}, page.jobs.map((job) => jobRow(job, navigate))),
  );
  const filtered = query.prefix || query.policy || query.gpu_model || query.stage;
  const empty = page.jobs.length ? null : el("p", { class: "empty" }, filtered ? "No job matches these filters." : "No jobs registered yet.");
  parts.tableBox.replaceChildren(empty || table);
  parts.tableBox.classList.remove("pending");
  parts.pagerBox.replaceChildren(pager(query, page, navigate));
}

export async function showJobList(view, params, navigate, scope) {
  const query = listQuery(params);
  const { prefix, policy, gpu_model, stage, sort, after } = query;
  const ask = { prefix, policy, gpu_model, stage, sort, after, limit: PAGE_SIZE };
  const parts = listFrame(view);
  parts.tableBox.classList.add("pending");
  // The fleet's totals read every job's summary: the list never waits for them.
  if (!parts.fleetAt) loadFleet(parts);
  let page = await runLatest(asks, parts.loading, async (ticket) => {
    const answer = await api.jobs(ask);
    return asks.stale(ticket, scope) ? null : answer;
  });
  if (!page) return;
  const form = filterForm(query, parts.gpuModels, navigate);
  parts.form.replaceWith(form);
  parts.form = form;
  drawRows(parts, query, page, navigate);
  parts.live.replaceChildren("live: checked ", since("", nowIso()));
  tickAges(scope, parts.view);
  // While the tab is visible the rows are read again; they are redrawn when a job on the page
  // moved (its version) or the page's jobs changed, and then the fleet's totals too (at most
  // every FLEET_EVERY_MS). A user's ask in flight wins: the poll's answer is then dropped.
  poll(scope, LIST_POLL_MS, async () => {
    if (asks.busy) return;
    const ticket = asks.last;
    const fresh = await api.jobs(ask);
    if (asks.stale(ticket, scope)) return;
    parts.live.replaceChildren("live: checked ", since("", nowIso()));
    if (signature(fresh) === signature(page)) return;
    page = fresh;
    drawRows(parts, query, page, navigate);
    if (Date.now() - parts.fleetAt > FLEET_EVERY_MS) loadFleet(parts);
  }, (error) => parts.live.replaceChildren(el("span", { class: "error" }, `live: ${error.message}`)));
}

// The fleet's totals belong to the list on screen, whatever its query: drawn while it is.
async function loadFleet(parts) {
  parts.fleetAt = Date.now();
  const ticket = fleets.take();
  let totals;
  try {
    totals = await api.fleet();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (fleets.stale(ticket) || !parts.view.contains(parts.fleetBox)) return;
    parts.fleetBox.replaceChildren(el("h2", {}, "Fleet: what the optimizer saved"), el("p", { class: "error" }, error.message));
    return;
  }
  if (fleets.stale(ticket) || !parts.view.contains(parts.fleetBox)) return;
  const box = fleetTotals(totals);
  parts.fleetBox.replaceWith(box);
  parts.fleetBox = box;
  parts.gpuModels = Object.keys(totals.by_gpu_model);
  addGpuModels(parts.form, parts.gpuModels);
}

// The GPU models to filter by are the fleet's (known once its totals have come).
function addGpuModels(form, models) {
  const gpu = form.querySelector("#filter-gpu");
  if (!gpu) return;
  const listed = new Set([...gpu.options].map((option) => option.value));
  for (const model of models) if (!listed.has(model)) gpu.append(el("option", { value: model }, model));
}
