// What keeps a view current and honest: a poll while the tab is visible, sequence numbers
// that drop an answer a later request has overtaken, loading indicators, and ages that tick.

import { ApiError, serverNow } from "./api.js";
import { el } from "./format.js";

// Everything live belongs to the view on screen: the router stops the last view's polls and
// tickers (and its pending answers are then dropped) before it shows the next.
export class Scope {
  constructor() {
    this.alive = true;
    this.stops = [];
  }

  onStop(stop) {
    this.stops.push(stop);
  }

  stop() {
    this.alive = false;
    for (const stop of this.stops.splice(0)) stop();
  }
}

// Answers dropped because a later request overtook them, page-wide (html[data-dropped]):
// what the browser tests wait for.
let dropped = 0;

// The sequence of one kind of fetch-and-draw (time travel, a list page, a what-if...): each
// takes a ticket; an answer may be drawn only while its ticket is the latest taken.
export class Sequence {
  constructor() {
    this.last = 0;
    this.finished = 0;
  }

  take() {
    this.last += 1;
    return this.last;
  }

  // True when a later ticket was taken (or the view went away): the answer is dropped.
  stale(ticket, scope = null) {
    if (ticket === this.last && (!scope || scope.alive)) return false;
    dropped += 1;
    document.documentElement.dataset.dropped = dropped;
    return true;
  }

  isLatest(ticket) {
    return ticket === this.last;
  }

  finish(ticket) {
    if (ticket === this.last) this.finished = ticket;
  }

  // The latest ticket is still being fetched or drawn.
  get busy() {
    return this.finished !== this.last;
  }
}

// A loading indicator: hidden until shown; CSS fades it in after a moment so quick answers
// do not flicker.
export function indicator(id, text) {
  return el("span", { id, class: "busy", role: "status", hidden: true }, text);
}

// Runs ``work(ticket)`` as the latest of ``sequence``, with ``busy`` shown until the latest
// ticket is done (an overtaken one leaves it to its successor). Returns what work returns.
export async function runLatest(sequence, busy, work) {
  const ticket = sequence.take();
  if (busy) busy.hidden = false;
  try {
    return await work(ticket);
  } finally {
    sequence.finish(ticket);
    if (busy && sequence.isLatest(ticket)) busy.hidden = true;
  }
}

// Calls ``run()`` every ``every`` ms while the tab is visible (at once when it becomes
// visible again), never two at a time, and waits longer after a slow run (4 times as long
// as it took), so a page on a big job does not spend its time redrawing. A failed read is
// shown by ``onError`` and retried at the next tick; the poll stops with ``scope``.
export function poll(scope, every, run, onError) {
  let timer = null;
  let running = false;
  const schedule = (delay) => {
    clearTimeout(timer);
    if (scope.alive && document.visibilityState === "visible") timer = setTimeout(tick, delay);
  };
  async function tick() {
    if (running || !scope.alive) return;
    running = true;
    const started = performance.now();
    try {
      await run();
    } catch (error) {
      onError(error);
      if (!(error instanceof ApiError) && !(error instanceof TypeError)) throw error; // a bug, not the network
    } finally {
      running = false;
      schedule(Math.max(every, 4 * (performance.now() - started)));
    }
  }
  const visibility = () => (document.visibilityState === "visible" ? schedule(0) : clearTimeout(timer));
  document.addEventListener("visibilitychange", visibility);
  scope.onStop(() => {
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", visibility);
  });
  schedule(every);
}

// How long ago (or before ``until``) an instant was, as people say it: "12 s", "3 min", "2.5 h".
export function age(iso, until = serverNow()) {
  const seconds = Math.max(0, (until - Date.parse(iso)) / 1000);
  if (seconds < 120) return `${Math.floor(seconds)} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

// "last heard 2 min ago", kept current by tickAges; ``until`` (a past version's instant)
// makes it a fixed "2 min before this version". ``label`` may be empty ("12 s ago").
export function since(label, iso, until = null) {
  if (until) return el("span", { class: "age" }, sinceText(label, iso, until));
  return el("span", { class: "age", "data-since": iso, "data-label": label }, sinceText(label, iso));
}

function sinceText(label, iso, until = null) {
  const told = until ? `${age(iso, Date.parse(until))} before this version` : `${age(iso)} ago`;
  return label ? `${label} ${told}` : told;
}

// Rewrites every live age under ``root`` once a second, while ``scope`` lives.
export function tickAges(scope, root) {
  const timer = setInterval(() => {
    for (const node of root.querySelectorAll("[data-since]")) node.textContent = sinceText(node.dataset.label, node.dataset.since);
  }, 1000);
  scope.onStop(() => clearInterval(timer));
}

// Now, on the server's clock, as an ISO instant.
export function nowIso() {
  return new Date(serverNow()).toISOString();
}
