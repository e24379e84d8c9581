// The dashboard's router: "/" is the job list, "/ui/jobs/{id}" a job. Links change
// the URL with the History API; the server answers both paths with this same page.
// Each view shown gets a Scope: its polls and tickers stop when the next view is shown.

import { ApiError, forgetToken, storedToken } from "./api.js";
import { el } from "./format.js";
import { showJob } from "./job.js";
import { showJobList } from "./list.js";
import { Scope } from "./live.js";

const view = document.getElementById("view");
let scope = new Scope();

function navigate(href) {
  history.pushState(null, "", href);
  route();
}

async function route() {
  const match = location.pathname.match(/^\/ui\/jobs\/([^/]+)$/);
  const params = new URLSearchParams(location.search);
  scope.stop();
  const mine = (scope = new Scope());
  try {
    if (match) await showJob(view, decodeURIComponent(match[1]), params, mine);
    else await showJobList(view, params, navigate, mine);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (!mine.alive) return; // another view is on screen by now
    view.replaceChildren(el("p", { class: "error", id: "page-error" }, error.message), el("p", {}, el("a", { href: "/" }, "Back to the job list")));
  }
}

const forget = document.getElementById("forget-token");
forget.hidden = !storedToken();
forget.addEventListener("click", () => {
  forgetToken();
  location.reload();
});
window.addEventListener("popstate", route);
route();
