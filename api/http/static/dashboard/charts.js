// Chart.js configurations of the job page. Every chart has titled axes with units
// and a legend; data are {x, y} points (parsing off), so 10,000 trials draw fast, and no
// series draws more than MAX_POINTS points (see thin): lines are drawn over the points.

import { KINDS, OUTCOMES, armCost, joules, outcomeOf, shapeOf, thousands } from "./format.js";
import { referenceName, runningMinCost, runningZeusReference, steps } from "./history.js";

const Chart = window.Chart;
Chart.defaults.animation = false;
Chart.defaults.font.family = "system-ui, sans-serif";
Chart.defaults.plugins.legend.position = "bottom";
Chart.defaults.plugins.legend.labels.usePointStyle = true;
Chart.defaults.plugins.legend.labels.boxWidth = 10;
Chart.defaults.plugins.legend.labels.boxHeight = 8;
Chart.defaults.plugins.legend.labels.padding = 8;
Chart.defaults.maintainAspectRatio = false;

const ROUND_COLOURS = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2"];
const SHAPE_INK = "#374151";
// Datasets drawn with a lower order go on top: the lines of a chart over its points.
const ON_TOP = -1;

// The most points a series draws. A longer one (on a job of thousands of trials, the
// converged bandit runs) is cut into runs of consecutive trials, and of each run keeps its
// lowest and highest point, so the spread and every outlier of the cost stay; with
// ``distinct`` (batch sizes, a few values) one point per value and run instead. Shorter
// series (the rarer outcomes: stopped, not converged, ended, expired, in flight) are drawn whole.
export const MAX_POINTS = 2000;

export function thin(points, distinct = false) {
  if (points.length <= MAX_POINTS) return { points, run: 1 };
  const values = distinct ? new Set(points.map((point) => point.y)).size : 2;
  const size = Math.ceil(points.length / Math.max(1, Math.floor(MAX_POINTS / values)));
  const kept = [];
  for (let start = 0; start < points.length; start += size) {
    const run = points.slice(start, start + size);
    if (distinct) {
      const seen = new Set();
      for (const point of run) {
        if (seen.has(point.y)) continue;
        seen.add(point.y);
        kept.push(point);
      }
      continue;
    }
    let [low, high] = [run[0], run[0]];
    for (const point of run) {
      if (point.y < low.y) low = point;
      if (point.y > high.y) high = point;
    }
    kept.push(...(low === high ? [low] : low.x < high.x ? [low, high] : [high, low]));
  }
  return { points: kept, run: size };
}

// The chart's note (its subtitle) when a series was thinned: how many points stand for how many trials.
function thinningNote(datasets, distinct) {
  const thinned = datasets.filter((dataset) => dataset.total > dataset.data.length);
  if (!thinned.length) return null;
  const drawn = datasets.reduce((sum, dataset) => sum + dataset.data.length, 0);
  const total = datasets.reduce((sum, dataset) => sum + dataset.total, 0);
  const kept = distinct ? "each batch size" : "the lowest and highest cost";
  const run = Math.max(...thinned.map((dataset) => dataset.run));
  return [
    `${thousands(total)} trials drawn as ${thousands(drawn)} points`,
    `series over ${thousands(MAX_POINTS)} points: ${kept} of each ${run} consecutive trials; rarer outcomes: every trial`,
  ];
}

function subtitle(text) {
  return { display: Boolean(text), text: text || "", color: "#6b7280", font: { size: 11 }, padding: { bottom: 4 } };
}

function axis(title, extra = {}) {
  return { title: { display: true, text: title }, ...extra };
}

// Whole trial numbers from 0 to one past ``last``, so no point sits on the border.
function trialAxis(title, last) {
  return axis(title, { type: "linear", min: 0, max: last + 1, ticks: { precision: 0 } });
}

function lastNumber(trials) {
  return trials.reduce((max, trial) => Math.max(max, trial.number), 1);
}

// A linear axis over log2(batch size), with a tick at each of the job's batch sizes.
function log2Axis(sizes) {
  return axis("batch size (log2 scale)", {
    type: "linear",
    min: Math.log2(Math.min(...sizes)) - 0.25,
    max: Math.log2(Math.max(...sizes)) + 0.25,
    afterBuildTicks: (scale) => {
      scale.ticks = sizes.map((size) => ({ value: Math.log2(size) }));
    },
    ticks: { callback: (value) => String(Math.round(2 ** value)) },
  });
}

function trialTooltip(context) {
  const trial = context.raw.trial;
  if (!trial) return `${context.dataset.label}: ${context.formattedValue}`;
  return `trial ${trial.number}: batch size ${trial.batch_size}, ${trial.kind}, cost ${joules(trial.cost)}`;
}

// A dataset per outcome (colour) and kind (shape) of trial: Chart.js shares the options
// of every point of a dataset whose style is constant, which draws 10,000 points many
// times faster than per-point styles. The legend shows one entry per outcome and one per
// shape (empty datasets); clicking one hides or shows every dataset with that outcome or kind.
// Each series is thinned to MAX_POINTS (``distinct``: see thin); ``total`` keeps its trial count.
function outcomeDatasets(trials, y, distinct = false) {
  const radius = trials.length > 2000 ? 2 : 4;
  const groups = new Map(); // "outcome kind" -> its points, in one pass over the trials
  for (const trial of trials) {
    const value = y(trial);
    if (value === null) continue;
    const key = `${outcomeOf(trial)} ${trial.kind}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push({ x: trial.number, y: value, trial });
  }
  const points = [];
  for (const outcome of OUTCOMES) {
    for (const kind of KINDS) {
      const mine = groups.get(`${outcome.key} ${kind.key}`);
      if (!mine) continue;
      const thinned = thin(mine, distinct);
      points.push({
        label: `${outcome.label} · ${kind.label}`,
        outcome: outcome.key,
        kind: kind.key,
        data: thinned.points,
        total: mine.length,
        run: thinned.run,
        pointStyle: kind.shape,
        backgroundColor: outcome.colour,
        borderColor: outcome.colour,
        pointRadius: radius,
        pointBorderWidth: 0, // filled shapes only: a stroke per point would double the drawing
        showLine: false,
      });
    }
  }
  // The legend names the outcomes and kinds this chart has, no more.
  const present = (key, value) => points.some((dataset) => dataset[key] === value);
  const colours = OUTCOMES.filter((outcome) => present("outcome", outcome.key)).map((outcome) => ({ label: outcome.label, legendFor: { outcome: outcome.key }, data: [], pointStyle: "circle", backgroundColor: outcome.colour, borderColor: outcome.colour }));
  const shapes = KINDS.filter((kind) => present("kind", kind.key)).map((kind) => ({ label: `shape: ${kind.label}`, legendFor: { kind: kind.key }, data: [], pointStyle: kind.shape, backgroundColor: "#ffffff", borderColor: SHAPE_INK }));
  return [...points, ...colours, ...shapes];
}

// Legend options for outcomeDatasets: entries for the colours, shapes and any other line.
const outcomeLegend = {
  labels: { filter: (item, data) => !data.datasets[item.datasetIndex].outcome, sort: (a, b) => a.datasetIndex - b.datasetIndex },
  onClick: (event, item, legend) => {
    const chart = legend.chart;
    const entry = chart.data.datasets[item.datasetIndex];
    if (!entry.legendFor) {
      chart.setDatasetVisibility(item.datasetIndex, !chart.isDatasetVisible(item.datasetIndex));
    } else {
      const [key, value] = Object.entries(entry.legendFor)[0];
      const hide = chart.isDatasetVisible(item.datasetIndex);
      chart.data.datasets.forEach((dataset, index) => {
        if (index === item.datasetIndex || dataset[key] === value) chart.setDatasetVisibility(index, !hide);
      });
    }
    chart.update();
  },
};

function pickOnClick(onPick) {
  return (event, elements, chart) => {
    if (!elements.length) return;
    const { datasetIndex, index } = elements[0];
    const point = chart.data.datasets[datasetIndex].data[index];
    if (point && point.trial) onPick(point.trial.number);
  };
}

export function batchSizeChart(canvas, trials, sizes, onPick) {
  const datasets = outcomeDatasets(trials, (trial) => Math.log2(trial.batch_size), true);
  return new Chart(canvas, {
    type: "scatter",
    data: { datasets },
    options: {
      parsing: false,
      normalized: true,
      onClick: pickOnClick(onPick),
      scales: { x: trialAxis("trial number", lastNumber(trials)), y: log2Axis(sizes) },
      plugins: {
        legend: outcomeLegend,
        title: { display: true, text: "Batch size chosen per trial" },
        subtitle: subtitle(thinningNote(datasets.filter((dataset) => dataset.outcome), true)),
        tooltip: { callbacks: { label: trialTooltip } },
      },
    },
  });
}

// The stop threshold line of the cost chart, as the job's stop rule sets it: each run's own
// bound where bounds are fixed at dispatch (LSTS: recorded per trial, escalation included),
// else Zeus's beta x reference after each final report (judged at every report).
function thresholdLine(trials, stop) {
  const style = { borderColor: "#dc2626", backgroundColor: "#dc2626", borderDash: [6, 4], showLine: true, stepped: true, pointRadius: 0, borderWidth: 2, order: ON_TOP };
  if (stop.atDispatch) {
    const bounded = trials.filter((trial) => trial.cost_bound !== null && trial.cost_bound !== undefined);
    if (!bounded.length) return null;
    return { ...style, label: "each run's cost bound (set at its dispatch)", data: thin(steps(bounded.map((trial) => ({ x: trial.number, y: trial.cost_bound })))).points };
  }
  if (stop.beta === null) return null;
  const escalation = stop.escalation ? ", escalation not drawn" : "";
  const reference = referenceName(stop.window);
  const running = runningZeusReference(trials, stop.window);
  return { ...style, label: `stop threshold (beta ${stop.beta} × ${reference}${escalation})`, data: thin(steps(running.map((point) => ({ x: point.number, y: stop.beta * point.reference })))).points };
}

// stop: {atDispatch, beta, window, escalation}: how the job's stop rule bounds a run.
export function costChart(canvas, trials, stop, onPick) {
  const running = runningMinCost(trials);
  const lines = [
    {
      label: "running min cost",
      data: thin(steps(running.map((point) => ({ x: point.number, y: point.minCost })))).points,
      borderColor: "#111827",
      backgroundColor: "#111827",
      showLine: true,
      stepped: true,
      pointRadius: 0,
      borderWidth: 2,
      order: ON_TOP,
    },
  ];
  const threshold = thresholdLine(trials, stop);
  if (threshold) lines.push(threshold);
  const points = outcomeDatasets(trials, (trial) => trial.cost);
  return new Chart(canvas, {
    type: "scatter",
    data: { datasets: [...points, ...lines] },
    options: {
      parsing: false,
      normalized: true,
      onClick: pickOnClick(onPick),
      scales: {
        x: trialAxis("trial number", lastNumber(trials)),
        y: axis("cost (J)", { ticks: { callback: (value) => joules(value) } }),
      },
      plugins: {
        legend: outcomeLegend,
        title: { display: true, text: "Cost per trial (at its last report), running min cost, stop threshold" },
        subtitle: subtitle(thinningNote(points.filter((dataset) => dataset.outcome), false)),
        tooltip: { callbacks: { label: trialTooltip } },
      },
    },
  });
}

// Per arm (batch size): the posterior mean cost with a bar of one standard deviation
// either side, and its number of observations on the right axis.
// LSTS arms come in Zeus's shape: the cost is exp(mean log cost), its sd by the delta method.
export function armsChart(canvas, arms, policy) {
  const lsts = policy === "lsts";
  const labels = arms.map((arm) => String(arm.batch_size));
  const costs = arms.map(armCost);
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [
        {
          type: "line",
          label: lsts ? "exp(mean log cost)" : "posterior mean cost",
          data: costs.map((cost) => cost.mean),
          showLine: false,
          pointRadius: 7,
          pointStyle: "crossRot",
          borderWidth: 2,
          borderColor: "#111827",
          backgroundColor: "#111827",
          yAxisID: "y",
        },
        {
          label: "mean ± 1 standard deviation",
          data: costs.map((cost) => (cost.sd === null ? null : [cost.mean - cost.sd, cost.mean + cost.sd])),
          backgroundColor: "rgba(37, 99, 235, 0.35)",
          borderColor: "#2563eb",
          borderWidth: 1,
          minBarLength: 2,
          barPercentage: 0.5,
          yAxisID: "y",
        },
        {
          type: "line",
          label: "observations",
          data: arms.map((arm) => arm.num_observations),
          showLine: false,
          pointRadius: 6,
          pointStyle: "rectRot",
          borderColor: "#6b7280",
          backgroundColor: "#d1d5db",
          yAxisID: "observations",
        },
      ],
    },
    options: {
      scales: {
        x: axis("batch size (arm)"),
        y: axis("cost (J)", { position: "left", grace: "10%", ticks: { callback: (value) => joules(value) } }),
        observations: axis("observations (count)", {
          position: "right",
          beginAtZero: true,
          grace: "10%",
          ticks: { precision: 0 },
          grid: { drawOnChartArea: false },
        }),
      },
      plugins: {
        title: {
          display: true,
          text: lsts ? "LSTS arms: exp(mean log cost) ± 1 sd (delta method), and observations" : "Bandit arms: posterior mean cost ± 1 sd, and observations",
        },
      },
    },
  });
}

// Exploration trials (with their why) in walk order (trial number) by batch size: a
// line per round and direction; the survivors of the last round are the stars on the right.
export function pruningChart(canvas, explorations, survivors, sizes, stage) {
  const walks = new Map();
  for (const trial of explorations) {
    const key = `round ${trial.why.round}, walking ${trial.why.direction}`;
    if (!walks.has(key)) walks.set(key, { round: trial.why.round, direction: trial.why.direction, trials: [] });
    walks.get(key).trials.push(trial);
  }
  const datasets = [...walks.entries()].map(([label, walk]) => {
    const colour = ROUND_COLOURS[(walk.round - 1) % ROUND_COLOURS.length];
    return {
      label,
      data: walk.trials.map((trial) => ({ x: trial.number, y: Math.log2(trial.batch_size), trial })),
      borderColor: colour,
      backgroundColor: walk.trials.map((trial) => (trial.converged ? colour : "#ffffff")),
      pointStyle: "triangle",
      pointRotation: walk.direction === "down" ? 180 : 0,
      pointRadius: 6,
      showLine: true,
      borderWidth: 1,
    };
  });
  const lastX = explorations.length ? explorations[explorations.length - 1].number + 1 : 1;
  datasets.push(stars(stage === "MAB" ? "survived pruning (bandit arms)" : "still candidates", survivors, lastX));
  return walkChart(canvas, datasets, sizes, lastX, "trial number (pruning explorations)", "Pruning walk: filled = converged, hollow = not; ▼ down, ▲ up");
}

// The sizes a walk leads to (survivors, arms, the next step), as stars after its last trial.
function stars(label, batchSizes, x) {
  return {
    label,
    data: batchSizes.map((size) => ({ x, y: Math.log2(size) })),
    pointStyle: "star",
    pointRadius: 9,
    borderWidth: 2,
    borderColor: "#111827",
    backgroundColor: "#111827",
    showLine: false,
  };
}

function walkChart(canvas, datasets, sizes, lastX, axisTitle, title) {
  return new Chart(canvas, {
    type: "scatter",
    data: { datasets },
    options: {
      parsing: false,
      scales: { x: trialAxis(axisTitle, lastX), y: log2Axis(sizes) },
      plugins: {
        title: { display: true, text: title },
        tooltip: { callbacks: { label: trialTooltip } },
      },
    },
  });
}

// LSTS has no pruning rounds: its local search walks from the default size, down while a
// step is cheaper, then up (unless skip_up), one exploration at a time. The explorations in
// dispatch order by batch size, filled when converged; stars: the bandit's arms, or the
// step the walk runs next.
export function lstsWalkChart(canvas, explorations, lsts, sizes) {
  const shapes = { start: ["circle", 0], down: ["triangle", 180], up: ["triangle", 0] };
  const shape = (trial) => shapes[trial.why.direction] || shapes.start;
  const colour = ROUND_COLOURS[0];
  const datasets = [
    {
      label: "walk (explorations in order)",
      data: explorations.map((trial) => ({ x: trial.number, y: Math.log2(trial.batch_size), trial })),
      borderColor: colour,
      backgroundColor: explorations.map((trial) => (trial.converged ? colour : "#ffffff")),
      pointStyle: explorations.map((trial) => shape(trial)[0]),
      pointRotation: explorations.map((trial) => shape(trial)[1]),
      pointRadius: 6,
      showLine: true,
      borderWidth: 1,
    },
  ];
  const lastX = explorations.length ? explorations[explorations.length - 1].number + 1 : 1;
  const ahead = lsts.phase === "bandit" ? lsts.arms : [lsts.next_step, lsts.in_flight].filter(Boolean).map((step) => step.batch_size);
  if (ahead.length) {
    datasets.push(stars(lsts.phase === "bandit" ? "bandit arms (explored sizes near the best)" : "the walk's step in flight or next", ahead, lastX));
  }
  return walkChart(
    canvas, datasets, sizes, lastX, "trial number (local search explorations)",
    "LSTS local search walk (no pruning rounds): filled = converged, hollow = not; ● start, ▼ down, ▲ up",
  );
}

// One trial's epochs: cost (left axis) and metric (right axis) against epoch, with
// the job's target metric and the stop threshold that bounded this trial.
// threshold: {value, label} of the bound the trial was judged against, or null (none).
export function telemetryChart(canvas, trial, spec, threshold) {
  const epochs = trial.epochs;
  const span = epochs.length ? [Math.min(1, epochs[0].epoch), epochs[epochs.length - 1].epoch] : [0, 1];
  const flat = (value) => span.map((x) => ({ x, y: value }));
  const datasets = [
    { label: "cost", data: epochs.map((e) => ({ x: e.epoch, y: e.cost })), borderColor: "#2563eb", backgroundColor: "#2563eb", yAxisID: "y" },
    { label: "metric", data: epochs.map((e) => ({ x: e.epoch, y: e.metric })), borderColor: "#1e8c45", backgroundColor: "#1e8c45", yAxisID: "metric" },
    { label: `target metric (${spec.target_metric})`, data: flat(spec.target_metric), borderColor: "#1e8c45", borderDash: [6, 4], pointRadius: 0, yAxisID: "metric" },
  ];
  if (threshold !== null) {
    datasets.push({ label: `stop threshold (${threshold.label} = ${joules(threshold.value)})`, data: flat(threshold.value), borderColor: "#dc2626", borderDash: [6, 4], pointRadius: 0, yAxisID: "y" });
  }
  return new Chart(canvas, {
    type: "line",
    data: { datasets },
    options: {
      parsing: false,
      scales: {
        x: axis("epoch", { type: "linear", ticks: { precision: 0 } }),
        y: axis("cumulative cost (J)", { position: "left", grace: "5%", ticks: { callback: (value) => joules(value) } }),
        metric: axis("validation metric", { position: "right", grace: "5%", grid: { drawOnChartArea: false } }),
      },
      plugins: { title: { display: true, text: `Trial ${trial.number} (batch size ${trial.batch_size}): per-epoch telemetry` } },
    },
  });
}

function cumulative(trials, side) {
  let total = 0;
  return trials.map((trial) => {
    const view = trial[side];
    if (view && view.cost !== null) total += view.cost;
    return { x: trial.number, y: total };
  });
}

export function whatIfChart(canvas, report) {
  return new Chart(canvas, {
    type: "line",
    data: {
      datasets: [
        { label: "actual", data: cumulative(report.trials, "actual"), borderColor: "#111827", backgroundColor: "#111827", pointRadius: 0, order: 2 },
        { label: "counterfactual", data: cumulative(report.trials, "counterfactual"), borderColor: "#e07b00", backgroundColor: "#e07b00", borderDash: [6, 3], pointRadius: 0, order: 1 },
      ],
    },
    options: {
      parsing: false,
      normalized: true,
      scales: {
        x: axis("trial number", { type: "linear" }),
        y: axis("cumulative cost (J)", { ticks: { callback: (value) => joules(value) } }),
      },
      plugins: {
        title: { display: true, text: "What-if: cumulative cost per trial, actual against counterfactual" },
        legend: { labels: { sort: (a, b) => a.datasetIndex - b.datasetIndex } },
      },
    },
  });
}
