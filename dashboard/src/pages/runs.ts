// Runs: filter by workflow, status, time range and chart id; newest first; paged with the
// API's `next` cursor; the first page refreshes itself every 2 s without reloading.
import { api, ApiError, type Query, type RunSummary, type WorkflowInfo } from "../api";
import {
  button,
  card,
  chartLink,
  emptyRow,
  errorBox,
  runLink,
  RUN_STATUSES,
  statusBadge,
  timeCell,
} from "../components";
import { h, replace } from "../dom";
import { addWorkflowOptions, field, select, textFilter } from "../filters";
import { between, clock, fmtDuration, isoMinutesAgo, validTimeInput } from "../format";
import { navigate, setQuery, type PageContext } from "../router";

const POLL_MS = 2000;
const DEFAULT_PAGE_SIZE = 50;

export const RANGES: { key: string; label: string; minutes: number | null }[] = [
  { key: "", label: "Any time", minutes: null },
  { key: "15m", label: "Last 15 minutes", minutes: 15 },
  { key: "1h", label: "Last hour", minutes: 60 },
  { key: "24h", label: "Last 24 hours", minutes: 24 * 60 },
  { key: "7d", label: "Last 7 days", minutes: 7 * 24 * 60 },
  { key: "custom", label: "Custom…", minutes: null },
];

let workflowCache: { at: number; list: WorkflowInfo[] } | null = null;

export async function workflowNames(): Promise<string[]> {
  if (!workflowCache || Date.now() - workflowCache.at > 30_000) {
    try {
      workflowCache = { at: Date.now(), list: await api.workflows() };
    } catch {
      return workflowCache?.list.map((w) => w.name) ?? [];
    }
  }
  return workflowCache.list.map((w) => w.name);
}

function runDuration(r: RunSummary): string {
  if (r.duration_ms !== null && r.duration_ms !== undefined) return fmtDuration(r.duration_ms);
  if (r.finished_at) return fmtDuration(between(r.created_at, r.finished_at));
  return `${fmtDuration(between(r.created_at, new Date().toISOString()))} so far`;
}

function runRow(r: RunSummary, fresh: boolean): HTMLTableRowElement {
  const open = () => navigate(`/ui/runs/${r.id}`);
  return h(
    "tr",
    {
      class: `clickable${fresh ? " fresh" : ""}`,
      "data-run-id": r.id,
      "data-status": r.status,
      onclick: (ev: Event) => {
        if ((ev.target as Element).closest("a")) return;
        open();
      },
    },
    h("td", null, runLink(r.id)),
    h(
      "td",
      null,
      h("span", { class: "wf-name" }, r.workflow),
      r.version !== null ? h("span", { class: "muted small" }, ` v${r.version}`) : null,
    ),
    h("td", null, statusBadge(r.status)),
    h("td", null, chartLink(r.subject)),
    h("td", null, timeCell(r.created_at)),
    h("td", { class: "num" }, runDuration(r)),
    h("td", { class: "error-cell", title: r.error ?? "" }, r.error ?? ""),
  );
}

export async function runsPage(ctx: PageContext): Promise<void> {
  ctx.title("Runs");
  const q = ctx.query;
  // ?limit= sets the page size (1-500), e.g. for a longer list.
  const pageSize = Math.min(
    500,
    Math.max(1, Math.floor(Number(q.get("limit"))) || DEFAULT_PAGE_SIZE),
  );
  // The wanted workflow is an option from the start, so a deep link filters before the list of
  // names arrives.
  const wantWorkflow = q.get("workflow") ?? "";
  const workflowSel = select(
    "workflow",
    [
      ["", "All workflows"],
      ...(wantWorkflow ? [[wantWorkflow, wantWorkflow] as [string, string]] : []),
    ],
    wantWorkflow,
    "Workflow",
  );
  const statusSel = select(
    "status",
    [["", "Any status"], ...RUN_STATUSES.map((x): [string, string] => [x, x])],
    q.get("status") ?? "",
    "Status",
  );
  const initialRange = q.get("range") ?? (q.get("since") || q.get("until") ? "custom" : "");
  const rangeSel = select(
    "range",
    RANGES.map((r): [string, string] => [r.key, r.label]),
    initialRange,
    "Time range",
  );
  const since = textFilter("since", q.get("since") ?? "", "HH:MM or 2026-01-31T09:12:00Z");
  const until = textFilter("until", q.get("until") ?? "", "HH:MM or RFC 3339");
  const subject = textFilter("subject", q.get("subject") ?? "", "chart id", "search");
  const customFields = h(
    "div",
    { class: "field-group" },
    field("Since", since),
    field("Until", until),
  );
  const formError = h("div", { class: "form-error", role: "alert" });

  const form = h(
    "form",
    { class: "filters", "aria-label": "Run filters" },
    field("Workflow", workflowSel),
    field("Status", statusSel),
    field("Time range", rangeSel),
    customFields,
    field("Chart id", subject, "grow"),
    h(
      "div",
      { class: "filter-buttons" },
      h("button", { type: "submit", class: "btn primary" }, "Apply"),
      button("Reset", "ghost", () => navigate("/ui/runs")),
    ),
    formError,
  );

  const live = h(
    "span",
    { class: "live" },
    h("i", { class: "dot" }),
    h("span", { class: "live-text" }, "Live"),
  );
  const tbody = h("tbody", null, emptyRow(7, "Loading…"));
  const tableEl = h(
    "table",
    { class: "grid runs-table" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ["Run", "Workflow", "Status", "Chart", "Started", "Duration", "Error"].map((x) =>
          h("th", null, x),
        ),
      ),
    ),
    tbody,
  );
  const errorHost = h("div");
  const newer = button("← Newer", "ghost", () => {
    cursors.pop();
    void load(true);
  });
  const older = button("Older →", "ghost", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    void load(true);
  });
  const pageInfo = h("span", { class: "muted small" });
  const pager = h("div", { class: "pager" }, newer, pageInfo, older);

  replace(
    ctx.root,
    h("div", { class: "page-head" }, h("h1", null, "Runs"), live),
    form,
    errorHost,
    card("Workflow runs", [h("div", { class: "table-wrap" }, tableEl), pager], { class: "flush" }),
  );

  const syncCustom = () => {
    customFields.hidden = rangeSel.value !== "custom";
  };
  syncCustom();
  rangeSel.addEventListener("change", () => {
    syncCustom();
    if (rangeSel.value !== "custom") form.requestSubmit();
  });
  workflowSel.addEventListener("change", () => form.requestSubmit());
  statusSel.addEventListener("change", () => form.requestSubmit());

  void workflowNames().then((names) => addWorkflowOptions(workflowSel, names));

  let cursors: string[] = []; // "after" values of the pages below the first
  let nextCursor: string | null = null;
  let seen: Set<number> | null = null;
  let filters: Query = {};

  const readFilters = (): Query | null => {
    formError.textContent = "";
    const f: Query = {
      workflow: workflowSel.value,
      status: statusSel.value,
      subject: subject.value.trim(),
    };
    const range = RANGES.find((r) => r.key === rangeSel.value);
    if (rangeSel.value === "custom") {
      for (const input of [since, until]) {
        if (!validTimeInput(input.value.trim())) {
          formError.textContent = `${input.name}: use HH:MM (today) or an RFC 3339 time such as 2026-01-31T09:12:00Z`;
          input.focus();
          return null;
        }
      }
      f.since = since.value.trim();
      f.until = until.value.trim();
    } else if (range?.minutes) {
      f.range = range.key;
    }
    return f;
  };

  const toApi = (f: Query): Query => {
    const out: Query = { ...f, limit: pageSize };
    const range = RANGES.find((r) => r.key === f.range);
    delete out.range;
    if (range?.minutes) out.since = isoMinutesAgo(range.minutes);
    const after = cursors[cursors.length - 1];
    if (after) out.after = after;
    return out;
  };

  const load = async (reset: boolean) => {
    if (reset) seen = null;
    let page;
    try {
      page = await api.runs(toApi(filters));
    } catch (e) {
      replace(errorHost, errorBox(e instanceof ApiError ? e.message : String(e)));
      live.classList.add("stale");
      return;
    }
    if (!ctx.alive()) return;
    errorHost.textContent = "";
    live.classList.remove("stale");
    nextCursor = page.next;
    const firstLoad = seen === null;
    const rows = page.items.map((r) => runRow(r, !firstLoad && !seen!.has(r.id)));
    seen = new Set(page.items.map((r) => r.id));
    replace(tbody, rows.length ? rows : emptyRow(7, "No runs match these filters."));
    newer.disabled = cursors.length === 0;
    older.disabled = !nextCursor;
    pageInfo.textContent = `Page ${cursors.length + 1}`;
    const isLive = cursors.length === 0;
    live.classList.toggle("paused", !isLive);
    live.querySelector(".live-text")!.textContent = isLive
      ? `Live · updated ${clock(new Date())}`
      : "Paused on older pages";
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = readFilters();
    if (!f) return;
    filters = f;
    cursors = [];
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) params.set(k, String(v));
    if (pageSize !== DEFAULT_PAGE_SIZE) params.set("limit", String(pageSize));
    setQuery(params);
    void load(true);
  });

  filters = readFilters() ?? {};
  ctx.every(POLL_MS, async () => {
    if (cursors.length === 0) await load(false);
  });
}
