// Browser tests of `vantage console`: Debian's Chromium, headless, driven by
// playwright-core, against the real hub, nodes and agents that
// ci/console/run.sh started. Screenshots go to $CONSOLE_WORK/screenshots.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const env = process.env;
const work = env.CONSOLE_WORK;
const shots = `${work}/screenshots`;
const nodeCount = Number(env.CONSOLE_NODES);
mkdirSync(shots, { recursive: true });

let consoleProc, startUrl, origin, browser, page;

const vantage = (...args) => execFileSync(env.VANTAGE_BIN, args, { cwd: work, encoding: "utf8" });

/** A signed job file: `vantage propose` then two approvers' `vantage sign`. */
function signedJob(name, ...propose) {
  const file = `${work}/${name}.job.json`;
  vantage("propose", ...propose, "--proposer", "console-test", "--out", file, "--force");
  for (const who of ["alice", "bob"]) vantage("sign", file, "--key", `${work}/${who}.key`, "--yes");
  return file;
}

/** The p-quantile, linear between closest ranks: computed here, apart from the console's code. */
function quantile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * p;
  const lo = Math.floor(h);
  return s[lo] + (h - lo) * (s[Math.min(lo + 1, s.length - 1)] - s[lo]);
}

/** RFC 4180 CSV into rows of fields. */
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n") { row.push(field); rows.push(row); row = []; field = ""; }
    else if (c !== "\r") field += c;
  }
  assert.equal(field + row.join(""), "", "the CSV ends with a line break");
  return rows;
}

const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

before(async () => {
  consoleProc = spawn(env.VANTAGE_BIN, ["console", "--no-open", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  startUrl = await new Promise((resolve, reject) => {
    let out = "";
    consoleProc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{32}/);
      if (m) resolve(m[0]);
    });
    consoleProc.on("exit", (code) => reject(new Error(`vantage console exited ${code}: ${out}`)));
  });
  origin = new URL(startUrl).origin;
  browser = await chromium.launch({ executablePath: env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  // Every enrolled node has its agent online before the tests look.
  for (let i = 0; i < 150; i++) {
    const nodes = JSON.parse(vantage("nodes", "--json"));
    if (nodes.filter((n) => n.status === "online").length === nodeCount) break;
    await new Promise((r) => setTimeout(r, 200));
  }
});

after(async () => {
  await browser?.close();
  consoleProc?.kill();
});

test("requests without the session token, or from another origin, are refused", async () => {
  const bare = await fetch(`${origin}/api/nodes`);
  assert.equal(bare.status, 401);
  assert.equal((await bare.json()).code, "no-session");
  const wrong = await fetch(`${origin}/?token=${"0".repeat(32)}`, { redirect: "manual" });
  assert.equal((await wrong.json()).code, "wrong-session");
  // A fresh browser without the token sees the refusal too.
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const r = await p.goto(`${origin}/`);
  assert.equal(r.status(), 401);
  assert.equal(JSON.parse(await p.textContent("body")).code, "no-session");
  await ctx.close();
  // With the session's cookie but from another page's origin: refused.
  const login = await fetch(startUrl, { redirect: "manual" });
  const cookie = login.headers.get("set-cookie").split(";")[0];
  const ok = await fetch(`${origin}/api/nodes`, { headers: { cookie } });
  assert.equal(ok.status, 200);
  const cross = await fetch(`${origin}/api/jobs`, { method: "POST", body: "{}", headers: { cookie, origin: "http://evil.example" } });
  assert.equal(cross.status, 403);
  assert.equal((await cross.json()).code, "wrong-origin");
});

test("the node map shows every node where it is", async () => {
  await page.goto(startUrl);
  await page.waitForSelector("svg.map circle.dot");
  const nodes = JSON.parse(vantage("nodes", "--json"));
  const dots = await page.$$eval("svg.map circle.dot", (cs) => cs.map((c) => c.dataset.cc).sort());
  assert.deepEqual(dots, nodes.map((n) => n.country).sort());
  assert.match(await page.textContent("#node-summary"), new RegExp(`^${nodeCount} nodes: ${nodeCount} online`));
  await shot("nodes");
  await page.fill("#node-filter", "JP");
  assert.match(await page.textContent("#node-table caption"), new RegExp(`^1 of ${nodeCount} nodes`));
  await page.fill("#node-filter", "");
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("nodes-phone");
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("a job submitted on the Submit page fills in live, and its figures match the hub's", async () => {
  // Nodes start within a 6 s spread after a not-before 4 s ahead: the page is open first.
  const file = signedJob("live", "http", env.CONSOLE_TARGET, "--not-before", "+4s", "--spread", "6s", "--expires", "10m");
  await page.goto(`${origin}/#/submit`);
  await page.setInputFiles("#job-file", file);
  await page.waitForSelector("#verdict.good");
  await page.click("#send");
  await page.click("text=Follow its results");
  await page.waitForSelector("#progress");
  const first = await page.textContent("#progress");
  assert.match(first, /^(\d) of 5 nodes answered/);
  assert.ok(Number(first[0]) < nodeCount, `already complete when the page opened: ${first}`);
  const seen = new Set([first]);
  const watch = setInterval(async () => { try { seen.add(await page.textContent("#progress")); } catch {} }, 100);
  await page.waitForFunction((n) => document.querySelector("#progress")?.textContent.startsWith(`${n} of ${n} nodes answered, 0 refused, 0 lost`), nodeCount, { timeout: 60000 });
  clearInterval(watch);
  assert.ok(seen.size >= 2, `the count moved while the page was open: ${[...seen].join(" | ")}`);
  await page.waitForSelector(`svg.map circle.dot >> nth=${nodeCount - 1}`);

  // The aggregate table against the hub's own JSON.
  const id = decodeURIComponent(page.url().split("/").pop());
  const results = await (await page.request.get(`${origin}/api/jobs/${id}/results.json`)).json();
  const nodes = await (await page.request.get(`${origin}/api/nodes`)).json();
  const country = Object.fromEntries(nodes.map((n) => [n.id, n.country]));
  assert.equal(results.length, nodeCount);
  const rows = await page.$$eval("#by-country tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.equal(rows.length, nodeCount);
  for (const [cc, n, median, p90, statuses] of rows) {
    const times = results.filter((r) => country[r.node_id] === cc).map((r) => r.data.total_ms);
    assert.equal(Number(n), times.length, cc);
    assert.equal(median, `${quantile(times, 0.5).toFixed(1)} ms`, `${cc} median`);
    assert.equal(p90, `${quantile(times, 0.9).toFixed(1)} ms`, `${cc} p90`);
    assert.equal(statuses, `ok ${times.length}`);
  }
  await page.click(`#job-body tbody button >> nth=0`);
  assert.equal(JSON.parse(await page.textContent("#raw")).job_id, id);
  await shot("job");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${shots}/job-view.png` }); // the first screen, as in the README
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("job-phone");
  await page.setViewportSize({ width: 1280, height: 800 });

  // The CSV download parses, one row per result.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=CSV")]);
  const csv = parseCsv(readFileSync(await download.path(), "utf8"));
  assert.equal(csv[0].join(","), "job_id,node_id,seq,probe,status,code,started_s,duration_ms,target,ms,figure,reason");
  assert.equal(csv.length, results.length + 1);
  for (const r of csv.slice(1)) {
    assert.equal(r.length, csv[0].length);
    assert.equal(r[0], id);
    assert.equal(Number(r[9]), results.find((x) => x.node_id === r[1]).data.total_ms);
  }

  await page.goto(`${origin}/#/jobs`);
  await page.waitForSelector(`#job-list a[href="#/job/${id}"]`);
  assert.match(await page.textContent("#job-list tbody tr"), new RegExp(`${id}.*5 of 5`));
  await shot("jobs");
});

test("a forged job file is refused on the Submit page with the hub's code", async () => {
  const file = signedJob("forged", "http", env.CONSOLE_TARGET);
  const job = JSON.parse(readFileSync(file, "utf8"));
  job.job.probe.args.url = "http://127.0.0.1:1/changed-after-signing";
  const forged = `${work}/forged-changed.job.json`;
  writeFileSync(forged, JSON.stringify(job, null, 2));
  let hubSays;
  try { vantage("submit", forged); } catch (e) { hubSays = String(e.stderr); }
  const code = hubSays.match(/HTTP 422, ([a-z-]+)\)/)[1];
  await page.goto(`${origin}/#/submit`);
  await page.setInputFiles("#job-file", forged);
  await page.waitForSelector("#verdict.bad");
  assert.match(await page.textContent("#verdict"), new RegExp(code));
  await page.click("#send");
  await page.waitForSelector("#refusal");
  assert.equal(await page.textContent("#refusal code"), code);
  await shot("submit-forged");
});
