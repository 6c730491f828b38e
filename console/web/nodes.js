// Nodes: where they are, which are online, and a filterable table.
import { api, el, table, ago, utc, countBy } from "./util.js";
import { worldMap, CATEGORY } from "./map.js";

/** Node status colours (Okabe–Ito), also used by the legend. */
export const STATUS_COLOUR = { online: CATEGORY[2], offline: CATEGORY[1], revoked: CATEGORY[3], pending: CATEGORY[5] };

const COLUMNS = ["node", "status", "country", "continent", "ASN", "tags", "version", "policy", "last seen"];

function cells(n) {
  return [n.id || `pending ${n.key_fingerprint.slice(0, 12)}`, n.status, n.country, n.continent || "–",
    n.asn ? `AS${n.asn}` : "–", (n.tags || []).join(", ") || "–", n.agent_version || "–",
    n.policy_serial ?? "–", n.last_seen ? el("span", { title: utc(n.last_seen) }, ago(n.last_seen)) : "never"];
}

const text = (c) => (typeof c === "string" || typeof c === "number" ? String(c) : c.textContent);

export async function nodesPage(main, world) {
  const nodes = await api("/api/nodes");
  const continent = (n) => n.continent || world?.countries[n.country]?.continent;
  const byStatus = Object.fromEntries(countBy(nodes, (n) => n.status));
  const summary = ["online", "offline", "revoked", "pending"].map((s) => `${byStatus[s] || 0} ${s}`).join(", ");
  const map = worldMap(world, {
    title: `Map of ${nodes.length} nodes by status`,
    dots: nodes.filter((n) => n.id).map((n) => ({ cc: n.country, color: STATUS_COLOUR[n.status],
      label: `${n.id} (${world?.countries[n.country]?.name || n.country}, ${n.status})` })),
    legend: Object.entries(STATUS_COLOUR).map(([s, c]) => [`${s} (${byStatus[s] || 0})`, c]),
  });
  const filter = el("input", { type: "search", id: "node-filter", placeholder: "country, ASN, tag, version…", "aria-controls": "node-table" });
  const status = el("select", { id: "node-status" }, el("option", { value: "" }, "any status"),
    ["online", "offline", "revoked", "pending"].map((s) => el("option", { value: s }, s)));
  const holder = el("div", { id: "node-table" });
  const render = () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = nodes.filter((n) => !status.value || n.status === status.value)
      .map(cells).filter((r) => words.every((w) => r.some((c) => text(c).toLowerCase().includes(w))));
    holder.replaceChildren(table(`${rows.length} of ${nodes.length} nodes`, COLUMNS, rows));
  };
  filter.addEventListener("input", render);
  status.addEventListener("change", render);
  render();
  const counts = (title, pairs, name) => table(title, [name, "nodes"], pairs.map(([k, n]) => [name === "country" ? `${world?.countries[k]?.name || k} (${k})` : k, n]));
  main.replaceChildren(
    el("h1", { tabindex: -1 }, "Nodes"),
    el("p", { id: "node-summary" }, `${nodes.length} nodes: ${summary}.`),
    map,
    el("div", { class: "filters" }, el("label", { for: "node-filter" }, "Filter "), filter, el("label", { for: "node-status" }, " Status "), status),
    holder,
    el("div", { class: "cols" },
      counts("Nodes per country", countBy(nodes, (n) => n.country), "country"),
      counts("Nodes per continent", countBy(nodes, continent), "continent")));
}
