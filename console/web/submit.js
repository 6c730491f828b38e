// Submit: a signed job file, shown in plain words and checked as the CLI
// does, then sent to the hub. Signing stays in the CLI.
import { api, el, Refused } from "./util.js";

export function submitPage(main) {
  const input = el("input", { type: "file", id: "job-file", accept: ".json,application/json" });
  const zone = el("div", { class: "drop", id: "drop" }, el("p", {}, "Drop a signed job file here, or "), el("label", { for: "job-file", class: "button" }, "choose one"), input);
  const out = el("div", { id: "check", role: "status", "aria-live": "polite" });
  const answer = el("div", { id: "answer", role: "status", "aria-live": "polite" });
  let text = null;
  const send = el("button", { type: "button", id: "send", disabled: true }, "Submit to the hub");
  const read = async (file) => {
    text = await file.text();
    answer.replaceChildren();
    try {
      const c = await api("/api/check", { method: "POST", body: text, headers: { "content-type": "application/json" } });
      out.replaceChildren(el("h2", {}, file.name), el("pre", { class: "wrap" }, c.shown),
        el("p", { class: c.accepted ? "good" : "bad", id: "verdict" }, c.accepted ? "✔ " : "✘ ", c.verdict));
      send.disabled = false;
      send.textContent = c.accepted ? "Submit to the hub" : "Submit anyway (the hub will refuse it)";
    } catch (e) {
      out.replaceChildren(el("p", { class: "bad", id: "verdict" }, `${e.code}: ${e.message}`));
      send.disabled = true;
    }
  };
  input.addEventListener("change", () => input.files[0] && read(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); if (e.dataTransfer.files[0]) read(e.dataTransfer.files[0]); });
  send.addEventListener("click", async () => {
    send.disabled = true;
    try {
      const a = await api("/api/jobs", { method: "POST", body: text, headers: { "content-type": "application/json" } });
      answer.replaceChildren(el("p", { class: "good" }, `Accepted: job ${a.job_id} went to ${a.nodes.length} node(s) on ${a.channels.join(", ")}. `,
        el("a", { href: `#/job/${encodeURIComponent(a.job_id)}` }, "Follow its results")));
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      answer.replaceChildren(el("p", { class: "bad", id: "refusal" }, `The hub refused it (HTTP ${e.status}, `, el("code", {}, e.code), `): ${e.message}`));
    }
  });
  main.replaceChildren(el("h1", { tabindex: -1 }, "Submit a job"),
    el("p", {}, "Approvers sign job files with vantage sign; their keys never enter the browser. The console checks the signatures against the approval policy, as vantage check does, before you submit."),
    zone, out, send, answer);
}
