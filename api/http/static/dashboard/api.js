// Reads of the /v1 routes. With BSO_AUTH_READS on, the first 401 shows the token
// form; the token is kept in this tab's sessionStorage and sent as a bearer header.

const TOKEN_KEY = "bso-token";
let tokenWanted = null; // one pending form for every request that got a 401
// The server's clock minus this browser's, from the answers' Date header (whole seconds, so
// only an offset of over 2 s is believed): the ages of trials in flight are told by it.
let clockOffset = 0;

export function serverNow() {
  return Date.now() + clockOffset;
}

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const offset = date - Date.now();
  clockOffset = Math.abs(offset) > 2000 ? offset : 0;
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function askForToken(reason) {
  if (tokenWanted) return tokenWanted;
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-reason").textContent = reason;
  document.getElementById("view").hidden = true;
  form.hidden = false;
  input.value = "";
  input.focus();
  tokenWanted = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      form.hidden = true;
      document.getElementById("view").hidden = false;
      document.getElementById("forget-token").hidden = false;
      tokenWanted = null;
      resolve();
    };
  });
  return tokenWanted;
}

async function request(path, init = {}) {
  for (;;) {
    const token = storedToken();
    const headers = { ...(init.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { ...init, headers });
    noteServerClock(response);
    if (response.status !== 401) return response;
    forgetToken();
    await askForToken(token ? "That token was refused: enter the server's token." : "This server needs a bearer token to show its data.");
  }
}

async function json(path, init) {
  const response = await request(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.message || `${response.status} ${response.statusText}`);
  return body;
}

export async function requestBlob(path) {
  const response = await request(path);
  if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
  return response.blob();
}

const enc = encodeURIComponent;

function moment(version, at) {
  if (version) return `version=${version}`;
  if (at) return `at=${enc(at)}`;
  return "";
}

// The server pages trial lists (at most 1000 a page). Trials are numbered 1, 2, ... without
// gaps, so the pages after the first are asked for a few at a time, in parallel, until
// one says there is no more (next_after null).
const PAGE = 1000;
const PAGES_AT_ONCE = 4;
const MAX_TRIAL_PAGES = 1000;

async function allTrials(url) {
  const page = (index) => json(`${url}&limit=${PAGE}&after=${index * PAGE}`);
  const first = await page(0);
  if (url.includes("&kind=")) return followed(url, first);  // a kind's trials have gaps
  const trials = [...first.trials];
  let more = first.next_after !== null && first.next_after !== undefined;
  for (let next = 1; more && next < MAX_TRIAL_PAGES; next += PAGES_AT_ONCE) {
    const answers = await Promise.all(Array.from({ length: PAGES_AT_ONCE }, (_, offset) => page(next + offset)));
    for (const answer of answers) {
      if (!more) break;
      trials.push(...answer.trials);
      more = answer.next_after !== null && answer.next_after !== undefined;
    }
  }
  return { trials };
}

// Every page of a list whose numbers have gaps: one page after another, by next_after.
async function followed(url, first) {
  const trials = [...first.trials];
  let after = first.next_after;
  for (let page = 1; after !== null && after !== undefined && page < MAX_TRIAL_PAGES; page += 1) {
    const answer = await json(`${url}&limit=${PAGE}&after=${after}`);
    trials.push(...answer.trials);
    after = answer.next_after;
  }
  return { trials };
}

export const api = {
  // query: {prefix, policy, gpu_model, stage, sort, after, limit}; empty values are left out.
  jobs: (query) => json(`/v1/jobs?${new URLSearchParams(Object.entries(query).filter(([, value]) => value !== "" && value !== null && value !== undefined))}`),
  // The answers a user asks first (which batch size, settled, savings): always as of now.
  summary: (jobId) => json(`/v1/jobs/${enc(jobId)}/summary`),
  fleet: () => json("/v1/summary"),
  state: (jobId, version, at) => json(`/v1/jobs/${enc(jobId)}/state?${moment(version, at)}`),
  // Every trial, without its why: what the charts draw.
  trials: (jobId, version) => allTrials(`/v1/jobs/${enc(jobId)}/trials?${moment(version)}`),
  // Trials with their why: a page of the table, or every pruning exploration.
  trialsWhy: (jobId, version, { after = 0, limit = null, kind = null } = {}) => {
    const url = `/v1/jobs/${enc(jobId)}/trials?why=true&${moment(version)}${kind ? `&kind=${kind}` : ""}`;
    return limit ? json(`${url}&after=${after}&limit=${limit}`) : allTrials(url);
  },
  trial: (jobId, number) => json(`/v1/jobs/${enc(jobId)}/trials/${number}`),
  reanalysis: (jobId, knobs) =>
    json(`/v1/jobs/${enc(jobId)}/reanalysis`, { method: "POST", body: JSON.stringify(knobs), headers: { "Content-Type": "application/json" } }),
  csvUrl: (jobId) => `/v1/jobs/${enc(jobId)}/trials.csv`,
};
