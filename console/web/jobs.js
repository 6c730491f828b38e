// Jobs: the hub's recent jobs, newest first, a page at a time.
import { api, el, table, utc, ago } from "./util.js";

export async function jobsPage(main) {
  const holder = el("div", { id: "job-list" });
  const more = el("button", { type: "button", id: "older", hidden: true }, "Older jobs");
  const rows = [];
  let before = null;
  const load = async () => {
    const page = await api(`/api/jobs?limit=50${before ? `&before=${before}` : ""}`);
    for (const j of page.jobs) {
      rows.push([el("a", { href: `#/job/${encodeURIComponent(j.id)}` }, j.id), j.status, j.probe, j.target,
        `${j.signers.length} (${j.signers.map((s) => s.slice(0, 8)).join(", ")})`,
        `${j.answered} of ${j.selected}`, `${j.results}`, el("span", { title: utc(j.submitted) }, ago(j.submitted)), j.submitter]);
    }
    before = page.next_before ?? null;
    more.hidden = before === null;
    holder.replaceChildren(rows.length
      ? table(`The ${rows.length} newest job(s)`, ["job", "status", "probe", "target", "signers", "answered", "results", "submitted", "by"], rows)
      : el("p", {}, "No jobs yet. Propose one with vantage propose, sign it, then submit it here or with vantage submit."));
  };
  more.addEventListener("click", load);
  main.replaceChildren(el("h1", { tabindex: -1 }, "Jobs"), holder, more);
  await load();
}
