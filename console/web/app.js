// The console's pages by URL fragment: #/nodes, #/jobs, #/job/<id>, #/submit.
import { el } from "./util.js";
import { nodesPage } from "./nodes.js";
import { jobsPage } from "./jobs.js";
import { jobPage } from "./job.js";
import { submitPage } from "./submit.js";

const main = document.getElementById("main");
const banner = document.getElementById("banner");

// The map data is optional (a build without `make console` has none).
const world = fetch("/world.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);

async function route() {
  const hash = location.hash || "#/nodes";
  const [, page, arg] = hash.match(/^#\/([a-z]+)\/?(.*)$/) || [];
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#/${page === "job" ? "jobs" : page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  banner.hidden = true;
  try {
    const w = await world;
    if (page === "jobs") await jobsPage(main);
    else if (page === "job") await jobPage(main, w, decodeURIComponent(arg));
    else if (page === "submit") submitPage(main);
    else await nodesPage(main, w);
    document.title = `${main.querySelector("h1")?.textContent || "vantage"} · vantage console`;
    main.querySelector("h1")?.focus();
  } catch (e) {
    main.replaceChildren(el("h1", { tabindex: -1 }, "Cannot show this page"),
      el("p", { class: "bad", id: "error" }, e.code ? `${e.code}: ${e.message}` : String(e)));
  }
}

window.addEventListener("hashchange", route);
route();
