// One job: its results arriving live, on a map, aggregated per country and
// network, as a time distribution, and each node's raw result.
import { api, el, table, ms, utc } from "./util.js";
import { worldMap, viridis, CATEGORY } from "./map.js";
import { aggregate } from "./stats.js";
import { histogram } from "./chart.js";

// Key figures that mean "fine", "look closer" and "failed", in the same colours on every probe.
const KEY_COLOUR = {
  secure: CATEGORY[0], valid: CATEGORY[0], connected: CATEGORY[0], "none lost": CATEGORY[0], reached: CATEGORY[0],
  NOERROR: CATEGORY[0], "HTTP 2xx": CATEGORY[0], "HTTP 3xx": CATEGORY[5], insecure: CATEGORY[1], "some lost": CATEGORY[1],
  indeterminate: CATEGORY[1], "HTTP 4xx": CATEGORY[1], bogus: CATEGORY[3], invalid: CATEGORY[3], "HTTP 5xx": CATEGORY[3],
  "all lost": CATEGORY[3], "not reached": CATEGORY[3], error: CATEGORY[3], timeout: CATEGORY[7], refused: CATEGORY[4],
};
const keyColour = (k) => KEY_COLOUR[k] || CATEGORY[6];

/** "n of m nodes answered, k refused, g lost" from the targeted nodes and the results so far. */
export function progress(targeted, items, expired) {
  const answered = new Set(items.map((i) => i.result.node_id).filter((n) => targeted.has(n)));
  const refused = new Set(items.filter((i) => i.result.status === "refused").map((i) => i.result.node_id));
  const lost = expired ? targeted.size - answered.size : 0;
  const waiting = expired ? "" : ` (${targeted.size - answered.size} still to answer)`;
  return { done: answered.size === targeted.size, text: `${answered.size} of ${targeted.size} nodes answered, ${refused.size} refused, ${lost} lost${waiting}` };
}

const statusText = (s) => Object.entries(s).map(([k, n]) => `${k} ${n}`).join(", ");

function aggregateTable(caption, name, groups) {
  return table(caption, [name, "results", "median", "p90", "statuses"],
    groups.map((g) => [String(g.key), `${g.n}`, ms(g.median), ms(g.p90), statusText(g.status)]));
}

export async function jobPage(main, world, id) {
  const [status, nodes] = await Promise.all([api(`/api/jobs/${encodeURIComponent(id)}`), api("/api/nodes")]);
  const job = status.job.signed_job.job;
  const byId = new Map(nodes.filter((n) => n.id).map((n) => [n.id, n]));
  const targeted = new Set(status.job.nodes);
  const items = new Map(); // node#run -> {result, row}
  const line = el("p", { id: "progress", role: "status", "aria-live": "polite" }, "Waiting for results…");
  const body = el("div", { id: "job-body" });
  const raw = el("pre", { id: "raw", tabindex: -1, hidden: true });
  const show = (it) => { raw.hidden = false; raw.textContent = JSON.stringify(it.result, null, 2); raw.focus(); };
  const country = (it) => byId.get(it.result.node_id)?.country;
  const asn = (it) => { const a = byId.get(it.result.node_id)?.asn; return a ? `AS${a}` : "–"; };
  let timer = null;
  const render = () => {
    timer = null;
    const list = [...items.values()];
    const expired = Date.now() / 1000 >= job.expires;
    const p = progress(targeted, list, expired);
    line.textContent = p.text;
    const perCountry = aggregate(list, country);
    const medians = perCountry.map((g) => g.median).filter((m) => m !== null);
    const [lo, hi] = [Math.min(...medians), Math.max(...medians)];
    const shade = new Map(perCountry.map((g) => [g.key, g.median === null ? null : viridis(hi > lo ? (g.median - lo) / (hi - lo) : 0.5)]));
    const keys = [...new Set(list.map((i) => i.row.key))];
    body.replaceChildren(
      worldMap(world, { title: `Map of ${list.length} results`, fill: (cc) => shade.get(cc),
        dots: list.map((it) => ({ cc: country(it), color: keyColour(it.row.key), onclick: () => show(it),
          label: `${it.result.node_id}: ${it.row.key}, ${ms(it.row.ms)}` })),
        legend: keys.map((k) => [k, keyColour(k)]), ramp: medians.length ? [lo.toFixed(1), hi.toFixed(1), "ms median"] : null }),
      el("div", { class: "cols" },
        el("div", { id: "by-country" }, aggregateTable("Per country", "country", perCountry)),
        el("div", { id: "by-asn" }, aggregateTable("Per network", "ASN", aggregate(list, asn)))),
      histogram(list.map((i) => i.row.ms).filter((x) => typeof x === "number"), `Distribution of ${list.length} times (${job.probe.cmd} key time, ms)`),
      table(`${list.length} results (choose a node for its raw result)`, ["node", "country", "ASN", "run", "status", "time", "figures"],
        list.map((it) => [el("button", { type: "button", class: "link", onclick: () => show(it) }, it.result.node_id),
          country(it) || "–", asn(it), `${it.result.seq ?? 0}`, it.result.status, ms(it.row.ms), it.row.figure])));
    if (p.done && !job.repeat_secs) stream.close();
  };
  const stream = new EventSource(`/api/jobs/${encodeURIComponent(id)}/stream`);
  stream.onmessage = (e) => {
    const it = JSON.parse(e.data);
    items.set(`${it.result.node_id}#${it.result.seq ?? 0}`, it);
    timer ??= setTimeout(render, 150);
  };
  stream.addEventListener("refused", (e) => { stream.close(); line.textContent = `The hub refused the results stream: ${e.data}`; });
  window.addEventListener("hashchange", () => stream.close(), { once: true });
  const base = `/api/jobs/${encodeURIComponent(id)}`;
  main.replaceChildren(
    el("h1", { tabindex: -1 }, `Job ${id}`),
    el("p", {}, `${job.probe.cmd} of ${status.job.target}, from ${typeof job.select === "string" ? job.select : JSON.stringify(job.select)}; `,
      `valid ${utc(job.not_before)} to ${utc(job.expires)}${job.repeat_secs ? `, every ${job.repeat_secs} s` : ""}; submitted by ${status.job.submitter} with ${status.job.signers.length} approval(s).`),
    el("details", {}, el("summary", {}, "Exact probe, as signed"), el("pre", {}, JSON.stringify(job.probe, null, 2))),
    line,
    el("p", { class: "downloads" }, "Download: ", el("a", { href: `${base}/results.json`, download: `${id}.results.json` }, "JSON"), " · ",
      el("a", { href: `${base}/results.csv`, download: `${id}.results.csv` }, "CSV")),
    body, el("h2", {}, "Raw result"), raw);
  render();
}
