// What the charts and the table derive from a job's trial list.

import { armCost, joules, number } from "./format.js";

function finishOrder(a, b) {
  return a.finished_at === b.finished_at ? a.number - b.number : a.finished_at < b.finished_at ? -1 : 1;
}

// The job's min cost right after each final report, in the order the reports came:
// every final report lowers it when its cost is lower (as the service does).
// Returns [{number, minCost}] sorted by trial number.
export function runningMinCost(trials) {
  const reported = trials.filter((trial) => trial.status === "Succeeded" && trial.cost !== null).sort(finishOrder);
  let min = null;
  const points = reported.map((trial) => {
    min = min === null ? trial.cost : Math.min(min, trial.cost);
    return { number: trial.number, minCost: min };
  });
  return points.sort((a, b) => a.number - b.number);
}

// The points of a stepped line where its value changes, and its last point: the same
// line as every point drawn, for a fraction of the points on a long history.
export function steps(points) {
  return points.filter((point, index) => index === 0 || index === points.length - 1 || point.y !== points[index - 1].y);
}

// The min cost that bounded a trial: the lowest final cost reported before it finished
// (before now, for a trial in flight); null while nothing has been reported.
export function minCostBefore(trials, trial) {
  const costs = trials
    .filter((other) => other.status === "Succeeded" && other.cost !== null && other.number !== trial.number)
    .filter((other) => !trial.finished_at || finishOrder(other, trial) < 0)
    .map((other) => other.cost);
  return costs.length ? Math.min(...costs) : null;
}

function armsText(arms) {
  return arms
    .map((arm) => {
      const { mean, sd } = armCost(arm);
      return `${arm.batch_size}: ${joules(mean)}${sd === null ? "" : ` ± ${joules(sd)}`} (n=${arm.num_observations})`;
    })
    .join("; ");
}

// The reason the event log records for a trial's batch size, in words.
export function whyText(trial) {
  const why = trial.why || {};
  if (why.stage === "Pruning" && trial.kind === "Exploration") {
    return `pruning round ${why.round}, walking ${why.direction} from the default: explore ${trial.batch_size}`;
  }
  if (why.stage === "Pruning") {
    return `pruning round ${why.round}: waiting for trial ${why.waiting_for_trial} (batch size ${why.waiting_for_batch_size}), so ran the best so far (${why.min_cost_batch_size})`;
  }
  if (why.phase === "explore") {
    return `bandit explore: permutation ${why.permutation.join(", ")}; first arm with too few observations. Arms: ${armsText(why.arms)}`;
  }
  if (why.phase === "thompson") {
    const samples = Object.entries(why.samples)
      .map(([size, reward]) => `${size}: ${joules(-reward)}`)
      .join(", ");
    return `bandit Thompson sampling: sampled costs ${samples}; lowest wins. Arms: ${armsText(why.arms)}`;
  }
  return JSON.stringify(why);
}

export function trialCounts(trials) {
  return `${number(trials.total)} (${trials.dispatched} in flight, ${trials.converged} converged, ${trials.not_converged} stopped, ${trials.failed} ended or expired)`;
}
