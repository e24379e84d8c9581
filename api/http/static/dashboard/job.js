// One job: summary, time travel, the charts, per-epoch telemetry, the trial table
// with each trial's "why", and the what-if form.

import { api, ApiError, requestBlob } from "./api.js";
import { armsChart, batchSizeChart, costChart, pruningChart, telemetryChart, whatIfChart } from "./charts.js";
import { OUTCOMES, el, joules, outcomeLabel, outcomeOf, seconds, stageText, when } from "./format.js";
import { minCostBefore, trialCounts, whyText } from "./history.js";

const TABLE_PAGE = 50;
const KNOB_FIELDS = [
  ["eta_knob", "eta (energy weight, 0..1)", "any"],
  ["beta_knob", "beta (cost bound factor)", "any"],
  ["window_size", "window (0 = all history)", "1"],
  ["mab_prior_mean", "prior mean (reward)", "any"],
  ["mab_prior_precision", "prior precision", "any"],
  ["mab_num_explorations", "bandit explorations per arm", "1"],
  ["num_pruning_rounds", "pruning rounds", "1"],
  ["mab_seed", "bandit seed", "1"],
  ["resample_seed", "resample seed", "1"],
];

function chartBox(id, extraClass = "") {
  const canvas = el("canvas", { id });
  return { canvas, box: el("div", { class: `chart ${extraClass}` }, canvas) };
}

function facts(rows) {
  return el("dl", { class: "facts" }, rows.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

function outcomeBreakdown(trials) {
  const counts = new Map(OUTCOMES.map((outcome) => [outcome.key, 0]));
  for (const trial of trials) counts.set(outcomeOf(trial), counts.get(outcomeOf(trial)) + 1);
  return OUTCOMES.map((outcome) => `${counts.get(outcome.key)} ${outcome.label}`).join(", ");
}

// The bound the next trial would get, how it comes about, and the guards that keep it moving.
function earlyStopText(stop) {
  if (stop.bound === null) return stop.factor === null ? "off (no beta)" : "no bound yet (nothing to bound against)";
  const escalation = stop.escalation === 1 ? "" : ` × ${stop.escalation} (escalated)`;
  const judged = stop.judged === "at_dispatch" ? "set when a trial is dispatched" : "judged at each report";
  const guards = `window ${stop.stop_window || "all"}, escalation ${stop.bound_escalation ? "on" : "off"}, predictive stop ${stop.predictive_stop ? "on" : "off"}`;
  return `next trial's bound ${joules(stop.bound)} = ${stop.factor_name} ${stop.factor} × ${stop.reference_name} ${joules(stop.reference)}${escalation}, ${judged}; ${stop.stopped_in_a_row} stopped in a row (${guards})`;
}

function summary(state, trials) {
  const spec = state.spec;
  const warning = state.early_stop.warning;
  const rows = facts([
    ["job", `${state.job_id} (${state.job_uuid})${state.deleted ? " — deleted" : ""}`],
    ["stage", stageText(state.stage, state.pruning)],
    ["trials", trialCounts(state.trials)],
    ["outcomes", outcomeBreakdown(trials)],
    ["early stop", earlyStopText(state.early_stop)],
    ["min cost", state.min_cost === null ? "none yet" : `${joules(state.min_cost)} at batch size ${state.min_cost_batch_size}`],
    ["knobs", `eta ${spec.eta_knob}, beta ${spec.beta_knob ?? "none"}, window ${spec.window_size}, target ${spec.target_metric} (${spec.higher_is_better_metric ? "higher" : "lower"} is better), max epochs ${spec.max_epochs}, max power ${spec.max_power} W`],
    ["batch sizes", spec.batch_sizes.join(", ")],
    ["registered", when(state.registered_at)],
    ["last event", `${when(state.updated_at)} (version ${state.version})`],
  ]);
  return warning ? el("div", {}, el("p", { id: "bound-warning", class: "caveats", role: "alert" }, warning), rows) : rows;
}

function pager(total, page, onPage, id) {
  const pages = Math.max(1, Math.ceil(total / TABLE_PAGE));
  return el(
    "nav",
    { class: "pager", id },
    el("button", { disabled: page === 0, onclick: () => onPage(page - 1) }, "← Previous"),
    el("span", {}, `page ${page + 1} of ${pages} (${total} rows)`),
    el("button", { disabled: page + 1 >= pages, onclick: () => onPage(page + 1) }, "Next →"),
  );
}

function trialTable(trials, onPick) {
  const rows = trials.map((trial) =>
    el(
      "tr",
      { "data-trial": trial.number, onclick: () => onPick(trial.number), class: `outcome-${outcomeOf(trial)}` },
      el("td", {}, trial.number),
      el("td", {}, trial.batch_size),
      el("td", {}, trial.kind),
      el("td", {}, outcomeLabel(outcomeOf(trial))),
      el("td", {}, trial.epochs_reported),
      el("td", {}, joules(trial.cost)),
      el("td", {}, when(trial.dispatched_at)),
      el("td", { class: "why" }, whyText(trial)),
    ),
  );
  const head = ["#", "batch size", "kind", "outcome", "epochs", "cost", "dispatched", "why this batch size"];
  return el("table", { id: "trials", class: "grid" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

function knobForm(state, onSubmit) {
  const values = { ...state.spec, mab_seed: state.seed, resample_seed: 0 };
  const inputs = {};
  const fields = KNOB_FIELDS.map(([name, label, step]) => {
    inputs[name] = el("input", { name, type: "number", step, value: values[name] ?? "", required: name !== "beta_knob" });
    return el("label", {}, label, inputs[name]);
  });
  const noBeta = el("input", { type: "checkbox", name: "no_beta", checked: state.spec.beta_knob === null });
  const form = el(
    "form",
    { id: "whatif-form", class: "knobs" },
    fields,
    el("label", { class: "inline" }, noBeta, "no early stopping (beta none)"),
    el("button", { type: "submit" }, "Run what-if"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const knobs = {};
    for (const [name] of KNOB_FIELDS) knobs[name] = Number(inputs[name].value);
    if (noBeta.checked) knobs.beta_knob = null;
    onSubmit(knobs);
  });
  return form;
}

function caveats(report) {
  const cf = report.summary.counterfactual;
  const items = [];
  if (report.halted) items.push(`The counterfactual halted: ${report.halted}`);
  if (cf.unknown_trials.length) items.push(`Outcome unknown beyond the recorded epochs for trials ${cf.unknown_trials.join(", ")}: ended there, so totals are lower bounds.`);
  if (cf.no_data_trials.length) items.push(`No recorded run of the chosen batch size for trials ${cf.no_data_trials.join(", ")}: nothing invented, the trials were ended.`);
  if (cf.not_simulated_trials.length) items.push(`Not simulated: trials ${cf.not_simulated_trials.join(", ")}.`);
  if (cf.resampled_trials.length) items.push(`Telemetry resampled from another trial of the same batch size for trials ${cf.resampled_trials.join(", ")}.`);
  const verdict = cf.complete ? "Complete: every counterfactual trial has recorded data and a known outcome." : "Incomplete: see below.";
  return el("div", { id: "whatif-caveats", class: cf.complete ? "caveats complete" : "caveats" }, el("p", {}, verdict), items.length ? el("ul", {}, items.map((item) => el("li", {}, item))) : null);
}

function totalsTable(report) {
  const row = (label, totals) => el("tr", {}, el("th", {}, label), el("td", {}, joules(totals.cost)), el("td", {}, joules(totals.energy)), el("td", {}, seconds(totals.time)));
  return el(
    "table",
    { class: "grid totals" },
    el("thead", {}, el("tr", {}, ["", "cost", "energy", "time"].map((h) => el("th", {}, h)))),
    el("tbody", {}, row("actual", report.summary.actual), row("counterfactual", report.summary.counterfactual)),
  );
}

function differencesTable(changed, page) {
  const side = (view) => (view ? `${view.batch_size} · ${view.stop_reason ?? view.outcome ?? "in flight"} · ${joules(view.cost)}` : "not simulated");
  const rows = changed.slice(page * TABLE_PAGE, (page + 1) * TABLE_PAGE).map((trial) =>
    el("tr", {}, el("td", {}, trial.number), el("td", {}, side(trial.actual)), el("td", {}, side(trial.counterfactual)), el("td", {}, trial.changed.join(", "))),
  );
  const head = ["#", "actual: batch size · stop · cost", "counterfactual: batch size · stop · cost", "what changed"];
  return el("table", { id: "whatif-diffs", class: "grid" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

export async function showJob(view, jobId, params) {
  view.replaceChildren(el("p", { class: "loading" }, "Loading…"));
  let latest = await api.state(jobId);
  const charts = {};
  window.bsoCharts = charts;
  let shown = { state: latest, trials: [] };
  let tablePage = 0;
  let picked = null;

  const summaryBox = el("section", { id: "summary" });
  const slider = el("input", { id: "tt-version-range", type: "range", min: 1, max: latest.version, value: latest.version });
  const versionInput = el("input", { id: "tt-version", type: "number", min: 1, max: latest.version, value: latest.version });
  const atInput = el("input", { id: "tt-at", type: "text", placeholder: "2024-05-01T12:00:00Z" });
  const ttStatus = el("span", { id: "tt-status" });
  const ttError = el("span", { class: "error", id: "tt-error" });
  slider.addEventListener("input", () => (versionInput.value = slider.value));
  slider.addEventListener("change", () => travel({ version: Number(slider.value) }));
  const travelForm = el(
    "form",
    { id: "time-travel", class: "time-travel" },
    el("strong", {}, "Time travel"),
    el("label", {}, "version ", slider, versionInput),
    el("button", { type: "submit", id: "tt-go" }, "Show version"),
    el("label", {}, "or instant ", atInput),
    el("button", { type: "button", id: "tt-go-at", onclick: () => travel({ at: atInput.value.trim() }) }, "Show instant"),
    el("button", { type: "button", id: "tt-latest", onclick: () => travel({ fresh: true }) }, "Latest"),
    ttStatus,
    ttError,
  );
  travelForm.addEventListener("submit", (event) => {
    event.preventDefault();
    travel({ version: Number(versionInput.value) });
  });

  const boxes = {
    batchSize: chartBox("chart-batch-size"),
    cost: chartBox("chart-cost"),
    arms: chartBox("chart-arms"),
    pruning: chartBox("chart-pruning"),
    telemetry: chartBox("chart-telemetry"),
    whatIf: chartBox("chart-whatif", "wide"),
  };
  const armsNote = el("p", { class: "note", id: "arms-note" });
  const trialPicker = el("input", { id: "telemetry-trial", type: "number", min: 1 });
  const telemetryNote = el("p", { class: "note", id: "telemetry-note" });
  const tableBox = el("div", { id: "trial-table" });
  const whatIfResult = el("div", { id: "whatif-result" });
  const csv = el("button", { type: "button", id: "download-csv", onclick: () => download(api.csvUrl(jobId), `${latest.job_id}-trials.csv`) }, "Download trials as CSV");

  view.replaceChildren(
    el("h1", {}, latest.job_id, latest.deleted ? el("span", { class: "badge" }, "deleted") : null),
    travelForm,
    summaryBox,
    el("section", { class: "charts" }, boxes.batchSize.box, boxes.cost.box, el("div", {}, boxes.arms.box, armsNote), boxes.pruning.box),
    el(
      "section",
      { class: "telemetry" },
      el("h2", {}, "Per-epoch telemetry"),
      el("form", { class: "inline", onsubmit: (event) => { event.preventDefault(); pick(Number(trialPicker.value)); } }, el("label", {}, "trial ", trialPicker), el("button", { type: "submit" }, "Show"), el("span", { class: "note" }, " or click a point or a table row")),
      boxes.telemetry.box,
      telemetryNote,
    ),
    el("section", {}, el("h2", {}, "Trials and why each got its batch size"), csv, tableBox),
    el("section", { class: "whatif" }, el("h2", {}, "What if the job had other knobs?"), knobForm(latest, runWhatIf), whatIfResult),
  );

  function draw(name, make) {
    if (charts[name]) charts[name].destroy();
    charts[name] = make ? make(boxes[name].canvas) : null;
  }

  // The table shows one page of trials, fetched with their why for the version shown.
  async function drawTable() {
    const rows = (await api.trialsWhy(jobId, shown.state.version, { after: tablePage * TABLE_PAGE, limit: TABLE_PAGE })).trials;
    tableBox.replaceChildren(
      pager(shown.trials.length, tablePage, (page) => { tablePage = page; drawTable(); }, "trials-pager"),
      trialTable(rows, pick),
    );
  }

  async function pick(number) {
    const trial = shown.trials.find((candidate) => candidate.number === number);
    if (!trial) {
      telemetryNote.textContent = `No trial ${number} at this version.`;
      return;
    }
    picked = number;
    trialPicker.value = number;
    const detail = await api.trial(jobId, number);
    // As it was at the version shown: only the epochs reported by then.
    detail.epochs = detail.epochs.filter((epoch) => epoch.reported_at <= shown.state.updated_at);
    const min = minCostBefore(shown.trials, trial);
    const beta = shown.state.spec.beta_knob;
    const threshold = beta === null || min === null ? null : beta * min;
    draw("telemetry", (canvas) => telemetryChart(canvas, detail, shown.state.spec, threshold));
    telemetryNote.textContent = `${detail.epochs.length} epoch reports; ${outcomeLabel(outcomeOf(trial))}. Why: ${whyText(detail)}`;
  }

  function defaultPick() {
    const reported = shown.trials.filter((trial) => trial.epochs_reported > 0);
    const richest = reported.reduce((best, trial) => (!best || trial.epochs_reported > best.epochs_reported ? trial : best), null);
    return picked && shown.trials.some((trial) => trial.number === picked) ? picked : richest && richest.number;
  }

  async function travel(moment) {
    const started = performance.now();
    ttError.textContent = "";
    try {
      if (moment.fresh) latest = await api.state(jobId); // events may have come since the page opened
      const known = moment.fresh ? latest : moment.at ? await api.state(jobId, null, moment.at) : moment.version === latest.version ? latest : null;
      const version = known ? known.version : moment.version;
      const [state, trials, explorations] = await Promise.all([
        known || api.state(jobId, version),
        api.trials(jobId, version),
        api.trialsWhy(jobId, version, { kind: "Exploration" }),
      ]);
      shown = { state, trials: trials.trials, explorations: explorations.trials };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      ttError.textContent = error.message;
      return;
    }
    const { state, trials } = shown;
    slider.max = versionInput.max = latest.version;
    slider.value = versionInput.value = state.version;
    ttStatus.textContent = `showing version ${state.version} of ${latest.version}, as at ${when(state.updated_at)}`;
    view.dataset.shownVersion = state.version;
    history.replaceState(null, "", `${location.pathname}${state.version === latest.version ? "" : `?version=${state.version}`}`);
    summaryBox.replaceChildren(summary(state, trials));
    const sizes = state.spec.batch_sizes;
    draw("batchSize", (canvas) => batchSizeChart(canvas, trials, sizes, pick));
    draw("cost", (canvas) => costChart(canvas, trials, state.spec.beta_knob, pick));
    draw("arms", state.arms.length ? (canvas) => armsChart(canvas, state.arms) : null);
    armsNote.textContent = state.arms.length ? "" : `No bandit yet: the job is in ${stageText(state.stage, state.pruning)}.`;
    draw("pruning", (canvas) => pruningChart(canvas, shown.explorations, state.pruning.survivors, sizes, state.stage));
    tablePage = 0;
    const first = defaultPick();
    await Promise.all([drawTable(), first ? pick(first) : draw("telemetry", null)]);
    // Read by bench/dashboard.py: how long fetching and drawing this moment took.
    performance.measure("bso-job-drawn", { start: started });
    view.dataset.rendered = `version-${state.version}`;
  }

  async function runWhatIf(knobs) {
    whatIfResult.replaceChildren(el("p", { class: "loading" }, "Replaying the history with these knobs…"));
    let report;
    try {
      report = await api.reanalysis(jobId, knobs);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      whatIfResult.replaceChildren(el("p", { class: "error", id: "whatif-error" }, error.message));
      return;
    }
    const changed = report.trials.filter((trial) => trial.changed.length);
    let page = 0;
    const diffBox = el("div");
    const drawDiffs = () =>
      diffBox.replaceChildren(
        ...(changed.length
          ? [pager(changed.length, page, (next) => { page = next; drawDiffs(); }, "whatif-pager"), differencesTable(changed, page)]
          : [el("p", { class: "note", id: "whatif-same" }, "No trial differs: these knobs take the recorded decisions.")]),
      );
    drawDiffs();
    whatIfResult.replaceChildren(
      totalsTable(report),
      el("p", { id: "whatif-counts" }, `${report.summary.batch_size_changes} trials would have had another batch size; ${report.summary.decision_changes} trials differ in some decision.`),
      caveats(report),
      boxes.whatIf.box,
      el("h3", {}, "Per-trial differences"),
      diffBox,
    );
    draw("whatIf", (canvas) => whatIfChart(canvas, report));
  }

  const start = params.get("version") ? { version: Number(params.get("version")) } : params.get("at") ? { at: params.get("at") } : { version: latest.version };
  await travel(start);
}

// A plain link would not carry the bearer token, so fetch the file and save the blob.
async function download(url, filename) {
  const blob = await requestBlob(url);
  const link = el("a", { href: URL.createObjectURL(blob), download: filename });
  link.click();
  URL.revokeObjectURL(link.href);
}
