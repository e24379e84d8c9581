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

// What Zeus's stop rule multiplies beta by, right after each final report: the min cost
// (window 0), or the cheapest of the last ``window`` converged trials (by trial number) among
// those finished by then (stop_window, domain/zeus_policy.py). [{number, reference}] by number.
export function runningZeusReference(trials, window) {
  if (!window) return runningMinCost(trials).map((point) => ({ number: point.number, reference: point.minCost }));
  const reported = trials.filter((trial) => trial.status === "Succeeded" && trial.cost !== null).sort(finishOrder);
  const converged = []; // by trial number (reports come nearly in number order: a short walk back)
  const points = reported.map((trial) => {
    if (trial.converged) {
      let at = converged.length;
      while (at > 0 && converged[at - 1].number > trial.number) at -= 1;
      converged.splice(at, 0, trial);
    }
    const recent = converged.slice(-window);
    return { number: trial.number, reference: recent.length ? Math.min(...recent.map((other) => other.cost)) : null };
  });
  return points.filter((point) => point.reference !== null).sort((a, b) => a.number - b.number);
}

// What Zeus's bound multiplies beta by, in words (stop_window: the job's window, 0 for none).
export function referenceName(window) {
  return window ? `cheapest of the last ${window} converged` : "min cost";
}

// The reference of Zeus's bound when ``trial`` was last judged (its final report, or now for
// a trial in flight): as runningZeusReference, over the trials that had finished before it.
export function zeusReferenceBefore(trials, trial, window) {
  if (!window) return minCostBefore(trials, trial);
  const before = trials
    .filter((other) => other.status === "Succeeded" && other.converged && other.number !== trial.number)
    .filter((other) => !trial.finished_at || finishOrder(other, trial) < 0)
    .sort((a, b) => a.number - b.number)
    .slice(-window);
  return before.length ? Math.min(...before.map((other) => other.cost)) : null;
}

// The points of a stepped line where its value changes, and its last point: the same
// line as every point drawn, for a fraction of the points on a long history.
export function steps(points) {
  return points.filter((point, index) => index === 0 || index === points.length - 1 || point.y !== points[index - 1].y);
}

// The min cost that bounded a trial: the lowest final cost reported before it finished
// (before now, for a trial in flight); null while nothing has been reported.
function minCostBefore(trials, trial) {
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

// An LSTS mean or draw of log cost, as a cost.
function logCost(value) {
  return joules(Math.exp(value));
}

function lstsArmsText(why) {
  return why.arms.map((arm) => `${arm}: ${why.means[arm] === undefined ? "no runs" : logCost(why.means[arm])} (n=${why.counts[arm]})`).join("; ");
}

// LSTS's reasons (domain/lsts.py): the walk, a stand-in while a step runs, or the bandit's rule.
function lstsWhyText(trial, why) {
  if (why.rule === "walk" && why.direction === "start") return `LSTS walk: start at the default batch size, ${trial.batch_size}`;
  if (why.rule === "walk") return `LSTS walk ${why.direction} (best so far ${joules(why.best)}): try ${trial.batch_size}`;
  if (why.rule === "lowest_mean") {
    const waiting = why.waiting_for === null ? "no walk step ready" : `waiting for the walk's run of ${why.waiting_for}`;
    return `LSTS local search, ${waiting}: ran the explored size of lowest mean log cost (${trial.batch_size})`;
  }
  const arms = `Arms (exp(mean log cost)): ${lstsArmsText(why)}`;
  if (why.rule === "unobserved") return `LSTS bandit: arm ${trial.batch_size} has no converged run yet, so it is played first. ${arms}`;
  if (why.rule === "confirmation") {
    return `LSTS bandit confirmation: ${trial.batch_size} is close to the best mean but has too few runs (n_min), so it is run again. ${arms}`;
  }
  if (why.rule === "thompson") {
    const draws = Object.entries(why.draws).map(([size, draw]) => `${size}: ${logCost(draw)}`).join(", ");
    return `LSTS Thompson sampling (pooled variance ${number(why.s2)}): sampled costs ${draws}; lowest wins. ${arms}`;
  }
  return JSON.stringify(why);
}

// The reason the event log records for a trial's batch size, in words.
export function whyText(trial) {
  const why = trial.why || {};
  if (why.policy === "lsts") return lstsWhyText(trial, why);
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
