// Drives the wsloop page in headless Chromium (Debian's `chromium`) through
// playwright-core. Started by tests/browser.rs:
//
//   node tests/browser/drive.mjs <page url> <screenshot.png> [<phone screenshot.png>]
//
// Every step waits with a bound; the first failure prints what the log held,
// saves `<screenshot>-failure.png` and exits 1.

import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, shot, phoneShot] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node drive.mjs <page url> <screenshot.png> [<phone screenshot.png>]");
  process.exit(2);
}
const executablePath = process.env.WSLOOP_CHROMIUM || "/usr/bin/chromium";
// Whether the server accepts permessage-deflate (WSLOOP_DEFLATE=0: built
// without the `deflate` feature).
const deflate = process.env.WSLOOP_DEFLATE !== "0";
const STEP = 10_000; // ms per wait

// Over https (WSLOOP_TLS_CERT names the server's PEM certificate, made for
// the run): Chromium trusts exactly that key, by the SHA-256 of its SPKI.
const trust = [];
if (process.env.WSLOOP_TLS_CERT) {
  const cert = new X509Certificate(readFileSync(process.env.WSLOOP_TLS_CERT));
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  const pin = createHash("sha256").update(spki).digest("base64");
  trust.push(`--ignore-certificate-errors-spki-list=${pin}`);
}

const profile = mkdtempSync(join(tmpdir(), "wsloop-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    ...trust,
  ],
});

const problems = [];
let page;
let current = "start";

function step(name) {
  current = name;
  console.log(`step: ${name}`);
}

/** Waits until an entry of `kind` whose text matches `re` is in the log, `count` times. */
async function waitEntry(kind, re, count = 1) {
  await page.waitForFunction(
    ([kind, source, count]) => {
      const re = new RegExp(source);
      const hits = [...document.querySelectorAll(`#log .entry.${kind} .msg`)].filter((e) =>
        re.test(e.textContent)
      );
      return hits.length >= count;
    },
    [kind, re.source, count],
    { timeout: STEP }
  );
}

async function connect(path) {
  const before = await page.$$eval("#log .entry.state .msg", (es) =>
    es.filter((e) => e.textContent.startsWith("readyState OPEN")).length
  );
  await page.selectOption("#endpoint", path);
  await page.click("#connect");
  await waitEntry("state", /^readyState OPEN \(1\)/, before + 1);
  await page.waitForSelector("#input:not([disabled])", { timeout: STEP });
}

/**
 * Checks the controls that belong to one endpoint: the demo commands on /
 * only, Quit on /push only (elsewhere `quit` is text like any other), the
 * chat name on /chat only.
 */
async function expectControls(path) {
  const wanted = {
    "#demo-commands": path === "/",
    "#commands button[data-cmd=hello]": path === "/",
    "#quit": path === "/push",
    "#name": path === "/chat",
  };
  for (const [selector, want] of Object.entries(wanted)) {
    const shown = await page.isVisible(selector);
    if (shown !== want) {
      throw new Error(`with ${path} selected, ${selector} is ${shown ? "shown" : "hidden"}`);
    }
  }
}

async function clearLog() {
  await page.click("#clear");
}

async function watch(p) {
  p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  p.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
}

try {
  page = context.pages()[0] ?? (await context.newPage());
  await watch(page);

  step("load the page");
  const response = await page.goto(url, { timeout: STEP });
  if (!response || response.status() !== 200) throw new Error(`page answered ${response?.status()}`);
  const title = await page.title();
  if (!title.includes("wsloop")) throw new Error(`unexpected title ${title}`);

  step("each endpoint shows its own controls");
  await expectControls("/");
  for (const path of ["/echo", "/push", "/chat", "/", "/chat", "/push", "/"]) {
    await page.selectOption("#endpoint", path);
    await expectControls(path);
  }

  step("connect to / and say hello");
  await connect("/");
  await expectControls("/");
  await page.fill("#input", "hello");
  await page.press("#input", "Enter");
  await waitEntry("sent", /^hello$/);
  await waitEntry("recv", /^hello human$/);
  await page.fill("#input", "what is this");
  await page.press("#input", "Enter");
  await waitEntry("recv", /^You have entered: what is this$/);
  await page.click("#commands button[data-cmd=time]");
  await page.click("#send");
  await waitEntry("recv", /^server time is \d\d:\d\d:\d\d$/);
  await page.click("#disconnect");
  await waitEntry("state", /^readyState CLOSED \(3\): code 1000/);

  step("connect to /push and see two pushes");
  await clearLog();
  await connect("/push");
  await expectControls("/push");
  await waitEntry("recv", /^I am waiting [\d.]+ seconds?$/, 2);
  step("press Quit and see the close");
  await page.click("#quit");
  await waitEntry("sent", /^quit$/);
  await waitEntry("state", /^readyState CLOSED \(3\): code 1000 "quit", clean$/);
  await page.waitForSelector("#connect:not([disabled])", { timeout: STEP });

  step(`connect to /echo: permessage-deflate ${deflate ? "agreed" : "not agreed"}`);
  await clearLog();
  await connect("/echo");
  await expectControls("/echo");
  // Chromium offers permessage-deflate; the page shows what was agreed.
  const agreed = await page.evaluate(() => window.wsloopPage.extensions);
  console.log(`extensions: ${JSON.stringify(agreed)}`);
  if (deflate) {
    await waitEntry("state", /^readyState OPEN \(1\): with permessage-deflate(;|$)/);
    if (!/^permessage-deflate(;|$)/.test(agreed)) throw new Error(`ws.extensions is ${JSON.stringify(agreed)}`);
  } else {
    await waitEntry("state", /^readyState OPEN \(1\)$/);
    if (agreed !== "") throw new Error(`ws.extensions is ${JSON.stringify(agreed)}`);
  }

  step("send 64 KiB of repeated text: back whole");
  const text = "All work and no play makes Jack a dull boy. ".repeat(1490).slice(0, 65_536);
  await page.fill("#input", text);
  await page.press("#input", "Enter");
  await page.waitForFunction((text) => window.wsloopPage.received.at(-1) === text, text, { timeout: STEP });
  await waitEntry("recv", /\(65536 characters in all\)$/);

  step("send 100 KB on /echo");
  const big = Array.from({ length: 102_400 }, (_, i) => "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]).join("");
  await page.fill("#input", big);
  await page.press("#input", "Enter");
  await page.waitForFunction((n) => window.wsloopPage.received.some((m) => m.length === n), big.length, {
    timeout: STEP,
  });
  const whole = await page.evaluate((big) => window.wsloopPage.received.at(-1) === big, big);
  if (!whole) throw new Error("the echoed 100 KB message differs from the one sent");
  await waitEntry("recv", /\(102400 characters in all\)$/);
  await page.fill("#input", "and a short one");
  await page.press("#input", "Enter");
  await waitEntry("recv", /^and a short one$/);

  step("desktop screenshot");
  await clearLog();
  await page.click("#disconnect");
  await waitEntry("state", /^readyState CLOSED/);
  await clearLog();
  await connect("/");
  for (const cmd of ["hello", "name", "date", "server", "is anyone there?"]) {
    await page.fill("#input", cmd);
    await page.press("#input", "Enter");
  }
  await waitEntry("recv", /^You have entered: is anyone there\?$/);
  await page.fill("#input", "bye");
  await page.press("#input", "Enter");
  await waitEntry("state", /^readyState CLOSED \(3\): code 1000 "bye"/);
  await page.selectOption("#endpoint", "/push");
  await page.click("#connect");
  await waitEntry("recv", /^I am waiting/, 2);
  await expectControls("/push");
  await page.fill("#input", "quit");
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);

  if (phoneShot) {
    step("phone-width screenshot");
    const phone = await context.newPage();
    page = phone;
    await watch(phone);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(url, { timeout: STEP });
    await connect("/");
    await expectControls("/");
    for (const cmd of ["hi", "age", "thanks"]) {
      await phone.fill("#input", cmd);
      await phone.press("#input", "Enter");
    }
    await waitEntry("recv", /^you're welcome$/);
    await phone.screenshot({ path: phoneShot });
    console.log(`screenshot: ${phoneShot}`);
  }

  if (problems.length) throw new Error(problems.join("\n"));
  console.log("browser scenario passed");
} catch (e) {
  console.error(`FAILED at step "${current}": ${e.message}`);
  try {
    const lines = await page.$$eval("#log .entry", (es) => es.map((e) => e.textContent.slice(0, 200)));
    console.error("log:\n  " + lines.join("\n  "));
    const failure = shot.replace(/\.png$/, "") + "-failure.png";
    await page.screenshot({ path: failure });
    console.error(`failure screenshot: ${failure}`);
  } catch (inner) {
    console.error(`(no log: ${inner.message})`);
  }
  process.exitCode = 1;
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
