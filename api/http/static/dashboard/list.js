// The job list: the fleet's totals, filters (prefix, policy, GPU model, stage), sorting by
// any column, and paging (never loads every job into the page).

import { api, ApiError } from "./api.js";
import { MEASURES, el, joules, percent, stageText, when } from "./format.js";
import { trialCounts } from "./history.js";

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
  ["last activity", "updated_at", (job) => when(job.updated_at)],
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
    el("table", { class: "grid fleet" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows)),
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

let shownLast = 0; // the latest list asked for: an older answer that comes late is not drawn

export async function showJobList(view, params, navigate) {
  const query = listQuery(params);
  const mine = ++shownLast;
  view.replaceChildren(el("h1", {}, "Jobs"), el("p", { class: "loading" }, "Loading…"));
  const { prefix, policy, gpu_model, stage, sort, after } = query;
  // The fleet's totals read every job's summary: the list does not wait for them.
  const fleet = api.fleet();
  const page = await api.jobs({ prefix, policy, gpu_model, stage, sort, after, limit: PAGE_SIZE });
  if (mine !== shownLast) return;
  const table = el(
    "table",
    { id: "jobs", class: "grid" },
    el("thead", {}, el("tr", {}, COLUMNS.map((column) => headerCell(column, query, navigate)))),
    el("tbody", {}, page.jobs.map((job) => jobRow(job, navigate))),
  );
  const filtered = prefix || policy || gpu_model || stage;
  const empty = page.jobs.length ? null : el("p", { class: "empty" }, filtered ? "No job matches these filters." : "No jobs registered yet.");
  const fleetBox = el("section", { id: "fleet" }, el("h2", {}, "Fleet: what the optimizer saved"), el("p", { class: "loading" }, "Adding up every job…"));
  const form = filterForm(query, [], navigate);
  view.replaceChildren(el("h1", {}, "Jobs"), fleetBox, el("h2", {}, "Jobs"), form, empty || table, pager(query, page, navigate));
  let totals;
  try {
    totals = await fleet;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    fleetBox.replaceChildren(el("h2", {}, "Fleet: what the optimizer saved"), el("p", { class: "error" }, error.message));
    return;
  }
  if (mine !== shownLast) return;
  fleetBox.replaceWith(fleetTotals(totals));
  addGpuModels(form, Object.keys(totals.by_gpu_model), query.gpu_model);
}

// The GPU models to filter by are the fleet's (known once its totals have come).
function addGpuModels(form, models, chosen) {
  const gpu = form.querySelector("#filter-gpu");
  for (const model of models) if (model !== chosen) gpu.append(el("option", { value: model }, model));
}
