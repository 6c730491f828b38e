// The world map: country shapes projected at build time (world.json), nodes
// as dots at their country's centre, colours from colour-blind-safe scales.
import { el } from "./util.js";

/** Okabe–Ito: categories that colour-blind readers tell apart. */
export const CATEGORY = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];

const VIRIDIS = ["#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6dcd59", "#b4de2c", "#fde725"];

/** Viridis at t in [0, 1]: a sequential scale readable in grey and by colour-blind readers. */
export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]].map((c) => [1, 3, 5].map((j) => parseInt(c.slice(j, j + 2), 16)));
  return "#" + a.map((v, j) => Math.round(v + (b[j] - v) * (x - i)).toString(16).padStart(2, "0")).join("");
}

/** Where the n-th dot of a country goes: a small spiral round its centre. */
function spot([x, y], n) {
  if (n === 0) return [x, y];
  const a = n * 2.39996; // the golden angle spreads dots evenly
  const r = 5 * Math.sqrt(n);
  return [x + r * Math.cos(a), y + r * Math.sin(a)];
}

/**
 * The map as a <figure>: countries filled by `fill(cc)` (null: plain land),
 * `dots` [{cc, color, label, onclick}] as focusable circles, a legend of
 * [label, colour] pairs (a `ramp` [lo, hi, unit] adds a sequential scale).
 */
export function worldMap(world, { fill = () => null, dots = [], legend = [], ramp = null, title }) {
  if (!world) return el("p", { class: "note" }, "No map: this vantage was built without map data (run make console).");
  const seen = new Map();
  const svg = el("svg", { viewBox: `0 0 ${world.width} ${world.height}`, class: "map", role: "img", "aria-label": title },
    el("path", { d: world.sphere, class: "sea" }),
    el("path", { d: world.graticule, class: "graticule" }),
    world.shapes.map((s) => el("path", { d: s.d, class: "land", style: fill(s.cc) ? { fill: fill(s.cc) } : undefined },
      el("title", {}, world.countries[s.cc]?.name || s.cc))),
    dots.map((d) => {
      const c = world.countries[d.cc];
      if (!c) return null;
      const n = seen.get(d.cc) || 0;
      seen.set(d.cc, n + 1);
      const [x, y] = spot(c.at, n);
      const activate = (e) => { if (!e.key || e.key === "Enter" || e.key === " ") { e.preventDefault(); d.onclick?.(); } };
      return el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 4.5, fill: d.color, class: "dot",
        tabindex: d.onclick ? 0 : undefined, role: d.onclick ? "button" : undefined, "aria-label": d.label,
        "data-cc": d.cc, onclick: d.onclick ? activate : undefined, onkeydown: d.onclick ? activate : undefined },
      el("title", {}, d.label));
    }));
  const items = legend.map(([label, color]) => el("li", {}, el("span", { class: "swatch", style: { background: color } }), label));
  if (ramp) {
    const [lo, hi, unit] = ramp;
    const stops = VIRIDIS.map((c, i) => `${c} ${(i * 100) / (VIRIDIS.length - 1)}%`).join(",");
    items.push(el("li", {}, `${lo} ${unit}`, el("span", { class: "ramp", style: { background: `linear-gradient(90deg,${stops})` } }), `${hi} ${unit}`));
  }
  return el("figure", { class: "mapfig" }, svg, el("figcaption", {}, el("ul", { class: "legend" }, items)));
}
