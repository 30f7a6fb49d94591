// A page served from one origin uses the built client against questlog on another, in Debian's
// headless Chromium driven over the DevTools protocol (playwright-core, which downloads no
// browser): it gets an identity, registers, completes a lab and shows the XP pushed live.
// QUESTLOG_URL, QUESTLOG_ADMIN_TOKEN and CHROMIUM come from the suite's test (tests/it/browser.rs).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const api = process.env.QUESTLOG_URL;
const root = fileURLToPath(new URL("..", import.meta.url));

// The catalog the page's player completes a lab of.
const lab = `lab_${Math.random().toString(36).slice(2, 10)}`;
for (const [name, body] of [
  ["define_module", { module: 1, title: "Basics", requires: [] }],
  ["define_lab", { lab_id: lab, module: 1, title: "A lab", xp: 75 }],
]) {
  const answer = await fetch(`${api}/v1/commands/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${process.env.QUESTLOG_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!answer.ok) throw new Error(`${name}: ${answer.status} ${await answer.text()}`);
}

// The page's own origin: the page and the built client.
const types = { ".html": "text/html", ".js": "text/javascript" };
const site = createServer(async (request, response) => {
  const path = new URL(request.url, "http://page").pathname;
  const file = path === "/" ? join(root, "browser/page.html") : path.startsWith("/client/") ? join(root, "dist", path.slice(8)) : null;
  try {
    if (!file) throw new Error("not found");
    const body = await readFile(file);
    response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    response.end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${site.address().port}`;

const profile = await mkdtemp(join(tmpdir(), "questlog-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  const page = await context.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(m.text()));
  await page.goto(`${origin}/?api=${encodeURIComponent(api)}&lab=${lab}`);
  const handle = await page.waitForFunction(() => window.result, undefined, { timeout: 30_000 }).catch(async (error) => {
    const shown = await page.textContent("#xp").catch(() => "?");
    throw new Error(`${error.message}; the page shows ${shown}; its console:\n${console_.join("\n")}`);
  });
  const result = await handle.jsonValue();
  if (result.error) throw new Error(`the page failed: ${result.error}\n${console_.join("\n")}`);
  if (result.xp !== 75) throw new Error(`the page saw ${JSON.stringify(result)}`);
  const shown = await page.textContent("#xp");
  if (shown !== "75") throw new Error(`the page shows ${shown}`);
  console.log(`ok: a page on ${origin} got 75 XP pushed from ${api}`);
} finally {
  await context.close();
  site.close();
  await rm(profile, { recursive: true, force: true });
}
