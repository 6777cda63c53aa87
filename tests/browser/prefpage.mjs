// prefpage.mjs URL SCREENSHOT: crier's preference page in headless Chromium.
//
// Opens URL (the link of a real email's footer) at a phone's width with
// JavaScript off, checks that the page is whole without it (a language, a
// title, a label for every control, fieldsets with legends, no script) and
// asks nothing of any other origin; then prefers SMS, sets quiet hours
// 23:00 to 07:00, stops WhatsApp, submits, and waits for the confirmation.
// Saves a screenshot of the confirmation to SCREENSHOT (PNG), and of the page
// before the change beside it (SCREENSHOT without .png, then -form.png), and prints one
// JSON line: what was seen, every request made, and the form body posted
// (for the caller to replay). Exits 1, saying why, when anything is amiss.
//
// The browser is the system's Chromium (CRIER_CHROMIUM, /usr/bin/chromium by
// default): playwright-core brings no browser of its own.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node prefpage.mjs URL SCREENSHOT");
  process.exit(2);
}
const executablePath = process.env.CRIER_CHROMIUM || "/usr/bin/chromium";

function fail(why) {
  throw new Error(why);
}

async function main() {
  // --no-sandbox: the tests may run as root, where Chromium's sandbox
  // refuses to start
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox"],
    timeout: 60000,
  });
  try {
    const context = await browser.newContext({
      javaScriptEnabled: false,
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(30000);
    const origin = new URL(url).origin;
    const requests = [];
    let posted = null;
    page.on("request", (r) => {
      requests.push({ method: r.method(), url: r.url() });
      if (r.method() === "POST") posted = r.postData();
    });

    const res = await page.goto(url, { waitUntil: "load" });
    if (!res || res.status() !== 200) fail(`GET answered ${res && res.status()}`);
    const headers = res.headers();
    for (const [name, want] of [
      ["content-security-policy", "default-src 'none'"],
      ["x-frame-options", "DENY"],
      ["referrer-policy", "no-referrer"],
      ["cache-control", "no-store"],
      ["x-content-type-options", "nosniff"],
    ]) {
      if (!(headers[name] || "").includes(want)) fail(`header ${name}: ${headers[name]}`);
    }

    // whole without JavaScript, accessible by its markup
    const html = page.locator("html");
    if ((await html.getAttribute("lang")) !== "en") fail("no lang on <html>");
    const title = await page.title();
    if (!title.includes("preferences")) fail(`title ${title}`);
    if ((await page.locator("script").count()) !== 0) fail("the page has a script");
    for (const legend of ["Preferred channel", "Quiet hours", "Stop messages"]) {
      const n = await page.locator("fieldset > legend", { hasText: legend }).count();
      if (n !== 1) fail(`fieldset "${legend}": ${n}`);
    }
    const inputs = page.locator("input:not([type=hidden])");
    const count = await inputs.count();
    for (let i = 0; i < count; i++) {
      const id = await inputs.nth(i).getAttribute("id");
      if (!id || (await page.locator(`label[for="${id}"]`).count()) !== 1)
        fail(`input ${i} (${id}) has no label`);
    }
    const channels = await page.locator(".status li").allInnerTexts();
    const seen = {
      title,
      h1: await page.locator("h1").innerText(),
      channels,
      inputs: count,
    };

    // the page as the client first sees it, beside the confirmation
    await page.screenshot({ path: screenshot.replace(/\.png$/, "") + "-form.png", fullPage: true });

    // the changes, by the labels a person reads
    await page.getByLabel("SMS", { exact: true }).check();
    await page.getByLabel("Quiet hours at these times:").check();
    await page.getByLabel("Start", { exact: true }).fill("23:00");
    await page.getByLabel("End", { exact: true }).fill("07:00");
    await page.getByLabel("No messages by WhatsApp").check();
    const [answer] = await Promise.all([
      page.waitForNavigation({ waitUntil: "load" }),
      page.getByRole("button", { name: "Save my preferences" }).click(),
    ]);
    if (!answer || answer.status() !== 200) fail(`the form answered ${answer && answer.status()}`);
    seen.confirmation = await page.locator("h1").innerText();
    seen.changes = await page.locator("main li").allInnerTexts();
    seen.status_text = await page.locator("[role=status]").innerText();
    if (seen.confirmation !== "Your preferences are saved") fail(`confirmation: ${seen.confirmation}`);
    await page.screenshot({ path: screenshot, fullPage: true });

    const external = requests.filter((r) => new URL(r.url).origin !== origin);
    if (external.length) fail(`requests to other origins: ${JSON.stringify(external)}`);
    console.log(JSON.stringify({ seen, requests, posted }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`prefpage.mjs: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
