// Drives stompd's management console in headless Chromium for
// tests/integration/test_console.py.
//
//   node tests/js/console.mjs CONSOLE_URL
//
// Commands arrive on stdin, one JSON object a line; each gets one JSON line
// on stdout: {"ok": true, ...} or {"ok": false, "error": "..."}.
//
//   {"do": "login", "user": U, "password": P}   log in, wait for the tables
//   {"do": "ready", "queue": Q, "count": N}      wait until Q shows N ready
//   {"do": "purge", "queue": Q}                  click Purge, confirm
//   {"do": "move", "queue": Q}                   click Move back (a DLQ), confirm
//   {"do": "topic", "topic": T, "consumers": N}  wait until T shows N subscribers
//   {"do": "connection", "session": S}           wait until S is listed
//   {"do": "close", "session": S}                click Close, confirm
//   {"do": "screenshot", "path": P}
//   {"do": "quit"}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const STEP_TIMEOUT = 10_000;
const IDLE_TIMEOUT = 30_000;
const [consoleUrl] = process.argv.slice(2);

const profile = mkdtempSync(join(tmpdir(), "stompd-console-"));
let context = null;

async function close() {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

let watchdog = null;
function resetWatchdog() {
  clearTimeout(watchdog);
  watchdog = setTimeout(async () => {
    console.error(`no command for ${IDLE_TIMEOUT} ms, giving up`);
    await close();
    process.exit(3);
  }, IDLE_TIMEOUT);
}
resetWatchdog();

function reply(answer) {
  process.stdout.write(JSON.stringify(answer) + "\n");
}

context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  headless: true,
  viewport: { width: 1000, height: 640 },
  timeout: STEP_TIMEOUT,
});
context.setDefaultTimeout(STEP_TIMEOUT);
const page = context.pages()[0] ?? (await context.newPage());
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
// Confirmations are accepted, as an operator clicking OK.
page.on("dialog", (dialog) => dialog.accept());
await page.goto(consoleUrl);

const row = (attribute, value) => page.locator(`tr[data-${attribute}="${value}"]`);

const commands = {
  async login({ user, password }) {
    await page.fill("#user", user);
    await page.fill("#password", password);
    await page.click("#login-button");
    await page.waitForSelector("#console:not([hidden])");
    await page.waitForSelector("#status:text-matches('updated')");
    return {};
  },
  async ready({ queue, count }) {
    await page.waitForFunction(
      ([q, n]) => {
        const cell = document.querySelector(`tr[data-queue="${q}"] td.ready`);
        return cell && cell.textContent === String(n);
      },
      [queue, count],
    );
    return {};
  },
  async purge({ queue }) {
    await row("queue", queue).locator("button.purge").click();
    return {};
  },
  async move({ queue }) {
    await row("queue", queue).locator("button.move").click();
    return {};
  },
  async topic({ topic, consumers }) {
    await page.waitForFunction(
      ([t, n]) => {
        const row = document.querySelector(`tr[data-topic="${t}"]`);
        return row && row.cells[4].textContent === String(n);
      },
      [topic, consumers],
    );
    return {};
  },
  async connection({ session }) {
    await row("session", session).waitFor();
    return {};
  },
  async close({ session }) {
    await row("session", session).locator("button").click();
    return {};
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: true });
    return {};
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  resetWatchdog();
  const command = JSON.parse(line);
  if (command.do === "quit") break;
  try {
    const answer = await commands[command.do](command);
    if (problems.length) throw new Error(problems.join("; "));
    reply({ ok: true, ...answer });
  } catch (error) {
    reply({ ok: false, error: String(error && error.message ? error.message : error) });
  }
}
clearTimeout(watchdog);
await close();
process.exit(0);
