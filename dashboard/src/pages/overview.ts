// Overview: throughput, failures and latency over the last hour (from the runs API), queue
// depth sampled from /metrics while the page is open, waiting reviews, the oldest ready step,
// and the latest failures.
import { api, ApiError, metricSum, parseMetrics, type RunSummary, type WorkflowInfo } from "../api";
import {
  card,
  chartLink,
  errorBox,
  runLink,
  RUN_STATUSES,
  statusBadge,
  table,
  timeCell,
} from "../components";
import { timeChart } from "../charts";
import { h, replace } from "../dom";
import { fmtCount, fmtDuration, isoMinutesAgo, parseTime } from "../format";
import type { PageContext } from "../router";

const REFRESH_MS = 5000;
const WINDOW_MIN = 60;
const MAX_PAGES = 4; // up to 2,000 runs of the last hour feed the charts
const QUEUE_SAMPLES = 180;

function tile(
  label: string,
  id: string,
): { el: HTMLElement; set(value: string, note?: string, tone?: string): void } {
  const value = h("div", { class: "tile-value" }, "—");
  const note = h("div", { class: "tile-note" });
  const el = h(
    "div",
    { class: "tile", "data-tile": id },
    h("div", { class: "tile-label" }, label),
    value,
    note,
  );
  return {
    el,
    set(v, n = "", tone = "") {
      value.textContent = v;
      note.textContent = n;
      el.dataset.tone = tone;
    },
  };
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

async function recentRuns(): Promise<{ runs: RunSummary[]; truncated: boolean }> {
  const since = isoMinutesAgo(WINDOW_MIN);
  const runs: RunSummary[] = [];
  let after: string | null = null;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await api.runs({ since, limit: 500, after });
    runs.push(...page.items);
    if (!page.next) return { runs, truncated: false };
    after = page.next;
  }
  return { runs, truncated: true };
}

export async function overviewPage(ctx: PageContext): Promise<void> {
  ctx.title("Overview");
  const tiles = {
    started: tile("Runs started (1 h)", "started"),
    failed: tile("Runs failed (1 h)", "failed"),
    latency: tile("Duration p95 (1 h)", "latency"),
    ready: tile("Ready steps", "ready"),
    oldest: tile("Oldest ready step", "oldest"),
    waiting: tile("Waiting steps", "waiting"),
    parked: tile("Parked steps", "parked"),
    reviews: tile("Reviews waiting", "reviews"),
  };
  const throughput = timeChart("Runs per minute", [
    { label: "started", color: "#2563eb" },
    { label: "succeeded", color: "#16a34a" },
    { label: "failed", color: "#dc2626", bars: true },
  ]);
  const latency = timeChart(
    "Run duration (finished runs)",
    [
      { label: "p50", color: "#7c3aed", unit: " s", points: true },
      { label: "p95", color: "#d97706", unit: " s", points: true },
    ],
    { yLabel: "seconds" },
  );
  const queue = timeChart(
    "Queue depth (sampled while this page is open)",
    [
      { label: "ready", color: "#0891b2", fill: true },
      { label: "running", color: "#2563eb" },
      { label: "waiting", color: "#d97706" },
    ],
    {
      minSpanSec: 15 * 60,
      emptyText: "Collecting samples: the queue is sampled every 5 s while this page is open.",
    },
  );
  throughput.el.dataset.chart = "throughput";
  latency.el.dataset.chart = "latency";
  queue.el.dataset.chart = "queue";
  const note = h("p", { class: "muted small" });
  const failuresHost = h("div", { class: "table-wrap" });
  const workflowsHost = h("div", { class: "table-wrap" });
  const errorHost = h("div");

  replace(
    ctx.root,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Overview"),
      h("span", { class: "muted" }, "last hour, refreshed every 5 s"),
    ),
    errorHost,
    h(
      "div",
      { class: "tiles" },
      Object.values(tiles).map((t) => t.el),
    ),
    h("div", { class: "charts" }, card("Throughput", throughput.el), card("Latency", latency.el)),
    card("Queue", queue.el),
    note,
    h(
      "div",
      { class: "two-col" },
      card("Latest failures", failuresHost, {
        class: "flush",
        actions: h("a", { href: "/ui/runs?status=failed", class: "small" }, "All failed runs →"),
      }),
      card("Workflows, last 24 hours", workflowsHost, { class: "flush" }),
    ),
  );

  const qx: number[] = [];
  const qy: [number[], number[], number[]] = [[], [], []];

  const refreshMetrics = async () => {
    try {
      const samples = parseMetrics(await api.metrics());
      const ready = metricSum(samples, "chartflow_steps", { state: "ready" });
      const running = metricSum(samples, "chartflow_steps", { state: "running" });
      const waiting = metricSum(samples, "chartflow_steps", { state: "waiting" });
      const oldest = metricSum(samples, "chartflow_oldest_ready_step_age_seconds");
      tiles.ready.set(fmtCount(ready), running !== null ? `${fmtCount(running)} running` : "");
      tiles.oldest.set(
        oldest ? fmtDuration(oldest * 1000) : "none",
        "age, unclaimed",
        oldest !== null && oldest > 60 ? "bad" : oldest !== null && oldest > 5 ? "warn" : "",
      );
      tiles.waiting.set(fmtCount(waiting), "for a signal or a time");
      const parked = metricSum(samples, "chartflow_steps_parked");
      tiles.parked.set(fmtCount(parked ?? 0), "wait for an operator", parked ? "warn" : "");
      qx.push(Date.now() / 1000);
      qy[0].push(ready ?? 0);
      qy[1].push(running ?? 0);
      qy[2].push(waiting ?? 0);
      if (qx.length > QUEUE_SAMPLES) {
        qx.shift();
        qy.forEach((a) => a.shift());
      }
      queue.set(
        [...qx],
        qy.map((a) => [...a]),
      );
    } catch {
      tiles.ready.set("—", "metrics unavailable");
    }
  };

  const refreshReviews = async () => {
    try {
      const reviews = await api.reviews({ status: "pending", limit: 1000 });
      const overdue = reviews.filter(
        (r) => (parseTime(r.due_at)?.getTime() ?? Infinity) < Date.now(),
      ).length;
      tiles.reviews.set(
        fmtCount(reviews.length),
        overdue ? `${overdue} overdue` : "none overdue",
        overdue ? "warn" : "",
      );
    } catch (e) {
      tiles.reviews.set(
        "—",
        e instanceof ApiError && e.status === 404 ? "no review API" : "unavailable",
      );
    }
  };

  const refreshRuns = async () => {
    const { runs, truncated } = await recentRuns();
    const now = Date.now();
    const start = Math.floor((now - WINDOW_MIN * 60_000) / 60_000) * 60;
    const buckets = WINDOW_MIN + 1;
    const xs = Array.from({ length: buckets }, (_, i) => start + i * 60);
    const started = new Array<number>(buckets).fill(0);
    const succeeded = new Array<number>(buckets).fill(0);
    const failed = new Array<number>(buckets).fill(0);
    const durations: number[][] = Array.from({ length: buckets }, () => []);
    const idx = (iso: string | null) => {
      const t = parseTime(iso);
      if (!t) return -1;
      const i = Math.floor(t.getTime() / 60_000) * 60 - start;
      return i < 0 ? -1 : Math.min(buckets - 1, i / 60);
    };
    let nFailed = 0;
    const allDur: number[] = [];
    for (const r of runs) {
      const i = idx(r.created_at);
      if (i >= 0) started[i]++;
      const j = idx(r.finished_at);
      if (j >= 0 && r.status === "succeeded") succeeded[j]++;
      if (j >= 0 && r.status === "failed") failed[j]++;
      if (r.status === "failed") nFailed++;
      if (j >= 0 && r.duration_ms !== null && r.duration_ms !== undefined) {
        durations[j].push(r.duration_ms / 1000);
        allDur.push(r.duration_ms);
      }
    }
    throughput.set(xs, [started, succeeded, failed]);
    const p = (q: number) =>
      durations.map((d) =>
        quantile(
          [...d].sort((a, b) => a - b),
          q,
        ),
      );
    latency.set(xs, [p(0.5), p(0.95)]);
    allDur.sort((a, b) => a - b);
    tiles.started.set(
      `${fmtCount(runs.length)}${truncated ? "+" : ""}`,
      `${fmtCount(runs.length / WINDOW_MIN)} per minute`,
    );
    tiles.failed.set(
      fmtCount(nFailed),
      runs.length ? `${((nFailed / runs.length) * 100).toFixed(1)}% of started` : "",
      nFailed ? "bad" : "good",
    );
    tiles.latency.set(
      fmtDuration(quantile(allDur, 0.95)),
      allDur.length ? `p50 ${fmtDuration(quantile(allDur, 0.5))}` : "no finished runs",
    );
    note.textContent = truncated
      ? `Charts use the ${runs.length.toLocaleString("en-US")} newest runs of the last hour.`
      : "";
  };

  const refreshFailures = async () => {
    const page = await api.runs({ status: "failed", limit: 8 });
    replace(
      failuresHost,
      table(
        ["Run", "Workflow", "Chart", "Started", "Error"],
        page.items.map((r) =>
          h(
            "tr",
            null,
            h("td", null, runLink(r.id)),
            h("td", { class: "nowrap" }, r.workflow),
            h("td", null, chartLink(r.subject)),
            h("td", null, timeCell(r.created_at)),
            h("td", { class: "error-cell" }, r.error ?? ""),
          ),
        ),
        "No failed runs.",
      ),
    );
  };

  const refreshWorkflows = async () => {
    const list: WorkflowInfo[] = await api.workflows();
    replace(
      workflowsHost,
      table(
        ["Workflow", "Version", "Runs by status"],
        list.map((w) =>
          h(
            "tr",
            null,
            h(
              "td",
              null,
              h("a", { href: `/ui/workflows?name=${encodeURIComponent(w.name)}` }, w.name),
            ),
            h("td", null, `v${w.latest_version}`),
            h(
              "td",
              null,
              h(
                "div",
                { class: "counts" },
                RUN_STATUSES.filter((s) => w.recent_runs?.[s]).map((s) =>
                  h(
                    "a",
                    {
                      class: "count",
                      href: `/ui/runs?workflow=${encodeURIComponent(w.name)}&status=${s}&range=24h`,
                    },
                    statusBadge(s),
                    h("span", { class: "count-n" }, String(w.recent_runs[s])),
                  ),
                ),
              ),
            ),
          ),
        ),
        "No workflows loaded.",
      ),
    );
  };

  let tick = 0;
  ctx.every(REFRESH_MS, async () => {
    const jobs = [refreshMetrics(), refreshReviews(), refreshRuns(), refreshFailures()];
    if (tick++ % 6 === 0) jobs.push(refreshWorkflows());
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r) => r.status === "rejected") as
      PromiseRejectedResult | undefined;
    if (!ctx.alive()) return;
    replace(
      errorHost,
      failed
        ? errorBox(
            `Some data could not be loaded: ${failed.reason instanceof Error ? failed.reason.message : String(failed.reason)}`,
          )
        : null,
    );
  });
}
