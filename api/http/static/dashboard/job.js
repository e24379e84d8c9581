// One job: summary, time travel, the charts, per-epoch telemetry, the trial table
// with each trial's "why", and the what-if form.

import { api, ApiError, requestBlob } from "./api.js";
import { armsChart, batchSizeChart, costChart, lstsWalkChart, pruningChart, telemetryChart, whatIfChart } from "./charts.js";
import { MEASURES, OUTCOMES, el, joules, outcomeLabel, outcomeOf, percent, seconds, stageText, when } from "./format.js";
import { referenceName, trialCounts, whyText, zeusReferenceBefore } from "./history.js";
import { Sequence, indicator, nowIso, poll, runLatest, since, tickAges } from "./live.js";

const TABLE_PAGE = 50;
const JOB_POLL_MS = 3000; // the job's version is read this often while the tab is visible
const IN_FLIGHT_HEARD = 20; // in-flight trials whose last report is read (a request each)
const IN_FLIGHT_LISTED = 5; // in-flight trials named in the facts
// The what-if form: every knob of domain/spec.py KNOBS, by the policy it matters to
// ([name, label, step]; step "bool" is a checkbox, "policy" the policy select).
const KNOB_GROUPS = [
  [
    "Both policies",
    [
      ["policy", "policy", "policy"],
      ["eta_knob", "eta (energy weight, 0..1)", "any"],
      ["mab_seed", "bandit seed", "1"],
      ["stop_window", "stop window (last N converged; 0 = all)", "1"],
      ["bound_escalation", "bound escalation (× 2 per run stopped in a row)", "bool"],
      ["predictive_stop", "predictive stop", "bool"],
      ["resample_seed", "resample seed (runs of sizes never recorded)", "1"],
    ],
  ],
  [
    "Zeus",
    [
      ["beta_knob", "beta (cost bound factor)", "any"],
      ["num_pruning_rounds", "pruning rounds", "1"],
      ["window_size", "window (0 = all history)", "1"],
      ["mab_prior_mean", "prior mean (reward)", "any"],
      ["mab_prior_precision", "prior precision", "any"],
      ["mab_num_explorations", "bandit explorations per arm", "1"],
    ],
  ],
  [
    "LSTS",
    [
      ["tau", "tau (walk stops above (1 + tau) × best)", "any"],
      ["beta_explore", "beta_explore (bound while exploring, × best)", "any"],
      ["beta_bandit", "beta_bandit (bandit bound, × exp(min mean log cost))", "any"],
      ["skip_up", "skip the upward walk when down was cheaper", "bool"],
      ["keep_tol", "keep_tol (arms within (1 + keep_tol) × best)", "any"],
      ["n_min", "n_min (runs before an arm is sampled)", "1"],
      ["n_min_tol", "n_min_tol (how close counts as competitive)", "any"],
      ["s0", "s0 (prior sd of log cost)", "any"],
      ["nu0", "nu0 (prior weight in the pooled variance)", "any"],
      ["fail_drop", "fail_drop (failed bandit runs that remove an arm)", "1"],
    ],
  ],
];
// The stop rule's guards a policy gets when not set (domain/spec.py GUARD_DEFAULTS): under
// another policy, a reanalysis gives the guards left untouched these defaults.
const GUARD_DEFAULTS = {
  zeus: { stop_window: 0, bound_escalation: false, predictive_stop: false },
  lsts: { stop_window: 20, bound_escalation: true, predictive_stop: true },
};
const LSTS_KNOBS = KNOB_GROUPS.find(([group]) => group === "LSTS")[1].map(([name]) => name);

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

// The job's knobs as its policy reads them: Zeus's, or LSTS's (beta_knob plays no part in LSTS).
function knobsText(spec) {
  const common = `eta ${spec.eta_knob}, target ${spec.target_metric} (${spec.higher_is_better_metric ? "higher" : "lower"} is better), max epochs ${spec.max_epochs}, max power ${spec.max_power} W`;
  if (spec.policy === "lsts") return `${common}; LSTS: ${LSTS_KNOBS.map((name) => `${name} ${spec[name]}`).join(", ")}`;
  return `${common}; Zeus: beta ${spec.beta_knob ?? "none"}, window ${spec.window_size}, pruning rounds ${spec.num_pruning_rounds}, explorations ${spec.mab_num_explorations}, prior ${spec.mab_prior_mean} (precision ${spec.mab_prior_precision})`;
}

// Why this size, and what it costs (nothing to say before a run of it was measured).
function recommendationBasis(recommendation) {
  if (!recommendation.observations || recommendation.mean_cost === null) return recommendation.rule;
  return `${recommendation.rule}; ${joules(recommendation.mean_cost)} (${recommendation.mean_cost_meaning}) over ${recommendation.observations} runs`;
}

function recommendationText(recommendation) {
  return `${recommendation.batch_size}: ${recommendationBasis(recommendation)}`;
}

// The trials in flight at the version shown, newest first: how long since each was last heard
// of (its last epoch report, else its dispatch), ticking when the version shown is the latest.
function inFlightText(trials, heard, until) {
  const running = trials.filter((trial) => trial.status === "Dispatched").reverse();
  if (!running.length) return "none";
  const listed = running.slice(0, IN_FLIGHT_LISTED).map((trial) =>
    el("div", { class: "in-flight", "data-trial": trial.number }, `trial ${trial.number} (batch size ${trial.batch_size}, ${trial.kind}): running, `, lastHeard(trial, heard, until)),
  );
  const more = running.length > IN_FLIGHT_LISTED ? el("div", { class: "note" }, `and ${running.length - IN_FLIGHT_LISTED} more (see the table)`) : null;
  return [listed, more];
}

// "last heard 12 s ago (epoch 3)": its last epoch report (``heard``: number -> reported_at, read
// for the newest in-flight trials), else its dispatch when nothing was reported yet.
// ``brief``: without saying what was last heard when nothing was reported (the table's cell).
function lastHeard(trial, heard, until, brief = false) {
  if (heard.has(trial.number)) return [since("last heard", heard.get(trial.number), until), ` (epoch ${trial.epoch})`];
  if (trial.epochs_reported > 0) return [since("dispatched", trial.dispatched_at, until), `, last report at epoch ${trial.epoch}`];
  return [since("last heard", trial.dispatched_at, until), brief ? null : " (at its dispatch; no epoch reported yet)"];
}

function summary(state, trials, heard, until) {
  const spec = state.spec;
  const warning = state.early_stop.warning;
  const rows = facts([
    ["job", `${state.job_id} (${state.job_uuid})${state.deleted ? " — deleted" : ""}`],
    ["policy", state.policy === "lsts" ? "lsts (local search, then Thompson sampling on log cost)" : "zeus (pruning rounds, then Gaussian Thompson sampling)"],
    ["stage", stageText(state.stage, state.pruning)],
    ["recommended", state.recommendation ? recommendationText(state.recommendation) : "–"],
    ["trials", trialCounts(state.trials)],
    ["outcomes", outcomeBreakdown(trials)],
    ["in flight", el("div", { id: "in-flight" }, inFlightText(trials, heard, until))],
    ["early stop", earlyStopText(state.early_stop)],
    ["min cost", state.min_cost === null ? "none yet" : `${joules(state.min_cost)} at batch size ${state.min_cost_batch_size}`],
    ["knobs", knobsText(spec)],
    ["batch sizes", spec.batch_sizes.join(", ")],
    ["registered", when(state.registered_at)],
    ["last event", `${when(state.updated_at)} (version ${state.version})`],
  ]);
  return warning ? el("div", {}, el("p", { id: "bound-warning", class: "caveats", role: "alert" }, warning), rows) : rows;
}

// The answers a user asks first, from /v1/jobs/{id}/summary: which batch size to use, whether
// the job has settled on it, what it saved against the default. Always the job's current
// figures; at a past version they stay, labelled as current, beside what the state said then.
function answers(answer, state) {
  const recommendation = answer.recommendation;
  const past = state.version !== answer.version;
  const heading = el("h2", {}, "Now ", el("span", { class: "note" }, `(version ${answer.version}, the latest${past ? `; the charts below show version ${state.version}` : ""})`));
  const then = past && state.recommendation
    ? el("p", { class: "caveats", id: "answers-past" }, `These answers are the job's current ones, not as of version ${state.version}. At version ${state.version} it recommended ${recommendationText(state.recommendation)}.`)
    : null;
  const settled = answer.settled
    ? `yes, since trial ${answer.settled_since_trial}`
    : "not yet";
  const settledWhy = `settled: in the bandit with the last ${answer.settled_after_trials} trials (K) all at the recommended size`;
  const tiles = el(
    "div",
    { class: "answers" },
    el("div", { class: "answer", id: "answer-batch-size" }, el("div", { class: "label" }, "Use batch size"), el("div", { class: "big" }, answer.recommended_batch_size), el("div", { class: "note" }, recommendationBasis(recommendation))),
    el("div", { class: "answer", id: "answer-settled" }, el("div", { class: "label" }, "Settled"), el("div", { class: "big" }, settled), el("div", { class: "note" }, settledWhy)),
    el("div", { class: "answer", id: "answer-saved" }, el("div", { class: "label" }, "Cost saved vs the default"), el("div", { class: "big" }, answer.savings.cost.saved === null ? "–" : `${joules(answer.savings.cost.saved)} (${percent(answer.savings.cost.fraction)})`), el("div", { class: "note" }, savedNote(answer))),
  );
  return el("div", {}, heading, then, tiles, savingsTable(answer));
}

function savedNote(answer) {
  const savings = answer.savings;
  if (savings.default_estimate_missing) return `not estimated: ${savings.default_estimate_missing}`;
  const against = `default batch size ${answer.default_batch_size}; ${savings.converged_recurrences} converged recurrences`;
  return savings.cost.saved < 0 ? `${against}; negative: so far it cost more than the default would have` : against;
}

function savingsTable(answer) {
  const savings = answer.savings;
  const row = (measure) => {
    const figures = savings[measure.key];
    return el(
      "tr",
      { "data-measure": measure.key },
      el("th", {}, measure.label),
      el("td", {}, measure.format(figures.actual)),
      el("td", {}, measure.format(figures.default_estimate)),
      el("td", {}, measure.format(figures.saved)),
      el("td", {}, percent(figures.fraction)),
      el("td", {}, measure.format(figures.exploration_cost)),
    );
  };
  const head = ["", "actual (every trial)", "at the default (estimate)", "saved", "saved %", "exploration cost"];
  const missing = [savings.default_estimate_missing, savings.exploration_cost_missing].filter(Boolean);
  return el(
    "div",
    {},
    el("div", { class: "scroll" }, el("table", { id: "savings", class: "grid totals" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, MEASURES.map(row)))),
    el(
      "p",
      { class: "note" },
      `At the default: the ${savings.converged_recurrences} converged recurrences each priced at the default batch size's mean converged run. ` +
        "Exploration cost: what the trials at other sizes consumed beyond as many runs at the recommended size.",
    ),
    missing.length ? el("ul", { class: "caveats", id: "savings-missing" }, missing.map((reason) => el("li", {}, `Not estimated: ${reason}.`))) : null,
  );
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

// epochs: the run's last reported epoch (a client may report every epoch or only the last, so
// the number of reports is not the number of epochs run).
function trialTable(trials, onPick, heard, until) {
  const outcome = (trial) => (trial.status === "Dispatched" ? [outcomeLabel("in_flight"), el("div", { class: "note" }, lastHeard(trial, heard, until, true))] : outcomeLabel(outcomeOf(trial)));
  const rows = trials.map((trial) =>
    el(
      "tr",
      { "data-trial": trial.number, onclick: () => onPick(trial.number), class: `outcome-${outcomeOf(trial)}` },
      el("td", {}, trial.number),
      el("td", {}, trial.batch_size),
      el("td", {}, trial.kind),
      el("td", { class: "outcome" }, outcome(trial)),
      el("td", { class: "epochs" }, trial.epoch ?? "–"),
      el("td", {}, joules(trial.cost)),
      el("td", {}, when(trial.dispatched_at)),
      el("td", { class: "why" }, whyText(trial)),
    ),
  );
  const head = ["#", "batch size", "kind", "outcome", "epochs", "cost", "dispatched", "why this batch size"];
  const table = el("table", { id: "trials", class: "grid" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
  return el("div", { class: "scroll tall" }, table);
}

// A knob's input, prefilled with the job's value: a checkbox, the policy select, or a number.
function knobInput(name, step, value) {
  if (step === "bool") return el("input", { name, type: "checkbox", checked: Boolean(value) });
  if (step === "policy") return el("select", { name }, ["zeus", "lsts"].map((policy) => el("option", { value: policy, selected: policy === value }, policy)));
  return el("input", { name, type: "number", step, value: value ?? "", placeholder: value === null || value === undefined ? "as recorded" : null });
}

function inputValue(input) {
  return input.type === "checkbox" ? input.checked : input.value;
}

// Sends only the knobs the user changed: the others keep the job's values server-side (and,
// under another policy, the guards left untouched take that policy's defaults).
function knobForm(state, onSubmit) {
  // beta prefilled with Zeus's default when off, so unticking "no early stopping" gives a bound.
  const values = { ...state.spec, beta_knob: state.spec.beta_knob ?? 2.0, mab_seed: state.seed ?? state.spec.mab_seed, resample_seed: 0 };
  const inputs = {};
  const initial = {};
  const touched = new Set();
  const groups = KNOB_GROUPS.map(([legend, fields]) =>
    el(
      "fieldset",
      { class: "knob-group", "data-policy": legend.toLowerCase() },
      el("legend", {}, legend),
      fields.map(([name, label, step]) => {
        const input = knobInput(name, step, values[name]);
        inputs[name] = input;
        initial[name] = inputValue(input);
        input.addEventListener(step === "bool" || step === "policy" ? "change" : "input", () => touched.add(name));
        return el("label", { class: step === "bool" ? "inline" : null }, step === "bool" ? [input, label] : [label, input]);
      }),
    ),
  );
  const noBeta = el("input", { type: "checkbox", name: "no_beta", checked: state.spec.beta_knob === null });
  groups[1].append(el("label", { class: "inline" }, noBeta, "no early stopping (beta none)"));
  const policyNote = el("p", { class: "note", id: "whatif-policy-note" });
  // What the server runs a knob left out with: the job's value, except a guard under another
  // policy, which takes that policy's default.
  const baseline = (name) => {
    const policy = inputs.policy.value;
    const guard = policy !== state.spec.policy && name in GUARD_DEFAULTS[policy];
    const value = guard ? GUARD_DEFAULTS[policy][name] : initial[name];
    return inputs[name].type === "checkbox" || typeof value !== "number" ? value : String(value);
  };
  // Show the guards a change of policy would bring, unless the user set them.
  inputs.policy.addEventListener("change", () => {
    const policy = inputs.policy.value;
    for (const name of Object.keys(GUARD_DEFAULTS[policy])) {
      if (touched.has(name)) continue;
      if (inputs[name].type === "checkbox") inputs[name].checked = baseline(name);
      else inputs[name].value = baseline(name);
    }
    policyNote.textContent = policy === state.spec.policy ? "" : `Under ${policy}, the guards you leave untouched take ${policy}'s defaults (shown); only the knobs of that policy matter.`;
  });
  const form = el("form", { id: "whatif-form", class: "knobs" }, groups, policyNote, el("button", { type: "submit" }, "Run what-if"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const knobs = {};
    for (const [name, input] of Object.entries(inputs)) {
      const value = inputValue(input);
      if (!touched.has(name) || value === baseline(name)) continue;
      knobs[name] = typeof value === "boolean" || name === "policy" ? value : value === "" ? null : Number(value);
    }
    if (noBeta.checked !== (state.spec.beta_knob === null)) knobs.beta_knob = noBeta.checked ? null : Number(inputs.beta_knob.value);
    else if (noBeta.checked) delete knobs.beta_knob;
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

// Both sides in energy, time and cost; the cost of both priced alike (the eta and max power
// the summary names, when it names them).
function totalsTable(report) {
  const pricing = (totals) => (totals.eta_knob === undefined ? "–" : `eta ${totals.eta_knob}, max power ${totals.max_power} W`);
  const row = (label, totals) =>
    el("tr", { "data-side": label }, el("th", {}, label), el("td", {}, totals.trials ?? "–"), el("td", {}, joules(totals.energy)), el("td", {}, seconds(totals.time)), el("td", {}, joules(totals.cost)), el("td", {}, pricing(totals)));
  const table = el(
    "table",
    { id: "whatif-totals", class: "grid totals" },
    el("thead", {}, el("tr", {}, ["", "trials", "energy", "time", "cost", "cost priced with"].map((h) => el("th", {}, h)))),
    el("tbody", {}, row("actual", report.summary.actual), row("counterfactual", report.summary.counterfactual)),
  );
  return el("div", { class: "scroll" }, table);
}

function differencesTable(changed, page) {
  const side = (view) => (view ? `${view.batch_size} · ${view.stop_reason ?? view.outcome ?? "in flight"} · ${joules(view.cost)}` : "not simulated");
  const rows = changed.slice(page * TABLE_PAGE, (page + 1) * TABLE_PAGE).map((trial) =>
    el("tr", {}, el("td", {}, trial.number), el("td", {}, side(trial.actual)), el("td", {}, side(trial.counterfactual)), el("td", {}, trial.changed.join(", "))),
  );
  const head = ["#", "actual: batch size · stop · cost", "counterfactual: batch size · stop · cost", "what changed"];
  const table = el("table", { id: "whatif-diffs", class: "grid" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
  return el("div", { class: "scroll tall" }, table);
}

export async function showJob(view, jobId, params, scope) {
  view.replaceChildren(el("p", { class: "loading" }, "Loading…"));
  let [latest, current] = await Promise.all([api.state(jobId), api.summary(jobId)]);
  if (!scope.alive) return;
  const charts = {};
  window.bsoCharts = charts;
  let shown = { state: latest, trials: [], heard: new Map() };
  let tablePage = 0;
  let picked = null;
  // Each fetch-and-draw takes a ticket of its sequence; an answer overtaken by a later one
  // (a quicker time travel, table page, telemetry pick or what-if) is dropped.
  const travels = new Sequence();
  const tables = new Sequence();
  const picks = new Sequence();
  const whatIfs = new Sequence();
  let checked = nowIso();
  let follow = true; // the user looks at the latest version (not time-travelling): live redraws

  const answersBox = el("section", { id: "answers" });
  const summaryBox = el("section", { id: "summary" });
  const slider = el("input", { id: "tt-version-range", type: "range", min: 1, max: latest.version, value: latest.version });
  const versionInput = el("input", { id: "tt-version", type: "number", min: 1, max: latest.version, value: latest.version });
  const atInput = el("input", { id: "tt-at", type: "text", placeholder: "2024-05-01T12:00:00Z" });
  const ttStatus = el("span", { id: "tt-status" });
  const ttLoading = indicator("tt-loading", "Loading…");
  const ttError = el("span", { class: "error", id: "tt-error" });
  const liveStatus = el("span", { id: "live-status", class: "live" });
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
    ttLoading,
    ttError,
    el("div", { class: "live-line" }, liveStatus),
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
  const whatIfLoading = indicator("whatif-loading", "Replaying the history with these knobs…");
  const whatIfForm = knobForm(latest, runWhatIf);
  whatIfForm.append(whatIfLoading);
  const csv = el("button", { type: "button", id: "download-csv", onclick: () => download(api.csvUrl(jobId), `${latest.job_id}-trials.csv`) }, "Download trials as CSV");

  view.replaceChildren(
    el("h1", {}, latest.job_id, latest.deleted ? el("span", { class: "badge" }, "deleted") : null),
    answersBox,
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
    el(
      "section",
      { class: "whatif" },
      // Two dozen knobs: folded away until wanted, so the page stays short.
      el(
        "details",
        { id: "whatif-details" },
        el("summary", {}, el("h2", {}, "What if the job had other knobs?"), el("span", { class: "note" }, " replay its history under other knobs or the other policy (open to set them)")),
        whatIfForm,
      ),
      whatIfResult,
    ),
  );
  tickAges(scope, view);

  // A chart redrawn keeps the legend entries the user hid.
  function draw(name, make) {
    const old = charts[name];
    const hidden = new Set(old ? old.data.datasets.filter((_, index) => !old.isDatasetVisible(index)).map((dataset) => dataset.label) : []);
    if (old) old.destroy();
    const chart = (charts[name] = make ? make(boxes[name].canvas) : null);
    if (!chart || !hidden.size) return;
    chart.data.datasets.forEach((dataset, index) => hidden.has(dataset.label) && chart.setDatasetVisibility(index, false));
    chart.update();
  }

  // Newer answers only: the job's latest state and its current summary never go back.
  function learn(state, summaryNow) {
    if (state && state.version > latest.version) latest = state;
    if (summaryNow && summaryNow.version >= current.version) current = summaryNow;
  }

  // Which version is shown of which, and whether the page follows the job as it moves.
  function statuses() {
    const { state } = shown;
    slider.max = versionInput.max = latest.version;
    ttStatus.textContent = `showing version ${state.version} of ${latest.version}, as at ${when(state.updated_at)}`;
    liveStatus.dataset.following = follow;
    liveStatus.replaceChildren(
      follow
        ? "Live: following the job, redrawn when it moves; checked "
        : `Live: the job is at version ${latest.version} now; you are time-travelling, so nothing is redrawn (Latest follows it again); checked `,
      since("", checked),
    );
  }

  // The age of in-flight trials, newest first: the reported_at of each one's last report (the
  // trial row does not carry it, so the newest IN_FLIGHT_HEARD are read, as of the version shown).
  async function heardOf(state, trials) {
    const reported = trials.filter((trial) => trial.status === "Dispatched" && trial.epochs_reported > 0).slice(-IN_FLIGHT_HEARD);
    const details = await Promise.all(reported.map((trial) => api.trial(jobId, trial.number)));
    const heard = new Map();
    for (const detail of details) {
      const epochs = detail.epochs.filter((epoch) => epoch.reported_at <= state.updated_at);
      if (epochs.length) heard.set(detail.number, epochs[epochs.length - 1].reported_at);
    }
    return heard;
  }

  // Ages tick while the version shown is the latest; at a past version they are fixed, told
  // before that version's instant.
  function ageUntil() {
    return shown.state.version === latest.version ? null : shown.state.updated_at;
  }

  // The table shows one page of trials, fetched with their why for the version shown.
  async function drawTable() {
    const ticket = tables.take();
    tableBox.classList.add("pending");
    const rows = (await api.trialsWhy(jobId, shown.state.version, { after: tablePage * TABLE_PAGE, limit: TABLE_PAGE })).trials;
    if (tables.stale(ticket, scope)) return;
    tableBox.classList.remove("pending");
    tableBox.replaceChildren(
      pager(shown.trials.length, tablePage, (page) => { tablePage = page; drawTable(); }, "trials-pager"),
      trialTable(rows, pick, shown.heard, ageUntil()),
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
    const ticket = picks.take();
    const at = shown;
    const detail = await api.trial(jobId, number);
    // As it was at the version shown: only the epochs reported by then.
    detail.epochs = detail.epochs.filter((epoch) => epoch.reported_at <= at.state.updated_at);
    const threshold = boundOf(at, trial, detail);
    if (picks.stale(ticket, scope)) return;
    draw("telemetry", (canvas) => telemetryChart(canvas, detail, at.state.spec, threshold));
    const bound = threshold ? `bound ${joules(threshold.value)} (${threshold.label})` : "no cost bound";
    const last = detail.epochs.length ? `, the last at epoch ${detail.epochs[detail.epochs.length - 1].epoch}` : "";
    telemetryNote.textContent = `${detail.epochs.length} epoch reports${last}; ${outcomeLabel(outcomeOf(trial))}; ${bound}. Why: ${whyText(detail)}`;
  }

  // The bound the trial was judged against: its own, recorded at dispatch where the policy
  // fixes bounds then (LSTS; escalation included), else Zeus's beta x the reference (min cost,
  // or the cheapest recent converged run) at its last report, times the escalation it was
  // dispatched with.
  function boundOf(at, trial, detail) {
    const { spec, early_stop: stop } = at.state;
    if (stop.judged === "at_dispatch") {
      if (detail.cost_bound === null || detail.cost_bound === undefined) return null;
      const terms = detail.why && detail.why.phase === "bandit" ? `beta_bandit ${spec.beta_bandit} × exp(min mean log cost)` : `beta_explore ${spec.beta_explore} × best`;
      return { value: detail.cost_bound, label: `set at dispatch: ${terms}${spec.bound_escalation ? ", escalation included" : ""}` };
    }
    const reference = zeusReferenceBefore(at.trials, trial, spec.stop_window);
    if (spec.beta_knob === null || reference === null) return null;
    const escalation = trial.bound_scale; // fixed at its dispatch (1 without escalation)
    const named = referenceName(spec.stop_window);
    const scaled = escalation === 1 ? "" : ` × escalation ${escalation}`;
    return { value: spec.beta_knob * reference * escalation, label: `beta ${spec.beta_knob} × ${named}${scaled}` };
  }

  function defaultPick() {
    const reported = shown.trials.filter((trial) => trial.epochs_reported > 0);
    const richest = reported.reduce((best, trial) => (!best || trial.epochs_reported > best.epochs_reported ? trial : best), null);
    return picked && shown.trials.some((trial) => trial.number === picked) ? picked : richest && richest.number;
  }

  // Fetch the job at a moment and draw it. moment: {version}, {at}, {fresh} (the latest, read
  // again) or {known} (a state in hand). A live redraw (the poll saw the job move) shows no
  // loading indicator and keeps the table page; a time travel shows one and starts at page 1.
  function travel(moment, { live = false } = {}) {
    const started = performance.now();
    ttError.textContent = "";
    ttLoading.textContent = moment.version ? `Loading version ${moment.version}…` : moment.at ? `Loading ${moment.at}…` : "Loading the latest version…";
    return runLatest(travels, live ? null : ttLoading, async (ticket) => {
      let fetched;
      try {
        if (moment.fresh || live) {
          const [state, summaryNow] = await Promise.all([moment.known || api.state(jobId), api.summary(jobId)]);
          learn(state, summaryNow);
        }
        const known = moment.known || (moment.fresh ? latest : moment.at ? await api.state(jobId, null, moment.at) : moment.version === latest.version ? latest : null);
        const version = known ? known.version : moment.version;
        const [state, trials, explorations] = await Promise.all([
          known || api.state(jobId, version),
          api.trials(jobId, version),
          api.trialsWhy(jobId, version, { kind: "Exploration" }),
        ]);
        const heard = await heardOf(state, trials.trials);
        fetched = { state, trials: trials.trials, explorations: explorations.trials, heard };
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (travels.stale(ticket, scope)) return;
        ttError.textContent = error.message;
        return;
      }
      if (travels.stale(ticket, scope)) return;
      shown = fetched;
      const { state, trials } = shown;
      follow = state.version === latest.version;
      slider.value = versionInput.value = state.version;
      statuses();
      view.dataset.shownVersion = state.version;
      history.replaceState(null, "", `${location.pathname}${state.version === latest.version ? "" : `?version=${state.version}`}`);
      answersBox.replaceChildren(answers(current, state));
      summaryBox.replaceChildren(summary(state, trials, shown.heard, ageUntil()));
      const { spec } = state;
      const sizes = spec.batch_sizes;
      const stop = { atDispatch: state.early_stop.judged === "at_dispatch", beta: spec.beta_knob, window: spec.stop_window, escalation: spec.bound_escalation };
      draw("batchSize", (canvas) => batchSizeChart(canvas, trials, sizes, pick));
      draw("cost", (canvas) => costChart(canvas, trials, stop, pick));
      draw("arms", state.arms.length ? (canvas) => armsChart(canvas, state.arms, state.policy) : null);
      armsNote.textContent = state.arms.length ? "" : `No bandit yet: the job is in ${stageText(state.stage, state.pruning)}.`;
      // Zeus prunes in rounds; LSTS walks (state.lsts), with no pruning rounds at all.
      if (state.pruning) draw("pruning", (canvas) => pruningChart(canvas, shown.explorations, state.pruning.survivors, sizes, state.stage));
      else draw("pruning", (canvas) => lstsWalkChart(canvas, shown.explorations, state.lsts, sizes));
      if (!live) tablePage = 0;
      tablePage = Math.min(tablePage, Math.max(0, Math.ceil(trials.length / TABLE_PAGE) - 1));
      const first = defaultPick();
      await Promise.all([drawTable(), first ? pick(first) : draw("telemetry", null)]);
      if (travels.stale(ticket, scope)) return;
      // Read by bench/dashboard.py: how long fetching and drawing this moment took.
      if (!live) performance.measure("bso-job-drawn", { start: started });
      view.dataset.rendered = `version-${state.version}`;
    });
  }

  async function runWhatIf(knobs) {
    whatIfResult.classList.add("pending");
    const report = await runLatest(whatIfs, whatIfLoading, async (ticket) => {
      try {
        const answer = await api.reanalysis(jobId, knobs);
        return whatIfs.stale(ticket, scope) ? null : answer;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (whatIfs.stale(ticket, scope)) return null;
        whatIfResult.classList.remove("pending");
        whatIfResult.replaceChildren(el("p", { class: "error", id: "whatif-error" }, error.message));
        return null;
      }
    });
    if (!report) return;
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
    whatIfResult.classList.remove("pending");
    whatIfResult.dataset.knobs = JSON.stringify(knobs);
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

  // Live: the job's version is read every JOB_POLL_MS while the tab is visible (GET
  // /v1/jobs/{id}/state, served from the rendered answer while the job has not moved). When it
  // moved, the page redraws if it showed the latest version; when time-travelling it only says
  // so (and the "Now" answers, always the current ones, are brought up to date). A time travel
  // in flight wins: the poll then waits for the next tick.
  poll(scope, JOB_POLL_MS, async () => {
    if (travels.busy) return;
    const state = await api.state(jobId);
    if (!scope.alive || travels.busy) return;
    checked = nowIso();
    const moved = state.version > latest.version;
    learn(state, null);
    // Following, the page catches up with the job (also after a redraw that failed).
    if (follow && state.version > shown.state.version) {
      await travel({ known: state }, { live: true });
      return;
    }
    if (moved) {
      const summaryNow = await api.summary(jobId);
      if (!scope.alive || travels.busy) return;
      learn(null, summaryNow);
      answersBox.replaceChildren(answers(current, shown.state));
    }
    statuses();
  }, (error) => liveStatus.replaceChildren(el("span", { class: "error" }, `Live: ${error.message}; trying again`)));

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
