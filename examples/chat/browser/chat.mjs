// The chat example in a real browser: Playwright's library (playwright-core,
// no browser of its own) drives Debian's chromium. Two pages in one room:
// one sends, the other sees it; a reload shows it again, from history.
// Every answer the pages get is checked for CORS headers (there are none:
// one origin). Screenshots go to $CHAT_ARTIFACTS.
//
//   CHAT_URL=http://127.0.0.1:2683 CHAT_ARTIFACTS=target/chat-browser node chat.mjs
//
// Prints one JSON line (what happened, with timings) and exits 0, or
// prints what failed and exits 1. Every wait is bounded.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.CHAT_URL;
const artifacts = process.env.CHAT_ARTIFACTS || "chat-browser-artifacts";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base) {
  console.error("CHAT_URL is not set: the app's gateway URL (`cove routes`)");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "chat-chromium-"));
const room = `browser-${Date.now().toString(36)}`;
const text = `hello from chromium ${Math.random().toString(36).slice(2, 8)}`;
const problems = [];
const timings = {};
let context;

async function timed(name, f) {
  const t = performance.now();
  const v = await f();
  timings[name] = Math.round(performance.now() - t);
  return v;
}

async function open(name) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${name}: console error: ${m.text()} (${m.location().url})`);
  });
  page.on("response", (r) => {
    for (const h of Object.keys(r.headers())) {
      if (h.startsWith("access-control-")) problems.push(`${name}: ${r.url()} answered with ${h}`);
    }
  });
  await page.goto(`${base}/?room=${room}`);
  await page.waitForSelector('#status[data-state="live"]');
  return page;
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const alice = await timed("open_alice_ms", () => open("alice"));
  const bob = await timed("open_bob_ms", () => open("bob"));
  await alice.fill("#user", "alice");
  await alice.fill("#text", text);
  await timed("delivered_ms", async () => {
    await alice.press("#text", "Enter");
    // Bob sees it; on Alice's page it is no longer pending (the broker
    // confirmed it and it came back through the feed).
    await bob.locator("#messages li:not(.pending)", { hasText: text }).waitFor();
    await alice.locator("#messages li:not(.pending)", { hasText: text }).waitFor();
    // The ack may come after the message itself came back.
    await alice.waitForFunction(() => window.chat.acked.size === 1 && window.chat.pending.size === 0);
  });
  await alice.screenshot({ path: join(artifacts, "alice-sent.png") });
  await bob.screenshot({ path: join(artifacts, "bob-received.png") });
  // A reload starts with nothing; the message comes back from history.
  await timed("reload_ms", async () => {
    await bob.reload();
    await bob.waitForSelector('#status[data-state="live"]');
    await bob.locator("#messages li", { hasText: text }).waitFor();
  });
  const shown = await bob.locator("#messages li").count();
  if (shown !== 1) problems.push(`bob after reload: ${shown} messages shown, not 1`);
  const user = await bob.locator("#messages li .user").first().textContent();
  if (user !== "alice") problems.push(`bob after reload: the author is ${user}`);
  await bob.screenshot({ path: join(artifacts, "bob-reloaded.png") });
} catch (e) {
  problems.push(`failed: ${e.message}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, room, timings, artifacts }));
