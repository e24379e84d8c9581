// The job list: filter by prefix, page with the catalog's cursor (never loads them all).

import { api } from "./api.js";
import { armCost, el, joules, stageText, when } from "./format.js";
import { trialCounts } from "./history.js";

const PAGE_SIZE = 50;

function bestCell(job) {
  if (!job.best_arm) return "–";
  return `${job.best_arm.batch_size} (mean ${joules(armCost(job.best_arm).mean)})`;
}

function jobRow(job, navigate) {
  const href = `/ui/jobs/${encodeURIComponent(job.job_uuid)}`;
  const link = el("a", { href, onclick: (event) => { event.preventDefault(); navigate(href); } }, job.job_id);
  return el(
    "tr",
    { "data-job": job.job_id },
    el("td", {}, link, job.deleted ? el("span", { class: "badge" }, "deleted") : null),
    el("td", {}, stageText(job.stage, job.pruning)),
    el("td", {}, trialCounts(job.trials)),
    el("td", {}, bestCell(job)),
    el("td", {}, job.min_cost === null ? "–" : `${joules(job.min_cost)} at ${job.min_cost_batch_size}`),
    el("td", {}, when(job.updated_at)),
  );
}

// params: {prefix, after, back: [earlier cursors]} taken from the URL.
export async function showJobList(view, params, navigate) {
  const prefix = params.get("prefix") || "";
  const after = Number(params.get("after") || 0);
  const back = (params.get("back") || "").split(",").filter(Boolean);
  const filter = el("input", { id: "prefix", type: "search", value: prefix, placeholder: "job id prefix" });
  const form = el(
    "form",
    { class: "filter", onsubmit: (event) => { event.preventDefault(); navigate(`/?prefix=${encodeURIComponent(filter.value)}`); } },
    el("label", {}, "Filter ", filter),
    el("button", { type: "submit" }, "Apply"),
  );
  view.replaceChildren(el("h1", {}, "Jobs"), form, el("p", { class: "loading" }, "Loading…"));
  const page = await api.jobs(prefix, after, PAGE_SIZE);
  const body = el("tbody", {}, page.jobs.map((job) => jobRow(job, navigate)));
  const table = el(
    "table",
    { id: "jobs", class: "grid" },
    el("thead", {}, el("tr", {}, ["job id", "stage", "trials", "best batch size (mean cost)", "min cost", "last activity"].map((h) => el("th", {}, h)))),
    body,
  );
  const url = (cursor, cursors) => `/?prefix=${encodeURIComponent(prefix)}&after=${cursor}&back=${cursors.join(",")}`;
  const pager = el(
    "nav",
    { class: "pager" },
    el("button", { id: "previous-page", disabled: after === 0, onclick: () => navigate(url(back.at(-1) || 0, back.slice(0, -1))) }, "← Previous"),
    el("span", {}, `${page.jobs.length} jobs on this page${prefix ? ` starting with “${prefix}”` : ""}`),
    el("button", { id: "next-page", disabled: page.next_after === null, onclick: () => navigate(url(page.next_after, [...back, after])) }, "Next →"),
  );
  const empty = page.jobs.length ? null : el("p", { class: "empty" }, "No jobs registered yet" + (prefix ? " with this prefix." : "."));
  view.replaceChildren(el("h1", {}, "Jobs"), form, empty || table, pager);
}
