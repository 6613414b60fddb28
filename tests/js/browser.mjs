// Drives stompd's built-in page in headless Chromium for
// tests/integration/test_browser.py.
//
//   node tests/js/browser.mjs PAGE_URL
//
// Commands arrive on stdin, one JSON object a line; each gets one JSON line
// on stdout: {"ok": true, ...} or {"ok": false, "error": "..."}.
//
//   {"do": "connect"}                       click Connect, wait for "connected"
//   {"do": "subscribe", "destination": D}   fill in D, click Subscribe
//   {"do": "send", "destination": D, "body": B}
//   {"do": "expect", "destination": D, "body": B}
//                                           wait until Messages shows it; answers
//                                           with every message shown so far
//   {"do": "screenshot", "path": P}         save a PNG of the whole page
//   {"do": "quit"}
//
// Every wait has a timeout, and a watchdog ends the process if the test
// that started it goes quiet, so a stuck browser never outlives its test.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const STEP_TIMEOUT = 10_000;
const IDLE_TIMEOUT = 30_000;

const [pageUrl] = process.argv.slice(2);
if (!pageUrl) {
  console.error("usage: node tests/js/browser.mjs PAGE_URL");
  process.exit(2);
}

function reply(answer) {
  process.stdout.write(JSON.stringify(answer) + "\n");
}

// A profile of its own, so nothing from another run (or a user's browser)
// leaks in; removed on every way out.
const profile = mkdtempSync(join(tmpdir(), "stompd-browser-"));
let context = null;

async function close() {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

async function fail(message, code) {
  console.error(message);
  await close();
  process.exit(code);
}

let watchdog = null;
function resetWatchdog() {
  clearTimeout(watchdog);
  watchdog = setTimeout(() => fail(`no command for ${IDLE_TIMEOUT} ms, giving up`, 3), IDLE_TIMEOUT);
}
resetWatchdog();

let page = null;
const problems = [];
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
    ],
    headless: true,
    // Short, so that the full-page screenshot ends where the page does.
    viewport: { width: 1000, height: 300 },
    timeout: STEP_TIMEOUT,
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  await page.goto(pageUrl);
} catch (error) {
  await fail(`cannot open ${pageUrl}: ${error.message ?? error}`, 1);
}

async function shownMessages() {
  return page.$$eval("#messages li", (items) =>
    items.map((item) => ({
      destination: item.querySelector(".destination").textContent,
      body: item.querySelector(".body").textContent,
    })),
  );
}

const commands = {
  async connect() {
    await page.click("#connect");
    // "connected, STOMP 1.2", or an error, which fails the wait with its text.
    await page.waitForFunction(() => {
      const status = document.getElementById("status");
      return status.className === "on" || status.className === "error";
    });
    const status = await page.textContent("#status");
    if (!status.startsWith("connected")) throw new Error(`status: ${status}`);
    return { status };
  },

  async subscribe({ destination }) {
    await page.fill("#subscribe-destination", destination);
    await page.click("#subscribe");
    return {};
  },

  async send({ destination, body }) {
    await page.fill("#send-destination", destination);
    await page.fill("#send-body", body);
    await page.click("#send");
    return {};
  },

  async expect({ destination, body }) {
    await page.waitForFunction(
      ([destination, body]) =>
        [...document.querySelectorAll("#messages li")].some(
          (item) =>
            item.querySelector(".destination").textContent === destination &&
            item.querySelector(".body").textContent === body,
        ),
      [destination, body],
    );
    return { messages: await shownMessages() };
  },

  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: true });
    return {};
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  resetWatchdog();
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    reply({ ok: false, error: `bad command: ${line}` });
    continue;
  }
  if (command.do === "quit") break;
  const run = commands[command.do];
  if (!run) {
    reply({ ok: false, error: `unknown command: ${command.do}` });
    continue;
  }
  try {
    reply({ ok: true, ...(await run(command)) });
  } catch (error) {
    const shown = await shownMessages().catch(() => []);
    reply({ ok: false, error: String(error.message ?? error).split("\n")[0], problems, messages: shown });
  }
}
clearTimeout(watchdog);
await close();
