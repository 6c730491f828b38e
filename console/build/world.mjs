// Build step of the console's map (make console): Natural Earth country shapes
// (npm world-atlas, 1:110m) projected once, here, into SVG path data, with each
// country's ISO code, name, continent and centre (npm world-countries)
// projected the same way. The console draws the map from this file alone: no
// map library and no map tiles at run time.
// Usage: node build/world.mjs OUT.json
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createRequire } from "node:module";
import { geoNaturalEarth1, geoPath, geoGraticule10 } from "d3-geo";
import { feature } from "topojson-client";

const require = createRequire(import.meta.url);
const topology = JSON.parse(readFileSync(require.resolve("world-atlas/countries-110m.json"), "utf8"));
const countries = JSON.parse(readFileSync(require.resolve("world-countries/countries.json"), "utf8"));

const WIDTH = 960;
const HEIGHT = 480;

// The hub's continent codes (vantage_proto::channel::CONTINENTS).
function continent(c) {
  switch (c.region) {
    case "Africa": return "AF";
    case "Antarctic": return "AN";
    case "Asia": return "AS";
    case "Europe": return "EU";
    case "Oceania": return "OC";
    case "Americas": return c.subregion === "South America" ? "SA" : "NA";
    default: return null;
  }
}

const shapes = feature(topology, topology.objects.countries);
// Antarctica takes a fifth of the map and holds no nodes worth the room.
shapes.features = shapes.features.filter((f) => f.id !== "010");
const projection = geoNaturalEarth1().fitExtent([[4, 4], [WIDTH - 4, HEIGHT - 4]], shapes);
const path = geoPath(projection).digits(1);
const byNumeric = new Map(countries.map((c) => [c.ccn3, c]));
const round = (x) => Math.round(x * 10) / 10;

const out = {
  source: "Natural Earth 1:110m (world-atlas), names and centres from world-countries; projection Natural Earth I",
  width: WIDTH,
  height: HEIGHT,
  sphere: path({ type: "Sphere" }),
  graticule: path(geoGraticule10()),
  shapes: [],
  countries: {},
};
for (const f of shapes.features) {
  const c = byNumeric.get(f.id);
  if (!c) continue; // disputed areas without an ISO code stay unnamed land
  out.shapes.push({ cc: c.cca2, d: path(f) });
}
for (const c of countries) {
  const [lat, lon] = c.latlng;
  const p = projection([lon, lat]);
  if (!p) continue;
  out.countries[c.cca2] = { name: c.name.common, continent: continent(c), at: [round(p[0]), round(p[1])] };
}
mkdirSync(dirname(process.argv[2]), { recursive: true });
writeFileSync(process.argv[2], JSON.stringify(out));
console.log(`world: ${out.shapes.length} shapes, ${Object.keys(out.countries).length} countries -> ${process.argv[2]}`);
