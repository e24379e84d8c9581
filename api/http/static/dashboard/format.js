// Small pure helpers shared by the views: outcomes, numbers, dates, DOM building.

// A trial's outcome, the colour key of every chart and the table.
export const OUTCOMES = [
  { key: "converged", label: "converged", colour: "#1e8c45" },
  { key: "cost_bound", label: "stopped by the cost bound", colour: "#e07b00" },
  { key: "max_epochs", label: "not converged (max epochs)", colour: "#8e44ad" },
  { key: "ended", label: "ended (PATCH /trials)", colour: "#6b7280" },
  { key: "expired", label: "expired (lease)", colour: "#c0392b" },
  { key: "in_flight", label: "in flight", colour: "#2563eb" },
];

// A trial's kind, the shape of its point.
export const KINDS = [
  { key: "Exploration", label: "exploration (pruning or local search)", shape: "circle" },
  { key: "Concurrent", label: "concurrent (stand-in)", shape: "triangle" },
  { key: "MAB", label: "bandit", shape: "rect" },
];

export function outcomeOf(trial) {
  if (trial.status === "Dispatched") return "in_flight";
  if (trial.stop_reason === "ended" || trial.stop_reason === "expired") return trial.stop_reason;
  if (trial.converged) return "converged";
  // Stopped by the bound: past it, or bound to pass it (predictive stop, domain/bounds.py BOUND_STOPS).
  return trial.stop_reason === "cost_bound" || trial.stop_reason === "predicted_cost_bound" ? "cost_bound" : "max_epochs";
}

export function outcomeLabel(key) {
  return OUTCOMES.find((outcome) => outcome.key === key).label;
}

export function shapeOf(kind) {
  return (KINDS.find((entry) => entry.key === kind) || KINDS[0]).shape;
}

// Energy-time cost is in joules (eta * energy + (1 - eta) * max_power * time).
export function joules(value) {
  if (value === null || value === undefined) return "–";
  const units = [[1e9, "GJ"], [1e6, "MJ"], [1e3, "kJ"]];
  for (const [scale, unit] of units) if (Math.abs(value) >= scale) return `${(value / scale).toPrecision(4)} ${unit}`;
  return `${value.toPrecision(4)} J`;
}

export function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (Math.abs(value) >= 7200) return `${(value / 3600).toPrecision(4)} h`;
  if (Math.abs(value) >= 120) return `${(value / 60).toPrecision(4)} min`;
  return `${value.toPrecision(4)} s`;
}

// A fraction as a percentage ("12.3 %"); "–" when there is none.
export function percent(fraction) {
  if (fraction === null || fraction === undefined) return "–";
  return `${(fraction * 100).toFixed(1)} %`;
}

// The summaries' three measures: energy and cost in joules, time in seconds.
export const MEASURES = [
  { key: "energy", label: "energy", format: joules },
  { key: "time", label: "time", format: seconds },
  { key: "cost", label: "cost (energy-time)", format: joules },
];

// A whole number with commas between thousands ("10,000"), without the cost of the
// browser's first locale lookup (toLocaleString), which a cold page load would pay.
export function thousands(value) {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function number(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  return Number.isInteger(value) ? String(value) : value.toPrecision(digits);
}

export function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// The stage as people say it: "pruning round 1 of 2", "local search" (LSTS) or "bandit"
// (the views count rounds from 1; a finished pruning has round null).
export function stageText(stage, pruning) {
  if (stage === "MAB") return "bandit";
  if (!pruning) return "local search";
  if (pruning.done) return `pruning done (${pruning.num_rounds} rounds)`;
  return `pruning round ${pruning.round} of ${pruning.num_rounds}`;
}

// Arms record rewards (-cost); a cost's posterior mean and one standard deviation.
export function armCost(arm) {
  const precision = arm.precision_infinite || arm.precision === "inf" ? Infinity : Number(arm.precision);
  const sd = precision > 0 ? 1 / Math.sqrt(precision) : null;
  return { mean: -arm.mean, sd };
}

// el("td", {class: "x"}, "text", child...): a DOM element with attributes and children.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
