// The dashboard's router: "/" is the job list, "/ui/jobs/{id}" a job. Links change
// the URL with the History API; the server answers both paths with this same page.

import { ApiError, forgetToken, storedToken } from "./api.js";
import { el } from "./format.js";
import { showJob } from "./job.js";
import { showJobList } from "./list.js";

const view = document.getElementById("view");

function navigate(href) {
  history.pushState(null, "", href);
  route();
}

async function route() {
  const match = location.pathname.match(/^\/ui\/jobs\/([^/]+)$/);
  const params = new URLSearchParams(location.search);
  try {
    if (match) await showJob(view, decodeURIComponent(match[1]), params);
    else await showJobList(view, params, navigate);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
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
