// Aggregates of a job's results: median and 90th percentile of the key time
// per country or network, and status counts.

/** The p-quantile of sorted numbers, linear between closest ranks (numpy's default). */
export function quantile(sorted, p) {
  if (!sorted.length) return null;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  return sorted[lo] + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)]) - sorted[lo]);
}

/** Groups `items` ({result, row}) by `key(item)`: count, median and p90 of `row.ms`, statuses. */
export function aggregate(items, key) {
  const groups = new Map();
  for (const it of items) {
    const k = key(it) ?? "–";
    if (!groups.has(k)) groups.set(k, { key: k, n: 0, times: [], status: {} });
    const g = groups.get(k);
    g.n += 1;
    if (typeof it.row.ms === "number") g.times.push(it.row.ms);
    g.status[it.result.status] = (g.status[it.result.status] || 0) + 1;
  }
  return [...groups.values()].map((g) => {
    g.times.sort((a, b) => a - b);
    return { key: g.key, n: g.n, median: quantile(g.times, 0.5), p90: quantile(g.times, 0.9), status: g.status };
  }).sort((a, b) => b.n - a.n || String(a.key).localeCompare(String(b.key)));
}
