// Logs: search every run's log records by level (that level and above), time range (HH:MM
// means today in the server's time zone, or RFC 3339), workflow, run, step and text. Each
// line links to its run. The free-text query stays out of the address bar: it may be anything
// the operator typed.
import { api, ApiError, type LogLine, type Query } from "../api";
import {
  button,
  card,
  emptyRow,
  errorBox,
  levelBadge,
  logFields,
  runLink,
  timeCell,
} from "../components";
import { h, replace, token } from "../dom";
import { validTimeInput } from "../format";
import { setQuery, type PageContext } from "../router";
import { addWorkflowOptions, field, select, textFilter } from "../filters";
import { workflowNames } from "./runs";

const PAGE_SIZE = 200;
const LEVELS: [string, string][] = [
  ["debug", "debug and above"],
  ["info", "info and above"],
  ["warning", "warning and above"],
  ["error", "error only"],
];

function logRow(l: LogLine): HTMLTableRowElement {
  return h(
    "tr",
    { class: `log-${token(l.level)}`, "data-level": l.level, "data-run": l.run ?? "" },
    h("td", { class: "nowrap" }, timeCell(l.at, true)),
    h("td", null, levelBadge(l.level)),
    h("td", { class: "nowrap" }, l.workflow ?? "—"),
    h("td", null, runLink(l.run)),
    h(
      "td",
      null,
      l.step ?? "—",
      l.attempt ? h("span", { class: "muted small" }, ` #${l.attempt}`) : null,
    ),
    h("td", { class: "wrap log-message" }, l.message),
    h("td", { class: "mono small wrap log-fields" }, logFields(l.fields)),
  );
}

export async function logsPage(ctx: PageContext): Promise<void> {
  ctx.title("Logs");
  const q = ctx.query;
  const level = select("level", LEVELS, q.get("level") ?? "info", "Level");
  const since = textFilter("since", q.get("since") ?? "", "09:12 or 2026-01-31T09:12:00Z");
  const until = textFilter("until", q.get("until") ?? "", "09:15");
  const wantWorkflow = q.get("workflow") ?? "";
  const workflow = select(
    "workflow",
    [
      ["", "All workflows"],
      ...(wantWorkflow ? [[wantWorkflow, wantWorkflow] as [string, string]] : []),
    ],
    wantWorkflow,
    "Workflow",
  );
  const run = textFilter("run", q.get("run") ?? "", "run id", "text", { inputmode: "numeric" });
  const step = textFilter("step", q.get("step") ?? "", "step name");
  const text = textFilter("q", "", "text in message", "search");
  const formError = h("div", { class: "form-error", role: "alert" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Log search" },
    field("Level", level),
    field("Since", since, "time"),
    field("Until", until, "time"),
    field("Workflow", workflow),
    field("Run", run, "short"),
    field("Step", step),
    field("Text", text, "grow"),
    h(
      "div",
      { class: "filter-buttons" },
      h("button", { type: "submit", class: "btn primary" }, "Search"),
    ),
    formError,
  );
  const tbody = h("tbody", null, emptyRow(7, "Loading…"));
  const resultInfo = h("span", { class: "muted small result-info" });
  const errorHost = h("div");
  let next: string | null = null;
  let filters: Query = {};
  const more = button("Load older lines", "ghost", () => void load(true));
  more.hidden = true;

  replace(
    ctx.root,
    h("div", { class: "page-head" }, h("h1", null, "Logs")),
    form,
    errorHost,
    card(
      ["Log lines ", resultInfo],
      [
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "grid logs-table" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["Time", "Level", "Workflow", "Run", "Step", "Message", "Fields"].map((x) =>
                  h("th", null, x),
                ),
              ),
            ),
            tbody,
          ),
        ),
        h("div", { class: "pager" }, more),
      ],
      { class: "flush" },
    ),
  );

  void workflowNames().then((names) => addWorkflowOptions(workflow, names));

  let shown = 0;
  const load = async (append: boolean) => {
    const query: Query = { ...filters, limit: PAGE_SIZE };
    if (append && next) query.after = next;
    let page;
    try {
      page = await api.logs(query);
    } catch (e) {
      replace(errorHost, errorBox(e instanceof ApiError ? e.message : String(e)));
      return;
    }
    if (!ctx.alive()) return;
    errorHost.textContent = "";
    next = page.next;
    more.hidden = !next;
    const rows = page.items.map(logRow);
    if (append) rows.forEach((r) => tbody.appendChild(r));
    else replace(tbody, rows.length ? rows : emptyRow(7, "No log lines match."));
    shown = append ? shown + rows.length : rows.length;
    resultInfo.textContent = `· ${shown}${next ? "+" : ""} line${shown === 1 ? "" : "s"}`;
  };

  const readFilters = (): Query | null => {
    formError.textContent = "";
    for (const input of [since, until]) {
      if (!validTimeInput(input.value.trim())) {
        formError.textContent = `${input.name}: use HH:MM (today, server time) or an RFC 3339 time such as 2026-01-31T09:12:00Z`;
        input.focus();
        return null;
      }
    }
    if (run.value.trim() && !/^\d+$/.test(run.value.trim())) {
      formError.textContent = "run: a run id is a number";
      run.focus();
      return null;
    }
    return {
      level: level.value,
      since: since.value.trim(),
      until: until.value.trim(),
      workflow: workflow.value,
      run: run.value.trim(),
      step: step.value.trim(),
      q: text.value.trim(),
    };
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = readFilters();
    if (!f) return;
    filters = f;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v && k !== "q") params.set(k, String(v));
    setQuery(params);
    void load(false);
  });

  filters = readFilters() ?? {};
  await load(false);
}
