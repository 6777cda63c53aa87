// console.mjs URL TOKEN OUTDIR PLAN: the operator console in headless Chromium.
//
// Signs in at URL/console/login with TOKEN (a form post: the token is in no
// URL), then opens every view at 1280 px and checks, on each:
//   * the view drew without an error, and every chart has data;
//   * axe-core (run in the page) finds no serious or critical violation;
//   * a screenshot, OUTDIR/console-<view>.png.
// Then it works the console as an operator would: searches the history for
// PLAN and opens a communication's timeline, runs a dry run from the rules
// form, retries the first item of the review queue, downloads the history's
// CSV and parses it, opens that communication's client, and opens the
// overview at a phone's width. Keyboard:
// the skip link is the first Tab stop and moves to the content.
// Prints one JSON line of what it saw, for the caller to compare with the
// API; exits 1, saying why, when anything is amiss.
//
// The browser is the system's Chromium (CRIER_CHROMIUM, /usr/bin/chromium by
// default): playwright-core brings no browser of its own.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [url, token, outdir, plan] = process.argv.slice(2);
if (!url || !token || !outdir || !plan) {
  console.error("usage: node console.mjs URL TOKEN OUTDIR PLAN");
  process.exit(2);
}
const executablePath = process.env.CRIER_CHROMIUM || "/usr/bin/chromium";
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const VIEWS = ["overview", "channels", "timeline", "funnel", "preferences", "history", "review", "rules"];

function fail(why) {
  throw new Error(why);
}

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready === "1", null, { timeout: 30000 });
  // charts draw on the next frame
  await page.waitForFunction(() => [...document.querySelectorAll("[data-chart]")].every((c) => c.dataset.drawn === "1"), null, { timeout: 30000 });
}

async function axe(page) {
  // The page's policy lets no script in but its own: axe is evaluated
  // through the DevTools protocol, which the policy does not govern.
  await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
}

async function main() {
  const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"], timeout: 60000 });
  const seen = { views: {}, csp_errors: [], requests_elsewhere: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    const origin = new URL(url).origin;
    page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) seen.requests_elsewhere.push(r.url()); });
    page.on("console", (m) => { if (m.type() === "error") seen.csp_errors.push(m.text()); });

    // not signed in: the console sends us to the form
    await page.goto(url + "/console/overview");
    if (!page.url().endsWith("/console/login")) fail("without a session the console did not go to the login form: " + page.url());
    await page.fill("#token", token);
    await Promise.all([page.waitForURL(url + "/console"), page.click("button[type=submit]")]);
    if (page.url().includes(token)) fail("the token is in the URL");
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "crier_session");
    if (!session || !session.httpOnly || session.sameSite !== "Strict") fail("session cookie: " + JSON.stringify(session));
    await ready(page);

    // keyboard: the first Tab stop is the skip link, and it moves focus to the content
    await page.keyboard.press("Tab");
    const first = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    if (!/Skip to the content/.test(first || "")) fail("the first Tab stop is " + first);
    await page.keyboard.press("Enter");

    for (const v of VIEWS) {
      await page.goto(url + "/console/" + v);
      await ready(page);
      const info = await page.evaluate(() => ({
        title: document.getElementById("title").textContent,
        problems: [...document.querySelectorAll(".problem")].map((p) => p.textContent),
        charts: [...document.querySelectorAll("[data-chart]")].map((c) => ({ label: c.dataset.chart, points: Number(c.dataset.points || 0), canvas: !!c.querySelector("canvas") })),
        tables: [...document.querySelectorAll("table")].map((t) => ({ caption: t.caption && t.caption.textContent, rows: t.tBodies[0] ? t.tBodies[0].rows.length : 0 })),
        figures: Object.fromEntries([...document.querySelectorAll("[data-figure]")].map((d) => [d.dataset.figure, d.dataset.value])),
      }));
      if (info.problems.length) fail(v + ": " + info.problems.join("; "));
      if (v === "overview") {
        // the API's figures for the period the page showed, asked at once
        info.range = await page.evaluate(() => document.getElementById("view").dataset.range);
        info.api = await page.evaluate(async (r) => (await fetch("/v1/analytics/summary?" + r)).json(), info.range);
        const [pdf] = await Promise.all([page.waitForEvent("download"), page.click("#pdf")]);
        const bytes = fs.readFileSync(await pdf.path());
        if (bytes.subarray(0, 5).toString() !== "%PDF-") fail("the PDF report is not a PDF");
        fs.copyFileSync(await pdf.path(), path.join(outdir, "console-overview.pdf"));
        info.pdf_bytes = bytes.length;
      }
      for (const c of info.charts) if (!c.canvas || c.points === 0) fail(v + ": chart '" + c.label + "' has no data");
      info.axe = await axe(page);
      if (info.axe.length) fail(v + ": axe: " + JSON.stringify(info.axe));
      await page.screenshot({ path: path.join(outdir, "console-" + v + ".png"), fullPage: true });
      seen.views[v] = info;
    }

    // history: search the plan, open a communication's timeline
    await page.goto(url + "/console/history");
    await ready(page);
    await page.fill("#f-plan_id", plan);
    await page.click("form.filters button[type=submit]");
    await ready(page);
    const found = await page.locator("table tbody tr").count();
    if (found === 0) fail("the history found nothing for the plan");
    seen.history_rows = found;
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("button[data-csv=communications]")]);
    const csv = fs.readFileSync(await download.path(), "utf8").trim().split(/\r\n/);
    if (csv[0].split(",")[0] !== "Communication" || csv.length !== found + 1) fail("CSV: " + csv.length + " lines for " + found + " rows");
    seen.csv_lines = csv.length;
    seen.csv_header = csv[0];
    await page.locator("table tbody tr a").first().click();
    await ready(page);
    const events = await page.locator("#events li").count();
    if (events === 0) fail("the communication's timeline is empty");
    seen.timeline_events = events;
    seen.trace_steps = await page.locator("#trace li").count();
    seen.preview = await page.locator("#preview").textContent();
    seen.callbacks_rows = await page.locator("table:has(caption:text('Callbacks to the workflow')) tbody tr").count();
    seen.views.communication = { axe: await axe(page) };
    if (seen.views.communication.axe.length) fail("communication: axe: " + JSON.stringify(seen.views.communication.axe));
    await page.screenshot({ path: path.join(outdir, "console-communication.png"), fullPage: true });

    // its client's page: preferences, consent, communications
    await page.locator("main a[href^='/console/client']").first().click();
    await ready(page);
    const problems = await page.locator(".problem").count();
    if (problems) fail("client: " + (await page.locator(".problem").first().textContent()));
    seen.client_rows = await page.locator("table tbody tr").count();
    if (seen.client_rows === 0) fail("the client's page lists no communication");
    seen.views.client = { axe: await axe(page) };
    if (seen.views.client.axe.length) fail("client: axe: " + JSON.stringify(seen.views.client.axe));
    await page.screenshot({ path: path.join(outdir, "console-client.png"), fullPage: true });

    // rules: a dry run from the form
    await page.goto(url + "/console/rules");
    await ready(page);
    await page.fill("#dry-now", "2026-03-10T15:00");
    await page.click("form:has(#dry-request) button[type=submit]");
    await page.waitForSelector("#dry-answer .ok, #dry-answer .problem");
    seen.dry_run = await page.locator("#dry-answer p").first().textContent();
    if (!/^Decision: /.test(seen.dry_run)) fail("dry run: " + seen.dry_run);

    // review: retry the first item
    await page.goto(url + "/console/review");
    await ready(page);
    const retry = page.locator("button[data-retry]").first();
    seen.retried = await retry.getAttribute("data-retry");
    await retry.click();
    await page.waitForSelector("td .ok, td .problem");
    const said = await page.locator("td .ok, td .problem").first().textContent();
    if (said !== "Sent again.") fail("retry: " + said);

    // a phone's width
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url + "/console/overview");
    await ready(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    if (overflow) fail("the overview is wider than a phone");
    await page.screenshot({ path: path.join(outdir, "console-overview-phone.png"), fullPage: true });

    const csp = seen.csp_errors.filter((e) => /Content Security Policy/i.test(e));
    if (csp.length) fail("blocked by the page's policy: " + csp.join("; "));
    if (seen.requests_elsewhere.length) fail("requests to other origins: " + seen.requests_elsewhere.join(", "));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
