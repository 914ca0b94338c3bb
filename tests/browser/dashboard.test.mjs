// Dashboard tests in Debian's headless Chromium, driven by playwright-core. Started by run.sh,
// which serves a real chartflow on a throwaway schema and passes its address in CHARTFLOW_URL.
// Each test acts through the API (events, chart uploads) and asserts what an operator sees.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.CHARTFLOW_URL ?? "http://127.0.0.1:8080";
const CHROMIUM = process.env.CHARTFLOW_CHROMIUM ?? "/usr/bin/chromium";
const REPO =
  process.env.CHARTFLOW_REPO ?? path.resolve(import.meta.dirname, "../..");
const SHOTS =
  process.env.CHARTFLOW_SCREENSHOTS ??
  path.join(REPO, "test-output/screenshots");
const UI_TIMEOUT = 15_000;
const TOKEN = process.env.CHARTFLOW_TOKEN ?? "";
const UPLOADER_TOKEN = process.env.CHARTFLOW_UPLOADER_TOKEN ?? "";
const USER = process.env.CHARTFLOW_USER ?? "";
const PASSWORD = process.env.CHARTFLOW_PASSWORD ?? "";
const SERVER_LOG = process.env.CHARTFLOW_SERVER_LOG ?? "";
// A patient name made of markup: every page must show it as text and run none of it.
const XSS_FAMILY = "<script>window.__cfXss=1</script>Tester";
const XSS_GIVEN = '<img src=x onerror="window.__cfXss=2">Ann';

let context;
let page;
let profileDir;
const pageErrors = [];
const cspViolations = [];
const dialogs = [];

// ---- helpers ---------------------------------------------------------------------------------

// Requests from the test itself authenticate with the admin token run.sh created.
async function api(method, p, body, headers = {}) {
  const init = {
    method,
    headers: {
      Accept: "application/json",
      Authorization: `Bearer ${TOKEN}`,
      ...headers,
    },
  };
  // null: send no credential at all.
  if (init.headers.Authorization === null) delete init.headers.Authorization;
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] ??= "application/json";
  }
  const resp = await fetch(BASE + p, init);
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: resp.status, json, text };
}

async function postEvent(type, body) {
  const r = await api("POST", `/v1/events/${type}`, body);
  assert.ok(
    r.status === 202 || r.status === 200,
    `POST /v1/events/${type}: ${r.status} ${r.text}`,
  );
  assert.ok(
    r.json.runs?.length >= 1,
    `event ${type} started no run: ${r.text}`,
  );
  return r.json.runs[0];
}

async function waitFor(what, fn, timeoutMs = 30_000, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function runStatus(id) {
  const r = await api("GET", `/v1/runs/${id}`);
  assert.equal(r.status, 200, `GET /v1/runs/${id}: ${r.text}`);
  return r.json.status;
}

async function waitForRunStatus(id, status, timeoutMs = 30_000) {
  await waitFor(
    `run ${id} to be ${status}`,
    async () => (await runStatus(id)) === status,
    timeoutMs,
  );
}

async function shot(name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({
    path: path.join(SHOTS, `${name}.png`),
    fullPage: true,
  });
}

// A time as the dashboard shows it: 24-hour, no AM/PM, the date before it unless today.
const TIME_24H = /^(\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2}(\.\d{3})?$/;
const AM_PM = /\d\s?(am|pm)\b/i;

function money(amount, currency) {
  return new Intl.NumberFormat("en-US", { style: "currency", currency }).format(
    amount,
  );
}

// An RFC 3339 time to the second, as the time filters take it.
function isoSeconds(ms) {
  return new Date(Math.floor(ms / 1000) * 1000)
    .toISOString()
    .replace(/\.\d+Z$/, "Z");
}

// A marker that survives client-side navigation but not a reload.
async function markPage() {
  await page.evaluate(() => {
    window.__cfNoReload = "still here";
  });
}
async function assertNotReloaded() {
  assert.equal(
    await page.evaluate(() => window.__cfNoReload),
    "still here",
    "the page reloaded",
  );
}

async function headerStatus() {
  return page.getAttribute(".page-head h1 .badge", "data-status");
}

// ---- setup -----------------------------------------------------------------------------------

before(async () => {
  profileDir = mkdtempSync(path.join(tmpdir(), "chartflow-chromium-"));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
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
  context.setDefaultTimeout(UI_TIMEOUT);
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text()))
      cspViolations.push(msg.text());
  });
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
});

after(async () => {
  await context?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

// ---- tests -----------------------------------------------------------------------------------

let diamondRun;

test("without a session every page leads to sign-in; the first-start link is dead once an admin token exists", async () => {
  await page.goto(`${BASE}/ui/runs`);
  await page.waitForURL(/\/ui\/signin\?next=%2Fui%2Fruns/);
  await page.waitForSelector("form[data-form=token]");
  const unauthorized = await fetch(`${BASE}/v1/runs`);
  assert.equal(unauthorized.status, 401);
  assert.deepEqual(Object.keys(await unauthorized.json()), ["error"]);

  const link = readFileSync(SERVER_LOG, "utf8").match(
    /http:\/\/\S+\/ui\/signin\?code=(cfc_[0-9a-f]{64})/,
  );
  assert.ok(link, "serve printed no first-start sign-in link");
  // run.sh made an admin token after the server printed the link: the code no longer signs
  // anyone in (issue #14 item 18), so the token does, through the sign-in form.
  const dead = await api(
    "POST",
    "/v1/auth/signin",
    { code: link[1] },
    { Authorization: null },
  );
  assert.equal(dead.status, 401, dead.text);
  await page.fill("form[data-form=token] input[name=token]", TOKEN);
  await page.click("form[data-form=token] button[type=submit]");
  await page.waitForSelector(".user .user-name:has-text('browser-admin')");
  assert.notEqual(new URL(page.url()).pathname, "/ui/signin");
  const cookies = await context.cookies(BASE);
  const sessionCookie = cookies.find((c) => c.name === "cf_session");
  assert.ok(sessionCookie, "no session cookie");
  assert.equal(sessionCookie.httpOnly, true);
  assert.equal(sessionCookie.sameSite, "Strict");
  assert.equal(
    await page.evaluate(() => document.cookie),
    "",
    "the page cannot read it",
  );

  // The code is spent; the session works and a state change without the CSRF header is refused.
  const again = await api(
    "POST",
    "/v1/auth/signin",
    { code: link[1] },
    { Authorization: null },
  );
  assert.equal(again.status, 401);
  const cookieHeader = `cf_session=${sessionCookie.value}`;
  const noCsrf = await api(
    "POST",
    "/v1/events/demo.diamond",
    {},
    {
      Authorization: null,
      Cookie: cookieHeader,
    },
  );
  assert.equal(noCsrf.status, 403, noCsrf.text);
  assert.match(noCsrf.text, /CSRF/);
  await shot("signed-in-first-start");
});

test("a new run appears in the runs list without reloading, and its status updates live", async () => {
  await page.goto(`${BASE}/ui/runs`);
  await page.waitForSelector("table.runs-table tbody tr");
  await page.waitForSelector(".live-text:has-text('updated')");
  await markPage();

  diamondRun = await postEvent("demo.diamond", { skip_e: true });
  const row = `table.runs-table tr[data-run-id="${diamondRun}"]`;
  await page.waitForSelector(row);
  await page.waitForSelector(`${row}[data-status="succeeded"]`);
  await assertNotReloaded();
  assert.match(await page.textContent(`${row} td:nth-child(2)`), /diamond/);
  // Newest first.
  const firstId = await page.getAttribute(
    "table.runs-table tbody tr:first-child",
    "data-run-id",
  );
  assert.equal(Number(firstId), diamondRun);

  // Filtering by workflow and status narrows the list.
  await page.selectOption("form.filters select[name=status]", "failed");
  await page.waitForFunction(
    (id) => !document.querySelector(`tr[data-run-id="${id}"]`),
    diamondRun,
  );
  assert.match(page.url(), /status=failed/);
  await page.selectOption("form.filters select[name=status]", "");
  await page.waitForSelector(row);
  await shot("runs");
});

test("run detail draws the DAG with each step's state, timeline, outputs and history", async () => {
  assert.ok(diamondRun, "needs the run from the previous test");
  await page.click(
    `table.runs-table tr[data-run-id="${diamondRun}"] td:nth-child(3)`,
  );
  await page.waitForURL(`**/ui/runs/${diamondRun}`);
  await assertNotReloaded();
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="d"].state-succeeded',
  );

  const states = await page.$$eval("svg.dag g.dag-node", (nodes) =>
    Object.fromEntries(
      nodes.map((n) => [n.getAttribute("data-step"), n.getAttribute("class")]),
    ),
  );
  assert.deepEqual(Object.keys(states).sort(), ["a", "b", "c", "d", "e"]);
  for (const s of ["a", "b", "c", "d"])
    assert.match(states[s], /\bstate-succeeded\b/, `step ${s}`);
  assert.match(
    states.e,
    /\bstate-skipped\b/,
    "step e is skipped (when: /event/skip_e equals false)",
  );
  assert.equal(await page.locator("svg.dag path.dag-edge").count(), 5);
  assert.equal(await headerStatus(), "succeeded");

  // Timeline: one bar per started step; b slept ~300 ms.
  assert.ok((await page.locator(".timeline .tl-row").count()) >= 4);
  assert.ok(
    await page.isVisible(
      '.timeline .tl-row[data-step="b"] .tl-bar.state-succeeded',
    ),
  );

  // Outputs as collapsible JSON: b's output is its input {"ms": 300}.
  await page.click('details.step[data-step="b"] > summary');
  await page.waitForSelector('details.step[data-step="b"][open] .json');
  assert.match(
    await page.textContent('details.step[data-step="b"] .json'),
    /"ms"[\s\S]*300/,
  );

  // History and attempts.
  assert.ok(
    (await page
      .locator('.card table.grid tr[data-type="succeeded"]')
      .count()) >= 4,
  );
  assert.ok((await page.locator('tr[data-outcome="succeeded"]').count()) >= 4);
  await shot("run-detail");
});

test("run detail shows the run's trace id, the one its event came with", async () => {
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  const r = await api("POST", "/v1/events/test.approval", {}, {
    traceparent: `00-${traceId}-b7ad6b7169203331-01`,
  });
  assert.equal(r.status, 202, r.text);
  const id = r.json.runs[0];
  await page.goto(`${BASE}/ui/runs/${id}`);
  await page.waitForSelector("code.trace-id");
  assert.equal((await page.textContent("code.trace-id")).trim(), traceId);
  // Finished, as the other tests' runs of this workflow are.
  const signalled = await api("POST", `/v1/runs/${id}/signal/approve`, { by: "trace test" });
  assert.equal(signalled.status, 202, signalled.text);
  await waitForRunStatus(id, "succeeded");
});

test("a waiting step is signalled from the page and the run completes", async () => {
  const id = await postEvent("test.approval", {});
  await page.goto(`${BASE}/ui/runs/${id}`);
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="approve"].state-waiting',
  );
  const form = 'form.signal-form[data-step="approve"]';
  await page.waitForSelector(form);
  assert.equal(await page.inputValue(`${form} input[name=signal]`), "approve");
  await shot("run-waiting");
  await page.fill(`${form} textarea[name=payload]`, '{"by": "browser test"}');
  const [resp] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/runs/${id}/signal/approve`) &&
        r.request().method() === "POST",
    ),
    page.click(`${form} button[data-action=signal]`),
  ]);
  assert.equal(resp.status(), 202);
  await page.waitForSelector('.page-head h1 .badge[data-status="succeeded"]');
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="finish"].state-succeeded',
  );
});

test("a failed run is retried from the page: the status changes and the run can finish", async () => {
  const id = await postEvent("test.deadline", {});
  await waitForRunStatus(id, "failed", 60_000);
  await page.goto(`${BASE}/ui/runs/${id}`);
  await page.waitForSelector('.page-head h1 .badge[data-status="failed"]');
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="wait_go"].state-failed',
  );
  assert.match(await page.textContent(".run-error"), /deadline/);
  assert.match(await page.textContent('tr[data-outcome="failed"]'), /deadline/);
  assert.equal(await page.isDisabled("button[data-action=cancel]"), true);
  await shot("run-failed");

  const [resp] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/runs/${id}/retry`) &&
        r.request().method() === "POST",
    ),
    page.click("button[data-action=retry]"),
  ]);
  assert.equal(resp.status(), 202);
  await page.waitForFunction(() => {
    const b = document.querySelector(".page-head h1 .badge");
    return b && b.getAttribute("data-status") !== "failed";
  });
  assert.notEqual(await headerStatus(), "failed");
  assert.ok(
    (await page.locator('tr[data-type="retried"]').count()) >= 1,
    "history shows the retry",
  );

  // The retried step waits again; signalling it lets the run succeed.
  const form = 'form.signal-form[data-step="wait_go"]';
  await page.waitForSelector(form);
  await page.click(`${form} button[data-action=signal]`);
  await page.waitForSelector('.page-head h1 .badge[data-status="succeeded"]');
});

test("parked steps are listed on the Parked page; an operator retries, skips with a reason or fails them", async () => {
  const skipRun = await postEvent("test.park", {});
  const failRun = await postEvent("test.park", {});
  await waitForRunStatus(skipRun, "parked");
  await waitForRunStatus(failRun, "parked");

  await page.goto(`${BASE}/ui/parked`);
  const row = (id) =>
    `table.parked-table tr[data-run-id="${id}"][data-step="deliver"]`;
  await page.waitForSelector(row(skipRun));
  await page.waitForSelector(row(failRun));
  assert.match(
    await page.textContent(`${row(skipRun)} .error-cell`),
    /insurer answered 500 <i>not italic<\/i>/,
  );
  await shot("parked");

  // A retry from the list: the outside system is still down, so after its fresh attempt the
  // step parks again.
  const [retried] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/runs/${failRun}/steps/deliver/retry`) &&
        r.request().method() === "POST",
    ),
    page.click(`${row(failRun)} button[data-action=retry-step]`),
  ]);
  assert.equal(retried.status(), 202);
  await waitFor("the retried step to park again", async () => {
    const r = await api("GET", `/v1/runs/${failRun}`);
    const step = r.json.steps.find((st) => st.name === "deliver");
    return r.json.status === "parked" && step.attempts === 2;
  });

  // A skip needs a reason; with one, the step after it runs and the run succeeds.
  await page.goto(`${BASE}/ui/runs/${skipRun}`);
  const form = '.parked-form[data-step="deliver"]';
  await page.waitForSelector(form);
  await page.waitForSelector('.page-head h1 .badge[data-status="parked"]');
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="deliver"].state-parked',
  );
  await shot("run-parked");
  await page.click(`${form} button[data-action=skip-step]`);
  await page.waitForSelector(`${form} .form-error:has-text("reason")`);
  assert.equal(await headerStatus(), "parked");
  await page.fill(`${form} input[name=reason]`, "claim faxed <b>by hand</b>");
  const [skipped] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/runs/${skipRun}/steps/deliver/skip`) &&
        r.request().method() === "POST",
    ),
    page.click(`${form} button[data-action=skip-step]`),
  ]);
  assert.equal(skipped.status(), 202);
  await page.waitForSelector('.page-head h1 .badge[data-status="succeeded"]');
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="notify"].state-succeeded',
  );
  assert.match(
    await page.textContent('details.step[data-step="deliver"]'),
    /claim faxed <b>by hand<\/b>/,
  );

  // Fail asks for a second click, then fails the run.
  await page.goto(`${BASE}/ui/runs/${failRun}`);
  await page.waitForSelector(form);
  await page.click(`${form} button[data-action=fail-step]`);
  assert.equal(await headerStatus(), "parked");
  const [failed] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/runs/${failRun}/steps/deliver/fail`) &&
        r.request().method() === "POST",
    ),
    page.click(`${form} button[data-action=fail-step]`),
  ]);
  assert.equal(failed.status(), 202);
  await page.waitForSelector('.page-head h1 .badge[data-status="failed"]');

  // Neither waits any more.
  await page.goto(`${BASE}/ui/parked`);
  await page.waitForSelector("[data-parked-total]:has-text('parked')");
  assert.equal(await page.$(row(skipRun)), null);
  assert.equal(await page.$(row(failRun)), null);
});

test("a parked element of a for_each step is listed and retried by its key", async () => {
  const id = await postEvent("test.park-element", { items: ["a"] });
  await waitForRunStatus(id, "parked");
  await page.goto(`${BASE}/ui/parked`);
  const row = `table.parked-table tr[data-run-id="${id}"][data-step="deliver[0]"]`;
  await page.waitForSelector(row);
  const [retried] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/runs/${id}/steps/deliver%5B0%5D/retry`) &&
        r.request().method() === "POST",
    ),
    page.click(`${row} button[data-action=retry-step]`),
  ]);
  assert.equal(retried.status(), 202);
  await waitFor("the retried element to park again", async () => {
    const r = await api("GET", `/v1/runs/${id}`);
    const step = r.json.steps.find((st) => st.name === "deliver[0]");
    return r.json.status === "parked" && step !== undefined && step.attempts === 2;
  });
});

test("log search finds the error line by level and time range, linked to its run", async () => {
  const id = await postEvent("test.fail", {});
  await waitForRunStatus(id, "failed");
  const line = await waitFor("the error log line", async () => {
    const r = await api("GET", `/v1/logs?run=${id}&level=error`);
    return r.json?.logs?.find((l) => /deliberate failure/.test(l.message));
  });
  // The ranges are fixed around the line's own time, so the wall clock (midnight) plays no part.
  const at = Date.parse(line.at);
  assert.ok(Number.isFinite(at), `log line time: ${line.at}`);

  await page.goto(`${BASE}/ui/logs`);
  await page.selectOption("form.filters select[name=level]", "error");
  const search = async (since, until) => {
    await page.fill("form.filters input[name=since]", since);
    await page.fill("form.filters input[name=until]", until);
    const [resp] = await Promise.all([
      page.waitForResponse(
        (r) => r.url().includes("/v1/logs?") && r.request().method() === "GET",
      ),
      page.click("form.filters button[type=submit]"),
    ]);
    assert.equal(resp.status(), 200, await resp.text());
    return resp;
  };
  const row = `table.logs-table tr[data-level="error"][data-run="${id}"]`;
  const around = await search(isoSeconds(at - 60_000), isoSeconds(at + 60_000));
  const sent = new URL(around.url()).searchParams;
  assert.equal(sent.get("level"), "error");
  assert.equal(sent.get("since"), isoSeconds(at - 60_000));
  await page.waitForSelector(row);
  const message = await page.textContent(`${row} .log-message`);
  assert.match(
    message,
    /deliberate failure <b>not bold<\/b>/,
    "markup in a message is shown as text",
  );
  assert.equal(await page.locator(`${row} .log-message b`).count(), 0);
  // Every shown line is error level.
  const levels = await page.$$eval(
    "table.logs-table tbody tr[data-level]",
    (rs) => rs.map((r) => r.getAttribute("data-level")),
  );
  assert.ok(
    levels.length >= 1 && levels.every((l) => l === "error"),
    `levels: ${levels}`,
  );

  // A range that ends before the line finds nothing for it.
  await search(isoSeconds(at - 600_000), isoSeconds(at - 1_000));
  await page.waitForSelector(row, { state: "detached" });
  await page.waitForSelector(
    "table.logs-table tr.empty, table.logs-table tr[data-level]",
  );

  // HH:MM (today, server time) goes to the API as typed, and the page shows exactly the lines
  // the API answered. Which lines those are depends on the server's clock, so this part
  // compares the page with the answer rather than with a time.
  const hm = await search("00:00", "23:59");
  const hmSent = new URL(hm.url()).searchParams;
  assert.equal(hmSent.get("since"), "00:00");
  assert.equal(hmSent.get("until"), "23:59");
  const answered = (await hm.json()).logs.map((l) => l.message);
  const shown = () =>
    page.$$eval("table.logs-table tbody tr[data-level] .log-message", (tds) =>
      tds.map((td) => td.textContent),
    );
  // The response is in; the table re-renders right after it.
  await waitFor(
    "the table to show the API's answer",
    async () => JSON.stringify(await shown()) === JSON.stringify(answered),
    UI_TIMEOUT,
  ).catch(() => {});
  assert.deepEqual(await shown(), answered);

  await search(isoSeconds(at - 60_000), isoSeconds(at + 60_000));
  await page.waitForSelector(row);
  await shot("logs");

  await page.click(`${row} a[href="/ui/runs/${id}"]`);
  await page.waitForURL(`**/ui/runs/${id}`);
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="boom"].state-failed',
  );
  assert.match(
    await page.textContent(".run-error"),
    /deliberate failure <b>not bold<\/b>/,
  );
  assert.equal(await page.locator(".run-error b").count(), 0);
});

test("a log line with a Python traceback shows it as preformatted text", async () => {
  const id = await postEvent("test.traceback", {});
  await waitForRunStatus(id, "succeeded", 60_000);
  const line = await waitFor("the traceback log line", async () => {
    const r = await api("GET", `/v1/logs?run=${id}&level=debug`);
    return r.json?.logs?.find((l) => typeof l.fields?.exception === "string");
  });
  const check = async (where) => {
    const pre = `${where} pre.log-exception`;
    // The row is in once its message is.
    await page.waitForSelector(
      `${where} td:has-text("could not parse the dose")`,
    );
    const fieldsText = await page
      .locator(
        `${where} tr:has(td:has-text("could not parse the dose")) td:last-child`,
      )
      .textContent();
    assert.equal(
      await page.locator(pre).count(),
      1,
      `the traceback as preformatted text, not: ${fieldsText}`,
    );
    const text = await page.textContent(pre);
    assert.match(text, /^Traceback \(most recent call last\):\n/);
    assert.match(
      text,
      /ValueError: invalid literal for int\(\) with base 10: '<b>12 mg<\/b>'/,
    );
    assert.equal(text, line.fields.exception.replace(/\n+$/, ""));
    assert.equal(await page.locator(`${where} b`).count(), 0);
    // The rest of the fields stay on one line, without the traceback.
    assert.doesNotMatch(
      await page.$eval(pre, (el) => el.parentElement.firstChild.textContent),
      /Traceback|\\n/,
    );
  };
  await page.goto(`${BASE}/ui/runs/${id}`);
  await check(".card table.grid");
  await page.goto(`${BASE}/ui/logs?run=${id}&level=debug`);
  await check("table.logs-table");
  await shot("logs-traceback");
});

test("runs list pages with the next cursor and filters by workflow and time range", async () => {
  // Page size 2 (?limit=2): at least four runs exist by now.
  await page.goto(`${BASE}/ui/runs?limit=2`);
  const ids = async () =>
    await page.$$eval("table.runs-table tbody tr[data-run-id]", (rs) =>
      rs.map((r) => Number(r.getAttribute("data-run-id"))),
    );
  await page.waitForFunction(
    () =>
      document.querySelectorAll("table.runs-table tbody tr[data-run-id]")
        .length === 2,
  );
  const first = await ids();
  assert.ok(first[0] > first[1], "newest first");
  assert.equal(await page.isDisabled("text=← Newer"), true);
  await page.click("text=Older →");
  await page.waitForFunction(
    (max) => {
      const r = document.querySelector(
        "table.runs-table tbody tr[data-run-id]",
      );
      return r && Number(r.getAttribute("data-run-id")) < max;
    },
    Math.min(...first),
  );
  const second = await ids();
  assert.ok(
    second.every((id) => id < Math.min(...first)),
    `page 2 ${second} after page 1 ${first}`,
  );
  assert.match(await page.textContent(".live-text"), /Paused/);
  await page.click("text=← Newer");
  await page.waitForFunction(
    (top) =>
      document
        .querySelector("table.runs-table tbody tr[data-run-id]")
        ?.getAttribute("data-run-id") === String(top),
    first[0],
  );

  // Workflow filter.
  await page.goto(`${BASE}/ui/runs`);
  await page.waitForSelector(
    "form.filters select[name=workflow] option[value=diamond]",
    { state: "attached" },
  );
  await page.selectOption("form.filters select[name=workflow]", "diamond");
  await page.waitForFunction(() => {
    const rows = [
      ...document.querySelectorAll("table.runs-table tbody tr[data-run-id]"),
    ];
    return (
      rows.length > 0 && rows.every((r) => r.textContent.includes("diamond"))
    );
  });
  assert.match(page.url(), /workflow=diamond/);

  // Custom time range, fixed around the diamond run's own start: a window that ends before it
  // holds none of this schema's runs, one that starts at it holds the run.
  const created = Date.parse(
    (await api("GET", `/v1/runs/${diamondRun}`)).json.created_at,
  );
  assert.ok(Number.isFinite(created), "the diamond run has a start time");
  await page.selectOption("form.filters select[name=range]", "custom");
  await page.fill("form.filters input[name=since]", "");
  await page.fill(
    "form.filters input[name=until]",
    isoSeconds(created - 1_000),
  );
  await page.click("form.filters button[type=submit]");
  await page.waitForSelector("table.runs-table tr.empty");
  await page.fill("form.filters input[name=until]", "");
  await page.fill("form.filters input[name=since]", isoSeconds(created));
  await page.click("form.filters button[type=submit]");
  await page.waitForSelector(
    `table.runs-table tr[data-run-id="${diamondRun}"]`,
  );
  // Input the API would refuse is caught in the form.
  await page.fill("form.filters input[name=since]", "25:99");
  await page.click("form.filters button[type=submit]");
  assert.match(await page.textContent("form.filters .form-error"), /HH:MM/);
});

test("workflows page shows each workflow's DAG, triggers, versions and recent counts", async () => {
  await page.goto(`${BASE}/ui/workflows`);
  const diamond = '.workflow-card[data-workflow="diamond"]';
  await page.waitForSelector(`${diamond} svg.dag`);
  assert.equal(await page.locator(`${diamond} svg.dag g.dag-node`).count(), 5);
  assert.equal(
    await page.locator(`${diamond} svg.dag path.dag-edge`).count(),
    5,
  );
  assert.match(await page.textContent(`${diamond} .triggers`), /demo\.diamond/);
  assert.ok((await page.locator(`${diamond} tr[data-version]`).count()) >= 1);
  assert.ok(await page.isVisible(`${diamond} .count[data-status="succeeded"]`));
  for (const wf of ["browser-fail", "browser-approval", "browser-deadline"])
    assert.ok(
      await page.isVisible(`.workflow-card[data-workflow="${wf}"] svg.dag`),
      wf,
    );
  await shot("workflows");

  // A recent-runs count links to the runs list, filtered (a deep link that works on first load).
  await page.click(
    '.workflow-card[data-workflow="browser-fail"] .count[data-status="failed"]',
  );
  await page.waitForURL(/\/ui\/runs\?workflow=browser-fail&status=failed/);
  await page.waitForSelector(
    'table.runs-table tbody tr[data-run-id][data-status="failed"]',
  );
  const workflows = await page.$$eval(
    "table.runs-table tbody tr[data-run-id] td:nth-child(2)",
    (tds) => tds.map((td) => td.textContent),
  );
  assert.ok(
    workflows.length >= 1 &&
      workflows.every((w) => w.startsWith("browser-fail")),
    `rows: ${workflows}`,
  );
  assert.equal(
    await page.inputValue("form.filters select[name=workflow]"),
    "browser-fail",
  );
});

test("a workflow is paused and resumed from the workflows page, one run from its own page", async () => {
  const card = '.workflow-card[data-workflow="browser-pause"]';
  const stepStatus = async (id, step) =>
    (await api("GET", `/v1/runs/${id}`)).json.steps.find((s) => s.name === step)?.status;

  await page.goto(`${BASE}/ui/workflows?name=browser-pause`);
  await page.fill(`${card} .pause-form input[name=reason]`, "EHR maintenance <b>tonight</b>");
  const [paused] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/workflows/browser-pause/pause")),
    page.click(`${card} button[data-action=pause-workflow]`),
  ]);
  assert.equal(paused.status(), 202);
  await page.waitForSelector(`${card} [data-testid=workflow-paused]`);
  assert.match(
    await page.textContent(`${card} [data-testid=workflow-paused]`),
    /EHR maintenance <b>tonight<\/b>/,
  );
  assert.ok(await page.isVisible(`${card} .card-head .badge[data-status="paused"]`));

  // An event still starts a run; its first step queues instead of running.
  const queued = await postEvent("test.pause", {});
  await waitFor("the queued run's first step to be paused", async () =>
    (await stepStatus(queued, "hold")) === "paused");
  await page.reload();
  await page.waitForSelector(`${card} [data-testid=queued-runs]`);
  assert.equal(await page.textContent(`${card} [data-testid=queued-runs]`), "1");
  await shot("workflow-paused");

  await page.goto(`${BASE}/ui/runs/${queued}`);
  await page.waitForSelector('svg.dag g.dag-node[data-step="hold"].state-paused');
  assert.match(
    await page.textContent("[data-testid=paused-notice]"),
    /Workflow browser-pause is paused/,
  );

  await page.goto(`${BASE}/ui/workflows?name=browser-pause`);
  const [resumed] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/workflows/browser-pause/resume")),
    page.click(`${card} button[data-action=resume-workflow]`),
  ]);
  assert.equal(resumed.status(), 202);
  await page.waitForSelector(`${card} .pause-form`);
  await waitFor("the released step to wait for its signal", async () =>
    (await stepStatus(queued, "hold")) === "waiting");

  // One run: paused from its page, the signalled step stays set aside; resumed, it finishes.
  await page.goto(`${BASE}/ui/runs/${queued}`);
  const [runPaused] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/v1/runs/${queued}/pause`)),
    page.click("button[data-action=pause]"),
  ]);
  assert.equal(runPaused.status(), 202);
  await page.waitForSelector("button[data-action=resume]");
  assert.match(await page.textContent("[data-testid=paused-notice]"), /This run is paused/);
  assert.equal((await api("POST", `/v1/runs/${queued}/signal/go`, {})).status, 202);
  await page.waitForSelector('svg.dag g.dag-node[data-step="hold"].state-paused');
  assert.equal(await runStatus(queued), "running");
  await shot("run-paused");
  const [runResumed] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/v1/runs/${queued}/resume`)),
    page.click("button[data-action=resume]"),
  ]);
  assert.equal(runResumed.status(), 202);
  await page.waitForSelector('.page-head h1 .badge[data-status="succeeded"]');
  assert.ok(
    (await page.locator('tr[data-type="paused"]').count()) >= 1,
    "history shows the pause",
  );
});

// Version 2 of browser-move, published the way a deployment publishes one: a `chartflow serve`
// started on the same database with the changed file (run.sh's workflows folder otherwise).
const MOVE_V2 = `name: browser-move
on:
  - event: test.move
steps:
  receive: { handler: noop }
  review:
    handler: wait_signal
    needs: [receive]
    input: { signal: decision, timeout_ms: 600000 }
  welcome: { handler: noop, needs: [receive] }
  notify: { handler: noop, needs: [review] }
`;

async function publishMoveV2() {
  for (const name of ["CHARTFLOW_BIN", "CHARTFLOW_DATABASE_URL", "CHARTFLOW_WORKFLOWS_DIR"])
    assert.ok(process.env[name], `${name} is not set: run the tests through tests/browser/run.sh`);
  const dir = mkdtempSync(path.join(tmpdir(), "chartflow-v2-"));
  const workflows = path.join(dir, "workflows");
  cpSync(process.env.CHARTFLOW_WORKFLOWS_DIR, workflows, { recursive: true });
  writeFileSync(path.join(workflows, "migrate.yaml"), MOVE_V2);
  const log = [];
  const child = spawn(
    process.env.CHARTFLOW_BIN,
    ["serve", "--database-url", process.env.CHARTFLOW_DATABASE_URL, "--listen", "127.0.0.1:0",
      "--workers", "0", "--workflows", workflows, "--data-dir", path.join(dir, "data")],
    { env: { ...process.env, CHARTFLOW_BILL_DIR: path.join(dir, "bills") }, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  try {
    await waitFor(`version 2 of browser-move to be published (${log.join("").slice(-400)})`, async () => {
      const w = (await api("GET", "/v1/workflows")).json.workflows.find((x) => x.name === "browser-move");
      return w?.versions.length === 2;
    }, 60_000);
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

test("runs waiting in version 1 are planned and moved to version 2 from the workflows page", async () => {
  const card = '.workflow-card[data-workflow="browser-move"]';
  const runs = [await postEvent("test.move", {}), await postEvent("test.move", {})];
  const stepStatus = async (id, step) =>
    (await api("GET", `/v1/runs/${id}`)).json.steps.find((s) => s.name === step)?.status;
  for (const id of runs)
    await waitFor(`run ${id} to wait at review`, async () => (await stepStatus(id, "review")) === "waiting");
  await publishMoveV2();

  await page.goto(`${BASE}/ui/workflows?name=browser-move`);
  await page.click(`${card} [data-testid=migrate-runs] summary`);
  await page.selectOption(`${card} select[name=from]`, "1");
  await page.selectOption(`${card} select[name=to]`, "2");
  await page.fill(`${card} input[name=map]`, "intake=receive");
  const [planned] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/workflows/browser-move/migrate")),
    page.click(`${card} button[data-action=plan-migration]`),
  ]);
  assert.equal(planned.status(), 200);
  const plan = await planned.json();
  assert.equal(plan.dry_run, true);
  await page.waitForSelector(`${card} [data-testid=migrate-summary]`);
  assert.match(await page.textContent(`${card} [data-testid=migrate-summary]`), /2 of 2 run\(s\) can move/);
  for (const id of runs) {
    const row = `${card} [data-testid=migrate-result] tr[data-run="${id}"]`;
    assert.equal(await page.getAttribute(row, "data-movable"), "true");
    assert.equal(await page.textContent(`${row} td:nth-child(4)`), "welcome");
    assert.equal(await page.getAttribute(`${row} a`, "href"), `/ui/runs/${id}`);
  }
  // Planning moved nothing.
  assert.equal((await api("GET", `/v1/runs/${runs[0]}`)).json.version, 1);
  await shot("migrate-plan");

  const [moved] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/workflows/browser-move/migrate")),
    page.click(`${card} button[data-action=migrate-runs]`),
  ]);
  assert.equal(moved.status(), 200);
  const done = await moved.json();
  assert.equal(done.moved, 2);
  // What moved is what the plan said.
  assert.deepEqual(done.runs, plan.runs);
  await page.waitForFunction(
    (sel) => /Moved 2 of 2/.test(document.querySelector(sel)?.textContent ?? ""),
    `${card} [data-testid=migrate-summary]`,
  );

  // The run page shows the new version; the run goes on along it.
  await page.goto(`${BASE}/ui/runs/${runs[0]}`);
  await page.waitForSelector('svg.dag g.dag-node[data-step="receive"]');
  await page.waitForFunction(() => /browser-move version 2/.test(document.body.textContent ?? ""));
  for (const id of runs) {
    await waitFor(`welcome of run ${id} to run`, async () => (await stepStatus(id, "welcome")) === "succeeded");
    assert.equal((await api("POST", `/v1/runs/${id}/signal/decision`, {})).status, 202);
    await waitForRunStatus(id, "succeeded");
    assert.equal(await stepStatus(id, "notify"), "succeeded");
    assert.equal(await stepStatus(id, "receive"), "succeeded");
    assert.equal(await stepStatus(id, "intake"), undefined);
  }
});

test("three saves of one chart within the debounce window start one run; the workflows page shows the waiting start", async () => {
  const card = '.workflow-card[data-workflow="browser-debounce"]';
  let lastEvent = null;
  for (let i = 1; i <= 3; i++) {
    const r = await api("POST", "/v1/events/test.debounce", { chart_id: "debounce-1", save: i });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json.runs, [], `save ${i} started a run at once: ${r.text}`);
    assert.deepEqual(r.json.debounced, ["browser-debounce"], r.text);
    lastEvent = r.json.event_id;
  }
  await page.goto(`${BASE}/ui/workflows?name=browser-debounce`);
  await page.waitForSelector(`${card} [data-testid=debounce-pending]`);
  assert.equal(await page.textContent(`${card} [data-testid=debounce-pending]`), "1");
  assert.match(await page.textContent(`${card} .debounce`), /per \/event\/chart_id, window 3 s/);
  await shot("workflow-debounce");

  const runs = async () =>
    (await api("GET", "/v1/runs?workflow=browser-debounce")).json.runs;
  const [run] = await waitFor("the debounced run", async () => {
    const r = await runs();
    return r.length ? r : null;
  });
  await waitForRunStatus(run.id, "succeeded");
  const detail = (await api("GET", `/v1/runs/${run.id}`)).json;
  assert.equal(detail.event_id, lastEvent, "the run carries the last save");
  const scheduled = detail.history.find((e) => e.type === "scheduled");
  assert.equal(scheduled.detail.debounced_events, 3, JSON.stringify(scheduled));
  assert.equal((await runs()).length, 1);
  await page.reload();
  await page.waitForSelector(`${card} [data-testid=debounce-pending]`);
  assert.equal(await page.textContent(`${card} [data-testid=debounce-pending]`), "0");
});

test("a child workflow's run is listed under its parent, links back to it, and its end lets the parent finish", async () => {
  const parent = await postEvent("test.parent", {});
  let child = 0;
  await waitFor(`run ${parent} to start its child`, async () => {
    const r = await api("GET", `/v1/runs/${parent}`);
    child = r.json?.children?.[0]?.id ?? 0;
    return child > 0;
  });
  await page.goto(`${BASE}/ui/runs/${parent}`);
  const item = `ul.child-runs li[data-child="${child}"]`;
  await page.waitForSelector(item);
  assert.match(await page.textContent(item), /browser-child/);
  await shot("run-children");
  await page.click(`${item} a`);
  await page.waitForSelector(".parent-run a");
  assert.equal(await page.getAttribute(".parent-run a", "href"), `/ui/runs/${parent}`);
  assert.match(await page.textContent(".parent-run"), /step ask/);
  const signalled = await api("POST", `/v1/runs/${child}/signal/approve`, { by: "child test" });
  assert.equal(signalled.status, 202, signalled.text);
  await waitForRunStatus(parent, "succeeded");
  await page.goto(`${BASE}/ui/runs/${parent}`);
  await page.waitForSelector(`${item} .badge[data-status="succeeded"]`);
});

test("the reprocess page shows a dry run's blast radius, then starts the runs and follows the job", async () => {
  const runs = [await postEvent("test.reprocess", {}), await postEvent("test.reprocess", {})];
  for (const id of runs) await waitForRunStatus(id, "succeeded");
  await page.goto(`${BASE}/ui/reprocess`);
  // The tests before may have signed out: sign in with the operator's token, back to this page.
  await page.waitForSelector("input[name=workflow], form[data-form=token]");
  if (await page.$("form[data-form=token]")) {
    await page.fill("form[data-form=token] input[name=token]", TOKEN);
    await page.click("form[data-form=token] button[type=submit]");
    await page.waitForSelector(".user .user-name");
    await page.goto(`${BASE}/ui/reprocess`);
  }
  await page.fill("input[name=workflow]", "browser-reprocess");
  await page.fill("input[name=status]", "succeeded");
  const [dry] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/reprocess") && r.request().method() === "POST"),
    page.click("button[data-action=reprocess-dry-run]"),
  ]);
  assert.equal(dry.status(), 200);
  assert.equal((await dry.json()).dry_run, true);
  await page.waitForSelector("[data-testid=reprocess-summary]");
  assert.match(await page.textContent("[data-testid=reprocess-summary]"), /^2 run\(s\) of 0 chart\(s\)/);
  for (const id of runs)
    assert.equal(await page.getAttribute(`[data-testid=reprocess-result] a[href="/ui/runs/${id}"]`, "href"), `/ui/runs/${id}`);
  // The dry run started nothing.
  const listed = async () => (await api("GET", "/v1/runs?workflow=browser-reprocess&limit=50")).json.runs.length;
  assert.equal(await listed(), 2);
  await shot("reprocess-dry-run");

  const [started] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/reprocess") && r.request().method() === "POST"),
    page.click("button[data-action=start-reprocess]"),
  ]);
  assert.equal(started.status(), 202);
  const job = await started.json();
  assert.equal(job.total, 2);
  await page.waitForFunction(
    () => document.querySelector("[data-testid=reprocess-status]")?.textContent === "done",
    null,
    { timeout: 30_000 },
  );
  assert.match(await page.textContent("[data-testid=reprocess-progress]"), /2 of 2 run\(s\) started/);
  await waitFor("the reprocessed runs to start", async () => (await listed()) === 4);
  // Cancelling a finished job is refused: the job's page says so rather than pretending.
  assert.equal((await api("POST", `/v1/reprocess/${job.id}/cancel`, {})).status, 409);
});

test("overview shows throughput, failures, latency and the queue", async () => {
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => {
    const v = document.querySelector('.tile[data-tile="started"] .tile-value');
    return v && v.textContent !== "—";
  });
  assert.ok(
    Number(
      (
        await page.textContent('.tile[data-tile="started"] .tile-value')
      ).replace(/\D/g, ""),
    ) >= 4,
  );
  assert.ok(
    Number(
      (await page.textContent('.tile[data-tile="failed"] .tile-value')).replace(
        /\D/g,
        "",
      ),
    ) >= 1,
  );
  assert.ok(
    (await page.locator(".chart canvas").count()) >= 2,
    "uPlot charts are drawn",
  );
  await page.waitForSelector(".card table.grid a[href^='/ui/runs/']");
  // A second queue sample (5 s after the first) draws the queue chart too.
  await page.waitForFunction(
    () =>
      Number(
        document
          .querySelector('figure.chart[data-chart="queue"]')
          ?.getAttribute("data-samples"),
      ) >= 2,
    null,
    { timeout: 15_000 },
  );
  await page.waitForSelector('figure.chart[data-chart="queue"] canvas');
  assert.ok((await page.locator(".chart canvas").count()) >= 3);
  await shot("overview");
});

test("chart times are 24-hour: the overview's legend shows 14:05:00, not 2:05pm", async () => {
  await page.goto(`${BASE}/`);
  const throughput = page.locator("figure.chart", {
    hasText: "Runs per minute",
  });
  const over = throughput.locator(".u-over");
  await over.waitFor();
  const box = await over.boundingBox();
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2);
  const legendTime = throughput.locator(
    ".u-legend .u-series:first-child .u-value",
  );
  const shown = await waitFor(
    "the legend to show the hovered time",
    async () => {
      const v = ((await legendTime.textContent()) ?? "").trim();
      return v && v !== "--" && v !== "—" ? v : null;
    },
  );
  assert.match(shown, TIME_24H, `legend time ${shown}`);
  assert.doesNotMatch(shown, AM_PM);
  assert.doesNotMatch(await page.textContent("main"), AM_PM);
});

test("the queue chart shows an empty state until it has two samples, then a window of minutes", async () => {
  await page.goto(`${BASE}/`);
  const queue = 'figure.chart[data-chart="queue"]';
  const figure = page.locator("figure.chart", { hasText: "Queue depth" });
  // The first metrics sample is in once the ready tile has a value.
  await page.waitForFunction(() => {
    const v = document.querySelector('.tile[data-tile="ready"] .tile-value');
    return v && v.textContent !== "—";
  });
  // The tile and the queue chart take the same sample; the next comes 5 s later. With one
  // sample uPlot would stretch the time axis over years: an empty state instead.
  assert.equal(
    await figure.locator("canvas:visible").count(),
    0,
    "no axis is drawn for a single sample",
  );
  assert.ok(
    await figure.locator(".chart-empty").isVisible(),
    "an empty state, not an axis",
  );
  assert.equal(await page.getAttribute(queue, "data-samples"), "1");
  await page.waitForFunction(
    (sel) =>
      Number(document.querySelector(sel)?.getAttribute("data-samples")) >= 2,
    queue,
    { timeout: 15_000 },
  );
  await page.waitForSelector(`${queue} canvas`);
  assert.equal(await page.isVisible(`${queue} .chart-empty`), false);
  const [min, max] = await page.$eval(queue, (f) => [
    Number(f.dataset.xMin),
    Number(f.dataset.xMax),
  ]);
  assert.ok(
    max - min >= 60 && max - min <= 3600,
    `the axis spans ${max - min} s`,
  );
  assert.ok(Math.abs(max - Date.now() / 1000) < 120, "the window ends now");
});

// ---- charts and reviews, against the real chart API and the chart-update workflow --------------
// Real Synthea bundles go in through PUT /v1/charts/{id}; the workflow makes the reviews,
// questions and bills the pages show, and each page is compared with what the API answers. A
// server without the chart API fails these tests: run.sh installs the chart workflow.

const CHARTS = path.join(REPO, "tests/data/charts");
// A released inpatient stay: discharge issues a bill, and the chart names its doctor.
const RELEASED_CHART =
  "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";

let chartId;
let chartRun;
let namesChart = null;
let namesReview = null;

// The released chart with the patient, and optionally the doctor, renamed; `doctor: null`
// removes every reference that names a doctor, so the review goes to the fallback queue.
function chartBundle({ family, given, birthDate, doctor } = {}) {
  const bundle = JSON.parse(
    readFileSync(path.join(CHARTS, RELEASED_CHART), "utf8"),
  );
  for (const e of bundle.entry ?? []) {
    const r = e.resource;
    if (r?.resourceType === "Patient" && family !== undefined) {
      r.name = [{ use: "official", family, given: [given] }];
      if (birthDate) r.birthDate = birthDate;
    }
    if (r?.resourceType === "Practitioner" && doctor)
      r.name = [{ family: doctor.family, given: [doctor.given] }];
    if (doctor === null) {
      delete r?.generalPractitioner;
      if (r?.resourceType === "Encounter") delete r.participant;
      if (r?.resourceType === "ExplanationOfBenefit") delete r.careTeam;
      if (r?.resourceType === "Claim") delete r.careTeam;
    }
  }
  return bundle;
}

async function uploadChart(id, bundle, token = TOKEN) {
  const put = await api("PUT", `/v1/charts/${id}`, bundle, {
    Authorization: `Bearer ${token}`,
  });
  assert.equal(
    put.status,
    202,
    `PUT /v1/charts/${id} (the chart API must be installed): ${put.status} ${put.text}`,
  );
  const run = put.json.runs?.[0];
  assert.ok(run, `the upload started a run: ${put.text}`);
  return run;
}

async function pendingReview(id) {
  return waitFor(
    `a pending review of chart ${id}`,
    async () =>
      (await api("GET", "/v1/reviews?status=pending")).json?.reviews?.find(
        (x) => x.chart_id === id,
      ),
    60_000,
    300,
  );
}

async function chartJson(id) {
  const r = await api("GET", `/v1/charts/${encodeURIComponent(id)}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

function section(title) {
  return page.locator(".card", {
    has: page.locator("h2", { hasText: title }),
  });
}

// A card's table rows, without the row that says the table is empty.
function cardRows(title) {
  return section(title).locator("tbody tr:not(.empty)");
}

// The chart page against GET /v1/charts/{id}: patient, questions, revisions, review, bill.
async function assertChartPageShows(chart) {
  assert.ok(
    chart.patient && chart.review && chart.bill,
    `a released chart with a review: ${JSON.stringify(chart)}`,
  );
  assert.equal(
    await page.textContent(".page-head .chart-patient-name"),
    chart.patient.name,
  );
  await page.waitForSelector(
    `text=Open questions (${chart.open_questions.length})`,
  );
  const questions = await cardRows("Open questions").evaluateAll((trs) =>
    trs.map((tr) => tr.children[3]?.textContent),
  );
  assert.deepEqual(
    questions,
    chart.open_questions.map((q) => q.question),
  );
  const uploaders = await cardRows("Revisions").evaluateAll((trs) =>
    trs.map((tr) => tr.querySelector("td.uploader")?.textContent),
  );
  assert.deepEqual(
    uploaders,
    chart.revisions.map((r) => r.uploaded_by_name ?? r.uploaded_by),
  );
  assert.ok(
    (await page.textContent(".ledger-total")).includes(
      money(chart.ledger_total, chart.ledger_currency),
    ),
    `ledger ${chart.ledger_total} ${chart.ledger_currency}`,
  );
  assert.equal(
    await page.textContent(".bill-total"),
    money(chart.bill.total, chart.bill.currency),
  );
  assert.equal(
    await section("Bill").locator(".mono").first().textContent(),
    String(chart.bill.invoice_id),
  );
  const review = await section("Latest review").textContent();
  assert.ok(review.includes(chart.review.status), review);
  assert.ok(review.includes(chart.review.comment ?? "—"), review);
  assert.ok(review.includes(chart.review.assignee_name), review);
  assert.equal(await page.locator("main script, main img, main b").count(), 0);
  assert.equal(await page.evaluate(() => window.__cfXss), undefined);
}

test("a chart whose patient and doctor names hold markup: worklist and chart page show the API's values as text", async () => {
  chartId = `browser-xss-${Date.now()}`;
  chartRun = await uploadChart(
    chartId,
    chartBundle({
      family: XSS_FAMILY,
      given: XSS_GIVEN,
      doctor: { family: "Hilpert", given: "<b>Sharyl</b>" },
    }),
  );
  const review = await pendingReview(chartId);
  const patient = review.summary?.patient;
  // The markup reached the API, so the page below has something to escape.
  assert.ok(
    typeof patient === "string" && patient.includes("<script>"),
    `summary: ${JSON.stringify(review.summary)}`,
  );
  assert.match(review.assignee_name ?? "", /<b>Sharyl<\/b>/);
  assert.equal(review.run_id, chartRun);

  await page.goto(`${BASE}/ui/reviews`);
  const card = `.review[data-chart-id="${chartId}"]`;
  await page.waitForSelector(card);
  // Exactly what the API holds, markup and all, as text.
  assert.equal(await page.textContent(`${card} .review-patient`), patient);
  assert.equal(
    await page.textContent(`${card} .assignee-name`),
    review.assignee_name,
  );
  assert.equal(
    Number(await page.getAttribute(card, "data-review-id")),
    review.id,
  );
  assert.equal(await page.getAttribute(card, "data-status"), review.status);
  assert.ok(
    (await page.textContent(`${card} .review-meta`)).includes(
      review.summary.encounter,
    ),
  );
  assert.ok(await page.isVisible(`${card} a[href="/ui/runs/${chartRun}"]`));
  // Due in 48 h by the workflow's deadline.
  assert.match(await page.textContent(`${card} .due`), /^due in /);
  assert.equal(
    await page.locator(`${card} script, ${card} img, ${card} b`).count(),
    0,
  );
  assert.equal(
    await page.evaluate(() => window.__cfXss),
    undefined,
    "no markup from the chart ran",
  );
  assert.ok(
    !page.url().includes("Tester") && !page.url().includes("script"),
    "no patient data in the URL",
  );
  await shot("reviews");

  await page.goto(`${BASE}/ui/charts/${encodeURIComponent(chartId)}`);
  await page.waitForSelector(`.card tr[data-run-id="${chartRun}"]`);
  const chart = await chartJson(chartId);
  assert.equal(chart.patient.name, patient);
  await assertChartPageShows(chart);
  await shot("chart");

  // The chart's run in the runs list, found by chart id.
  await page.goto(`${BASE}/ui/runs?subject=${encodeURIComponent(chartId)}`);
  await page.waitForSelector(`table.runs-table tr[data-run-id="${chartRun}"]`);
  assert.equal(
    await page.locator("table.runs-table tbody tr[data-run-id]").count(),
    1,
  );
});

test("approving a review in the worklist lets the chart's run complete; the chart page shows the decision and the bill", async () => {
  assert.ok(chartRun, "needs the chart run of the previous test");
  await page.goto(`${BASE}/ui/reviews`);
  const card = `.review[data-chart-id="${chartId}"]`;
  await page.waitForSelector(`${card} button[data-action=approve]`);
  const comment = `Looks right. ${XSS_GIVEN}`;
  await page.fill(`${card} textarea[name=comment]`, comment);
  await page.fill(`${card} input[name=reason]`, "browser test as admin");
  const [resp] = await Promise.all([
    page.waitForResponse(
      (r) =>
        /\/v1\/reviews\/\d+\/decision$/.test(r.url()) &&
        r.request().method() === "POST",
    ),
    page.click(`${card} button[data-action=approve]`),
  ]);
  assert.ok(
    resp.status() >= 200 && resp.status() < 300,
    `decision: ${resp.status()}`,
  );
  assert.deepEqual(JSON.parse(resp.request().postData()), {
    decision: "approve",
    comment,
    reason: "browser test as admin",
  });
  // The pending worklist drops it.
  await page.waitForFunction((sel) => !document.querySelector(sel), card);

  await waitForRunStatus(chartRun, "succeeded", 90_000);
  await page.goto(`${BASE}/ui/runs/${chartRun}`);
  await page.waitForSelector('.page-head h1 .badge[data-status="succeeded"]');
  const failedNodes = await page
    .locator("svg.dag g.dag-node.state-failed")
    .count();
  assert.equal(failedNodes, 0);
  await shot("chart-run");

  const chart = await chartJson(chartId);
  assert.equal(chart.review.status, "approved");
  assert.equal(chart.review.comment, comment);
  assert.ok(chart.bill, `discharge issued a bill: ${JSON.stringify(chart)}`);
  await page.goto(`${BASE}/ui/charts/${encodeURIComponent(chartId)}`);
  await page.waitForSelector(".bill-total");
  await assertChartPageShows(chart);
  await shot("chart-decided");

  // No insurer endpoint is configured here, so the insurance step logs a warning: the log
  // search finds it by level, workflow and a range fixed around the line's own time.
  const warning = (
    await api("GET", `/v1/logs?run=${chartRun}&level=warning`)
  ).json?.logs?.find((l) => l.level === "warning");
  assert.ok(
    warning,
    "the chart run logged no warning (insurer_notification_skipped without an insurer endpoint)",
  );
  const at = Date.parse(warning.at);
  await page.goto(`${BASE}/ui/logs`);
  await page.selectOption("form.filters select[name=level]", "warning");
  await page.fill("form.filters input[name=since]", isoSeconds(at - 60_000));
  await page.fill("form.filters input[name=until]", isoSeconds(at + 60_000));
  await page.selectOption("form.filters select[name=workflow]", "chart-update");
  await page.click("form.filters button[type=submit]");
  const row = `table.logs-table tr[data-level="warning"][data-run="${chartRun}"]`;
  await page.waitForSelector(row);
  assert.ok(
    (await page.textContent(`${row} .log-message`)).includes(warning.message),
  );
  const levels = await page.$$eval(
    "table.logs-table tbody tr[data-level]",
    (rs) => rs.map((r) => r.getAttribute("data-level")),
  );
  assert.ok(
    levels.every((l) => l === "warning" || l === "error"),
    `levels: ${levels}`,
  );
  await shot("logs-warning");
});

test("a chart names its patient, doctor and currency; its waiting review step shows waiting until a time", async () => {
  const id = `browser-names-${Date.now()}`;
  // Uploaded by the uploader token run.sh made ("browser-uploader").
  const run = await uploadChart(
    id,
    chartBundle({
      family: "Lovelace-Test",
      given: "Ada",
      birthDate: "1815-12-10",
    }),
    UPLOADER_TOKEN,
  );
  namesChart = id;
  const review = await pendingReview(id);
  namesReview = review;
  assert.ok(
    typeof review.assignee_name === "string" && review.assignee_name,
    `the chart names its doctor: ${JSON.stringify(review)}`,
  );
  // Every step but the review is done: the run waits for the doctor only.
  await waitFor(
    "the chart run to wait for its review only",
    async () => {
      const r = await api("GET", `/v1/runs/${run}`);
      return r.json.steps.every((st) =>
        st.name === "review"
          ? st.status === "waiting"
          : ["succeeded", "skipped", "failed", "cancelled"].includes(st.status),
      );
    },
    60_000,
    300,
  );
  const chart = await chartJson(id);
  assert.deepEqual(chart.patient, {
    name: "Ada Lovelace-Test",
    birth_date: "1815-12-10",
  });
  assert.ok(chart.ledger_entries > 0, JSON.stringify(chart));
  assert.match(chart.ledger_currency, /^[A-Z]{3}$/);

  await page.goto(`${BASE}/ui/charts/${encodeURIComponent(id)}`);
  await page.waitForSelector(`.card tr[data-run-id="${run}"]`);
  const head = await page.textContent(".page-head");
  assert.ok(
    head.includes("Ada Lovelace-Test") && head.includes("1815-12-10"),
    `the patient beside the chart id: ${head}`,
  );
  assert.match(
    await page.textContent(".page-head .chart-patient-birth"),
    /1815-12-10/,
  );
  await assertChartPageShows(chart);
  await shot("chart-names");

  await page.goto(`${BASE}/ui/reviews`);
  const card = `.review[data-chart-id="${id}"]`;
  await page.waitForSelector(card);
  assert.equal(
    await page.textContent(`${card} .assignee-name`),
    review.assignee_name,
  );

  await page.goto(`${BASE}/ui/runs/${run}`);
  await page.waitForSelector(
    'svg.dag g.dag-node[data-step="review"].state-waiting',
  );
  assert.equal(await headerStatus(), "waiting");
  const detail = await page.textContent(
    'tr[data-type="waiting"] td:last-child',
  );
  assert.match(detail, /until \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/, detail);
  assert.doesNotMatch(detail, /\d{12}/, detail);
  assert.doesNotMatch(await page.textContent("main"), AM_PM);
});

test("a chart's revisions name the credential that uploaded them, not token:N", async () => {
  assert.ok(namesChart, "needs the chart of the previous test");
  const chart = await chartJson(namesChart);
  const upload = chart.revisions.find((r) => r.source === "upload");
  assert.match(upload?.uploaded_by ?? "", /^token:\d+$/);
  assert.equal(upload.uploaded_by_name, "browser-uploader");
  await page.goto(`${BASE}/ui/charts/${encodeURIComponent(namesChart)}`);
  const cells = cardRows("Revisions").locator("td.uploader");
  await cells.first().waitFor();
  // The server names the credential (GET /v1/charts answers uploaded_by_name), so the table
  // has it at once; the id stays in the tooltip.
  const uploaders = await cells.allTextContents();
  assert.ok(uploaders.includes("browser-uploader"), `uploaders: ${uploaders}`);
  assert.ok(
    !uploaders.some((u) => u.startsWith("token:")),
    `uploaders: ${uploaders}`,
  );
  assert.equal(
    await page.getAttribute(
      "td.uploader span.uploader-name:text-is('browser-uploader')",
      "title",
    ),
    upload.uploaded_by,
  );
});

test("reviews worklist: soonest due first, coloured by urgency at the browser's time, the assignee by name or id", async () => {
  assert.ok(namesReview, "needs the pending review of the previous tests");
  // A second pending review due a second or more later than the first (due times are stored
  // to the second), assigned to the fallback queue: the chart names no doctor.
  await waitFor(
    "the clock to pass the first review's second",
    async () => Date.now() >= Date.parse(namesReview.created_at) + 1_000,
    5_000,
    50,
  );
  const queueChart = `browser-queue-${Date.now()}`;
  await uploadChart(
    queueChart,
    chartBundle({ family: "Queue-Test", given: "Bo", doctor: null }),
  );
  const queued = await pendingReview(queueChart);
  assert.equal(queued.assignee, "queue:unassigned-reviews");
  assert.equal(queued.assignee_name, null);
  const all = (await api("GET", "/v1/reviews?limit=200")).json.reviews;
  const due = Date.parse(namesReview.due_at);
  assert.ok(Date.parse(queued.due_at) > due, "the second review is due later");

  // Urgency is relative to the browser's clock: a page of its own with a fixed clock and time
  // zone, over the real API (the session cookie is copied), puts the real due times in the
  // past, later today, or on a later day. Nothing here depends on the wall clock.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
  try {
    const ctx = await browser.newContext({
      timezoneId: "UTC",
      viewport: { width: 1440, height: 900 },
    });
    await ctx.addCookies(await context.cookies(BASE));
    const p = await ctx.newPage();
    p.setDefaultTimeout(UI_TIMEOUT);
    p.on("pageerror", (e) => pageErrors.push(String(e)));
    const dayStart = Date.UTC(
      new Date(due).getUTCFullYear(),
      new Date(due).getUTCMonth(),
      new Date(due).getUTCDate(),
    );
    const show = async (clock, status) => {
      await p.clock.setFixedTime(clock);
      await p.goto(
        `${BASE}/ui/reviews${status === undefined ? "" : `?status=${status}`}`,
      );
      await p.waitForSelector(`.review[data-review-id="${queued.id}"]`);
      return p.$$eval(".worklist .review", (els) =>
        els.map((e) => {
          const cs = getComputedStyle(e);
          return {
            id: Number(e.dataset.reviewId),
            urgency: e.dataset.urgency,
            edge: cs.borderLeftColor,
            bg: cs.backgroundColor,
            assignee: e.querySelector(".assignee-name")?.textContent,
          };
        }),
      );
    };
    const red = "rgb(220, 38, 38)";
    const orange = "rgb(234, 88, 12)";
    const white = "rgb(255, 255, 255)";
    const byId = (cards, id) => cards.find((c) => c.id === id);

    // All reviews, half a second after the first one fell due: soonest due first (the API
    // answers newest first), decided reviews have no urgency.
    const cards = await show(due + 500, "");
    const expected = [...all]
      .sort(
        (a, b) => Date.parse(a.due_at) - Date.parse(b.due_at) || b.id - a.id,
      )
      .map((r) => r.id);
    assert.notDeepEqual(
      expected,
      all.map((r) => r.id),
      "the API's order differs from the worklist's",
    );
    assert.deepEqual(
      cards.map((c) => c.id),
      expected,
    );
    const overdue = byId(cards, namesReview.id);
    assert.equal(overdue.urgency, "overdue");
    assert.equal(overdue.edge, red, "overdue is red");
    for (const r of all.filter((x) => x.status === "approved")) {
      const c = byId(cards, r.id);
      assert.equal(c.urgency, "none", `decided review ${r.id}`);
      assert.ok(![red, orange].includes(c.edge), `review ${r.id}: ${c.edge}`);
      assert.equal(c.bg, white, `review ${r.id} is neutral`);
    }
    assert.ok(
      all.some((x) => x.status === "approved"),
      "needs the approved review of the earlier test",
    );
    // The practitioner's name when the API has it (as text), else the assignee id.
    assert.equal(overdue.assignee, namesReview.assignee_name);
    assert.equal(byId(cards, queued.id).assignee, "queue:unassigned-reviews");
    await p.screenshot({
      path: path.join(SHOTS, "reviews-urgency.png"),
      fullPage: true,
    });

    // Earlier the same (UTC) day: due today, orange.
    const today = byId(
      await show(dayStart + Math.floor((due - dayStart) / 2)),
      namesReview.id,
    );
    assert.equal(today.urgency, "today");
    assert.equal(today.edge, orange, "due today is orange");
    // The day before: due later, neutral.
    const later = byId(await show(dayStart - 3_600_000), namesReview.id);
    assert.equal(later.urgency, "later");
    assert.ok(![red, orange].includes(later.edge), later.edge);
    assert.equal(later.bg, white);
  } finally {
    await browser.close();
  }
});

test("chart page: the bill and the ledger each show their own currency", async () => {
  assert.ok(chartId, "needs the billed chart of the earlier tests");
  const real = await chartJson(chartId);
  assert.ok(real.bill, "the chart has a bill");
  // The one stub left, and only of two fields: the server prices everything from one price
  // list in one currency, so it cannot answer a bill in another currency than its ledger. The
  // rest of the answer is the real server's.
  await page.route(`**/v1/charts/${chartId}`, async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    json.bill.currency = "EUR";
    json.ledger_currency = "USD";
    await route.fulfill({ response, json });
  });
  try {
    await page.goto(`${BASE}/ui/charts/${encodeURIComponent(chartId)}`);
    await page.waitForSelector(".bill-total");
    assert.equal(
      await page.textContent(".bill-total"),
      money(real.bill.total, "EUR"),
    );
    assert.ok(
      (await page.textContent(".ledger-total")).includes(
        money(real.ledger_total, "USD"),
      ),
    );
    await shot("chart-currencies");
  } finally {
    await page.unroute(`**/v1/charts/${chartId}`);
  }
});

test("retention page: an admin holds a subject and releases it with a reason; partitions and the expiry preview show", async () => {
  const subject = `browser-hold-${Date.now()}`;
  const holdRow = `table.holds-table tr[data-subject="${subject}"]`;
  const heldPartition =
    'table.retention-table tr[data-partition="workflow_run_archive_held"]';
  await page.goto(`${BASE}/ui/retention`);
  // The tests before may have signed out: sign in with the admin's token, back to this page.
  await page.waitForSelector("form.hold-form, form[data-form=token]");
  if (await page.$("form[data-form=token]")) {
    await page.fill("form[data-form=token] input[name=token]", TOKEN);
    await page.click("form[data-form=token] button[type=submit]");
    await page.waitForSelector(".user .user-name");
    await page.goto(`${BASE}/ui/retention`);
  }
  await page.waitForSelector("nav a[data-nav=retention].active");
  await page.waitForSelector(heldPartition);
  assert.match(await page.textContent(heldPartition), /held/);
  const before = await api("GET", "/v1/retention");
  assert.equal(before.status, 200, before.text);
  for (const [key, value] of Object.entries(before.json.settings))
    assert.equal(await page.textContent(`[data-setting=${key}]`), value);

  // A hold through the form: its row appears, the reason shown as text.
  await page.fill("form.hold-form input[name=subject]", subject);
  await page.fill(
    "form.hold-form input[name=reason]",
    "litigation <b>pending</b>",
  );
  const [held] = await Promise.all([
    page.waitForResponse(
      (r) => r.url().endsWith("/v1/holds") && r.request().method() === "POST",
    ),
    page.click("form.hold-form button[data-action=hold]"),
  ]);
  assert.equal(held.status(), 201);
  assert.deepEqual(held.request().postDataJSON(), {
    subject,
    reason: "litigation <b>pending</b>",
  });
  await page.waitForSelector(holdRow);
  const rowText = await page.textContent(holdRow);
  assert.match(rowText, /litigation <b>pending<\/b>/);
  assert.ok(rowText.includes((await held.json()).held_by), rowText);
  assert.equal(await page.inputValue("form.hold-form input[name=subject]"), "");

  // Holding it again is refused; the page says so in its error box.
  await page.fill("form.hold-form input[name=subject]", subject);
  await page.fill("form.hold-form input[name=reason]", "again");
  const [again] = await Promise.all([
    page.waitForResponse(
      (r) => r.url().endsWith("/v1/holds") && r.request().method() === "POST",
    ),
    page.click("form.hold-form button[data-action=hold]"),
  ]);
  assert.equal(again.status(), 409);
  await page.waitForSelector(".notice.error");
  await shot("retention");

  // A release needs a reason; with one, the row goes.
  await page.click(`${holdRow} button[data-action=release-hold]`);
  await page.waitForSelector(`${holdRow} .form-error:has-text("reason")`);
  await page.fill(`${holdRow} input[name=reason]`, "case closed");
  const [released] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith(`/v1/holds/${encodeURIComponent(subject)}`) &&
        r.request().method() === "DELETE",
    ),
    page.click(`${holdRow} button[data-action=release-hold]`),
  ]);
  assert.equal(released.status(), 200);
  assert.deepEqual(released.request().postDataJSON(), {
    reason: "case closed",
  });
  assert.deepEqual(await released.json(), { subject, released: true });
  await page.waitForSelector(holdRow, { state: "detached" });
  assert.equal(await page.$(".notice.error"), null);

  // The preview is a dry run: it lists what would go and drops nothing.
  const [preview] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().endsWith("/v1/retention/expire") &&
        r.request().method() === "POST",
    ),
    page.click("button[data-action=preview-expiry]"),
  ]);
  assert.equal(preview.status(), 200);
  assert.deepEqual(preview.request().postDataJSON(), { dry_run: true });
  const dry = await preview.json();
  assert.equal(dry.dry_run, true);
  await page.waitForSelector(".expiry-preview");
  assert.equal(
    await page.getAttribute(".expiry-preview", "data-dropped"),
    String(dry.dropped.length),
  );
  const after = await api("GET", "/v1/retention");
  assert.deepEqual(
    after.json.partitions.map((p) => p.partition).sort(),
    before.json.partitions.map((p) => p.partition).sort(),
  );
  assert.ok(!after.json.holds.some((x) => x.subject === subject));
});

test("audit page lists what happened, for admins", async () => {
  await page.click("nav a[data-nav=audit]");
  await page.waitForURL("**/ui/audit");
  await page.waitForSelector("table.audit-table tbody tr");
  await page.fill("form.filters input[name=action]", "auth.signin");
  const [resp] = await Promise.all([
    page.waitForResponse(
      (r) =>
        r.url().includes("/v1/audit?") &&
        r.url().includes("action=auth.signin"),
    ),
    page.click("form.filters button[type=submit]"),
  ]);
  assert.equal(resp.status(), 200);
  const answered = (await resp.json()).events.map((e) => e.action);
  assert.ok(
    answered.length >= 1 && answered.every((a) => a === "auth.signin"),
    `the API's answer: ${answered}`,
  );
  // The unfiltered list holds sign-ins too: wait for the table to show the filtered answer.
  const shown = () =>
    page.$$eval("table.audit-table tbody tr td code", (els) =>
      els.map((e) => e.textContent),
    );
  await waitFor(
    "the table to show the filtered answer",
    async () => JSON.stringify(await shown()) === JSON.stringify(answered),
    UI_TIMEOUT,
  ).catch(() => {});
  assert.deepEqual(await shown(), answered);
  await shot("audit");
});

test("sign-out ends the session; a user signs in with a password", async () => {
  await page.click(".user button.signout");
  await page.waitForURL(/\/ui\/signin/);
  const stale = await page.evaluate(
    async () => (await fetch("/v1/runs")).status,
  );
  assert.equal(stale, 401, "the old session must be gone");

  await page.fill("form[data-form=password] input[name=username]", USER);
  await page.fill(
    "form[data-form=password] input[name=password]",
    "wrong password!!",
  );
  await page.click("form[data-form=password] button[type=submit]");
  await page.waitForSelector(".signin-message .notice.error");
  await page.fill("form[data-form=password] input[name=password]", PASSWORD);
  await page.click("form[data-form=password] button[type=submit]");
  await page.waitForSelector(`.user .user-name:has-text('${USER}')`);
  await page.goto(`${BASE}/ui/runs`);
  await page.waitForSelector("table.runs-table tbody tr");
  assert.equal(
    await page.isHidden("nav a[data-nav=audit]"),
    true,
    "operators have no audit",
  );
  await page.click(".user button.signout");
  await page.waitForURL(/\/ui\/signin/);
});

test("a role without access sees a refusal, not data", async () => {
  await page.fill("form[data-form=token] input[name=token]", UPLOADER_TOKEN);
  await page.click("form[data-form=token] button[type=submit]");
  await page.waitForSelector(".user .user-role:has-text('uploader')");
  await page.goto(`${BASE}/ui/runs`);
  await page.waitForSelector("text=may not use this route");
  assert.equal(await page.$("table.runs-table tbody tr[data-run-id]"), null);
  await shot("uploader-refused");
  await page.click(".user button.signout");
  await page.waitForURL(/\/ui\/signin/);
});

test("no page errors, CSP violations or dialogs happened", () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(cspViolations, []);
  assert.deepEqual(dialogs, []);
});
