// The distribution of a job's key times as a histogram, drawn as SVG.
import { el } from "./util.js";

/** Bin edges at a "nice" step (1, 2 or 5 times a power of ten) covering [0, max]. */
function bins(max, want = 12) {
  const raw = Math.max(max, 1e-3) / want;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  return { step, n: Math.max(1, Math.ceil(max / step + 1e-9)) };
}

/** A histogram of `values` (milliseconds); bars carry their range and count as text. */
export function histogram(values, title) {
  if (!values.length) return el("p", { class: "note" }, "No times yet.");
  const { step, n } = bins(Math.max(...values));
  const counts = new Array(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor(v / step))] += 1;
  const W = 640, H = 240, L = 40, B = 36, T = 28, top = Math.max(...counts);
  const bw = (W - L - 8) / n;
  const y = (c) => H - B - (c / top) * (H - B - T);
  const fmt = (x) => +x.toFixed(3);
  return el("figure", { class: "chart" },
    el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
      el("line", { x1: L, y1: H - B, x2: W - 8, y2: H - B, class: "axis" }),
      el("text", { x: 4, y: 16, class: "tick" }, `highest bar: ${top} result(s)`),
      counts.map((c, i) => el("g", {},
        el("rect", { x: (L + i * bw + 1).toFixed(1), y: y(c).toFixed(1), width: (bw - 2).toFixed(1), height: (H - B - y(c)).toFixed(1), class: "bar" },
          el("title", {}, `${fmt(i * step)}–${fmt((i + 1) * step)} ms: ${c} result(s)`)),
        i % Math.ceil(n / 6) === 0 ? el("text", { x: (L + i * bw).toFixed(1), y: H - B + 16, class: "tick" }, `${fmt(i * step)}`) : null)),
      el("text", { x: W - 8, y: H - 4, class: "tick", "text-anchor": "end" }, "time (ms)")),
    el("figcaption", {}, title));
}
