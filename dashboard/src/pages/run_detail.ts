// One run: its DAG coloured by step state, a timeline of step durations, every attempt with
// its error, step outputs as collapsible JSON, the history, the run's logs, and the operator's
// buttons (retry a failed run, cancel an unfinished one, signal a waiting step, retry, skip or
// fail a parked one).
import {
  api,
  ApiError,
  type HistoryEntry,
  type Json,
  type LogLine,
  type RunDetail,
  type StepRun,
} from "../api";
import {
  button,
  card,
  chartLink,
  errorBox,
  infoBox,
  jsonInline,
  jsonView,
  kv,
  levelBadge,
  loading,
  logFields,
  postCommand,
  statusBadge,
  table,
  TERMINAL,
  timeCell,
} from "../components";
import { dagLegend, dagSvg, nodesFromRun, stepsOf } from "../dag";
import { h, replace, token } from "../dom";
import { between, fmtDuration, fmtEpochMs, parseTime } from "../format";
import { parkedActions } from "../parked_actions";
import { familyRows } from "./run_family";
import type { PageContext } from "../router";

const POLL_MS = 2000;
const STEP_STATES = [
  "pending",
  "ready",
  "running",
  "waiting",
  "retrying",
  "parked",
  "paused",
  "succeeded",
  "skipped",
  "failed",
  "cancelled",
];

// Epoch milliseconds in a history detail (a waiting step's until_ms): keys ending in _ms whose
// value is a time after 2001, not a duration.
function isEpochMs(key: string, v: Json): v is number {
  return key.endsWith("_ms") && typeof v === "number" && v > 1e12;
}

function detailText(detail: Json): string {
  if (detail === null || detail === undefined) return "";
  if (typeof detail === "string") return detail;
  if (typeof detail === "object" && !Array.isArray(detail)) {
    const d = detail as { [k: string]: Json };
    for (const key of ["error", "reason", "message"]) {
      const v = d[key];
      if (typeof v === "string" && v) return v;
    }
    // "signal review · until 2026-01-30 14:02:11" rather than {"until_ms":1769781731000}.
    if (Object.entries(d).some(([k, v]) => isEpochMs(k, v)))
      return Object.entries(d)
        .map(([k, v]) =>
          isEpochMs(k, v)
            ? `${k.slice(0, -3)} ${fmtEpochMs(v)}`
            : `${k} ${typeof v === "string" ? v : JSON.stringify(v)}`,
        )
        .join(" · ");
  }
  return jsonInline(detail, 300);
}

// The run's status as the page shows it. The engine keeps a run "running" when a sibling step
// finishes after one started waiting (for a doctor's review, say), so a run none of whose steps
// runs or is about to, while one waits, is shown as waiting: what the API says of that step.
export function shownRunStatus(r: RunDetail): string {
  if (r.status !== "running") return r.status;
  const active = r.steps.some((st) => ["running", "ready", "retrying"].includes(st.status));
  return !active && r.steps.some((st) => st.status === "waiting") ? "waiting" : r.status;
}

interface Attempt {
  step: string;
  attempt: number | null;
  started: string | null;
  ended: string | null;
  outcome: string;
  worker: string | null;
  error: string;
}

// Pairs each "started" history entry with the entry that ended that attempt.
export function attemptsOf(history: HistoryEntry[]): Attempt[] {
  const out: Attempt[] = [];
  const open = new Map<string, Attempt>();
  for (const e of history) {
    if (!e.step) continue;
    if (e.type === "started") {
      const a: Attempt = {
        step: e.step,
        attempt: e.attempt,
        started: e.at,
        ended: null,
        outcome: "running",
        worker: e.worker,
        error: "",
      };
      open.set(e.step, a);
      out.push(a);
    } else if (
      ["succeeded", "failed", "retried", "waiting", "skipped", "cancelled", "parked"].includes(
        e.type,
      )
    ) {
      const a = open.get(e.step);
      if (!a || a.ended) continue;
      if (
        e.type === "retried" &&
        e.detail &&
        typeof e.detail === "object" &&
        (e.detail as { by?: Json }).by === "operator"
      )
        continue;
      a.ended = e.at;
      a.outcome = e.type;
      a.error = ["failed", "retried", "parked"].includes(e.type) ? detailText(e.detail) : "";
      open.delete(e.step);
    }
  }
  return out;
}

function timeline(run: RunDetail): HTMLElement {
  const t0 = parseTime(run.created_at)?.getTime() ?? Date.now();
  const now = Date.now();
  const steps = run.steps
    .filter((st) => st.started_at)
    .sort((a, b) => (a.started_at! < b.started_at! ? -1 : 1));
  if (steps.length === 0) return h("p", { class: "muted" }, "No step has started yet.");
  const endOf = (st: StepRun) =>
    parseTime(st.finished_at)?.getTime() ??
    (TERMINAL.has(run.status) ? (parseTime(run.finished_at)?.getTime() ?? now) : now);
  const tEnd = Math.max(parseTime(run.finished_at)?.getTime() ?? 0, ...steps.map(endOf), t0 + 1);
  const span = tEnd - t0;
  const pct = (t: number) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  return h(
    "div",
    { class: "timeline" },
    steps.map((st) => {
      const start = parseTime(st.started_at)!.getTime();
      const end = endOf(st);
      const bar = h("div", {
        class: `tl-bar state-${token(st.status)}`,
        title: `${st.name}: ${fmtDuration(end - start)} (${st.status})`,
      });
      bar.style.left = pct(start);
      bar.style.width = `max(3px, ${(((end - start) / span) * 100).toFixed(3)}%)`;
      return h(
        "div",
        { class: "tl-row", "data-step": st.name },
        h("div", { class: "tl-name" }, st.name),
        h("div", { class: "tl-track" }, bar),
        h("div", { class: "tl-dur num" }, fmtDuration(end - start), st.finished_at ? "" : "…"),
      );
    }),
    h("div", { class: "tl-axis" }, h("span", null, "0"), h("span", null, fmtDuration(span))),
  );
}

// A for_each step's elements: the run's rows named `<step>[i]`, in list order.
function elementsOf(steps: StepRun[], name: string): StepRun[] {
  const index = (st: StepRun) => Number(st.name.slice(name.length + 1, -1));
  return steps
    .filter((st) => st.name.startsWith(`${name}[`) && /^\d+$/.test(String(index(st))))
    .sort((a, b) => index(a) - index(b));
}

// "4 elements: 3 succeeded, 1 running", then each element's state.
function elementsSummary(elements: StepRun[]): HTMLElement {
  const counts = new Map<string, number>();
  for (const el of elements) counts.set(el.status, (counts.get(el.status) ?? 0) + 1);
  const text = [...counts].map(([status, n]) => `${n} ${status}`).join(", ");
  return h(
    "div",
    { class: "fan-elements", "data-elements": String(elements.length) },
    h("span", null, `${elements.length} element${elements.length === 1 ? "" : "s"}: ${text}`),
    h(
      "div",
      { class: "fan-element-list" },
      elements.map((el) =>
        h(
          "span",
          { class: "fan-element", "data-step": el.name },
          el.name,
          " ",
          statusBadge(el.status),
        ),
      ),
    ),
  );
}

function stepPanel(
  st: StepRun,
  input: Json | undefined,
  open: boolean,
  elements: StepRun[] = [],
): HTMLDetailsElement {
  const dur = st.started_at
    ? between(st.started_at, st.finished_at ?? new Date().toISOString())
    : null;
  const info: [string, HTMLElement | string][] = [
    ["Handler", h("code", null, st.handler ?? "—")],
    ["Attempts", `${st.attempts ?? 0}${st.max_attempts ? ` of ${st.max_attempts}` : ""}`],
    ["Needs", st.needs && st.needs.length ? st.needs.join(", ") : "—"],
    ["Started", timeCell(st.started_at, true)],
    ["Finished", timeCell(st.finished_at, true)],
  ];
  if (st.status === "retrying" || st.status === "ready")
    info.push(["Runs at", timeCell(st.run_at, true)]);
  if (st.status === "waiting" && st.wait_signal)
    info.push(["Waiting for signal", h("code", null, st.wait_signal)]);
  if (st.status === "waiting" && st.wait_until)
    info.push(["Waits until", timeCell(st.wait_until, true)]);
  if (st.status === "parked") info.push(["Parked since", timeCell(st.parked_at, true)]);
  if (st.skip_reason) info.push(["Skipped by an operator", st.skip_reason]);
  if (elements.length) info.push(["Fan-out", elementsSummary(elements)]);
  return h(
    "details",
    { class: "step", open, "data-step": st.name },
    h(
      "summary",
      null,
      h("span", { class: "step-name" }, st.name),
      statusBadge(st.status),
      h("span", { class: "muted small" }, st.handler ?? ""),
      h("span", { class: "step-dur num muted" }, dur !== null ? fmtDuration(dur) : ""),
    ),
    h(
      "div",
      { class: "step-body" },
      kv(info),
      st.error ? h("div", { class: "step-error" }, h("strong", null, "Error: "), st.error) : null,
      h("div", { class: "subhead" }, "Input"),
      input === undefined ||
        input === null ||
        (typeof input === "object" && Object.keys(input).length === 0)
        ? h("p", { class: "muted" }, "No static input (the handler reads the event).")
        : jsonView(input),
      h("div", { class: "subhead" }, "Output"),
      st.output === null || st.output === undefined
        ? h("p", { class: "muted" }, "No output.")
        : jsonView(st.output),
    ),
  );
}

export async function runDetailPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0];
  ctx.title(`Run #${id}`);
  replace(ctx.root, loading());

  const head = h("div", { class: "page-head" });
  const actions = h("div", { class: "actions" });
  const summary = h("div");
  const signalHost = h("div");
  const dagHost = h("div", { class: "dag-wrap" });
  const timelineHost = h("div");
  const stepsHost = h("div", { class: "steps" });
  const attemptsHost = h("div", { class: "table-wrap" });
  const historyHost = h("div", { class: "table-wrap" });
  const logsHost = h("div", { class: "table-wrap" });
  const errorHost = h("div");
  let built = false;
  let lastRunJson = "";
  let lastLogsKey: string | null = null;
  let run: RunDetail | null = null;
  let confirmingCancel = false;

  const act = async (what: string, path: string, body: Json = {}) => {
    await postCommand(what, path, body);
    lastRunJson = "";
    await refresh();
    // The engine acts on the command within moments (a retried step is claimed, a signalled one
    // resumes): look again soon rather than at the next 2 s tick.
    window.setTimeout(() => void (ctx.alive() && refresh()), 600);
  };

  const renderActions = (r: RunDetail) => {
    const retry = button(
      "Retry failed steps",
      "primary",
      () => void act("Retry", `/v1/runs/${r.id}/retry`),
      {
        "data-action": "retry",
        disabled: r.status !== "failed",
        title:
          r.status === "failed"
            ? "Run the failed steps again; succeeded steps keep their output"
            : "Only failed runs can be retried",
      },
    );
    const cancelLabel = confirmingCancel ? "Confirm cancel" : "Cancel run";
    const cancel = button(
      cancelLabel,
      confirmingCancel ? "danger" : "danger-outline",
      () => {
        if (!confirmingCancel) {
          confirmingCancel = true;
          renderActions(r);
          return;
        }
        confirmingCancel = false;
        void act("Cancel", `/v1/runs/${r.id}/cancel`);
      },
      { "data-action": "cancel", disabled: TERMINAL.has(r.status) },
    );
    // Pausing holds the run's next steps (the one running finishes); resuming lets them run.
    const pause = r.paused
      ? button("Resume run", "primary", () => void act("Resume", `/v1/runs/${r.id}/resume`), {
          "data-action": "resume",
          title: "Let this run's steps be claimed again",
        })
      : button("Pause run", "", () => void act("Pause", `/v1/runs/${r.id}/pause`), {
          "data-action": "pause",
          disabled: TERMINAL.has(r.status),
          title: TERMINAL.has(r.status)
            ? "Only a run in flight can be paused"
            : "Claim no further step of this run until it is resumed",
        });
    replace(actions, pause, retry, cancel);
  };

  // Why no step of this run moves: the run, or its whole workflow, is paused.
  const pausedNotice = (r: RunDetail): HTMLElement | null => {
    if (TERMINAL.has(r.status)) return null;
    const notes: (string | HTMLElement | null)[] = [];
    if (r.paused)
      notes.push(
        h(
          "div",
          null,
          h("strong", null, "This run is paused"),
          ` by ${r.paused.paused_by} since `,
          timeCell(r.paused.paused_at),
          r.paused.reason ? `: ${r.paused.reason}` : "",
        ),
      );
    if (r.workflow_paused)
      notes.push(
        h(
          "div",
          null,
          h("strong", null, `Workflow ${r.workflow} is paused`),
          ` by ${r.workflow_paused.paused_by} since `,
          timeCell(r.workflow_paused.paused_at),
          r.workflow_paused.reason ? `: ${r.workflow_paused.reason}` : "",
          " — resume it on the ",
          h(
            "a",
            { href: `/ui/workflows?name=${encodeURIComponent(r.workflow)}` },
            "workflows page",
          ),
          ".",
        ),
      );
    return notes.length
      ? h("div", { class: "notice paused-notice", "data-testid": "paused-notice" }, notes)
      : null;
  };

  const signalForms = (r: RunDetail): HTMLElement | null => {
    if (TERMINAL.has(r.status)) return null;
    const waiting = r.steps.filter((st) => st.status === "waiting" && st.wait_signal);
    const forms = waiting.map((st) => {
      const name = h("input", {
        name: "signal",
        type: "text",
        value: st.wait_signal ?? "",
        spellcheck: "false",
        "aria-label": "Signal name",
      });
      const payload = h(
        "textarea",
        { name: "payload", rows: 2, spellcheck: "false", "aria-label": "Signal payload (JSON)" },
        "{}",
      );
      const err = h("div", { class: "form-error", role: "alert" });
      const form = h(
        "form",
        { class: "signal-form", "data-step": st.name },
        h(
          "div",
          { class: "signal-title" },
          "Step ",
          h("strong", null, st.name),
          " is waiting for signal ",
          h("code", null, st.wait_signal ?? ""),
          st.wait_until ? [" until ", timeCell(st.wait_until)] : null,
        ),
        h(
          "div",
          { class: "signal-row" },
          h("label", { class: "field" }, h("span", null, "Signal"), name),
          h("label", { class: "field grow" }, h("span", null, "Payload (JSON)"), payload),
          h(
            "button",
            { type: "submit", class: "btn primary", "data-action": "signal" },
            "Send signal",
          ),
        ),
        err,
      );
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        let body: Json;
        try {
          body = JSON.parse(payload.value.trim() || "{}") as Json;
        } catch {
          err.textContent = "The payload is not valid JSON.";
          return;
        }
        err.textContent = "";
        void act(
          "Signal",
          `/v1/runs/${r.id}/signal/${encodeURIComponent(name.value.trim())}`,
          body,
        );
      });
      return form;
    });
    return forms.length ? card("Waiting for a signal", forms, { class: "signal-card" }) : null;
  };

  // Steps whose attempts ran out and that wait for an operator's retry, skip or fail.
  const parkedForms = (r: RunDetail): HTMLElement | null => {
    const parked = r.steps.filter((st) => st.status === "parked");
    const forms = parked.map((st) =>
      h(
        "div",
        { class: "parked-form", "data-step": st.name },
        h(
          "div",
          { class: "parked-title" },
          "Step ",
          h("strong", null, st.name),
          ` ran out of attempts (${st.attempts ?? 0}) and is parked since `,
          timeCell(st.parked_at),
          ". Fix the cause, then retry it, skip it with a reason, or fail the run.",
        ),
        parkedActions(r.id, st.name, async () => {
          lastRunJson = "";
          await refresh();
          window.setTimeout(() => void (ctx.alive() && refresh()), 600);
        }),
      ),
    );
    return forms.length
      ? card("Parked: waiting for an operator", forms, { class: "parked-card" })
      : null;
  };

  const renderRun = (r: RunDetail) => {
    const openSteps = new Set<string>();
    stepsHost
      .querySelectorAll("details.step[open]")
      .forEach((d) => openSteps.add((d as HTMLElement).dataset.step ?? ""));
    const firstRender = !built;

    replace(head, h("h1", null, `Run #${r.id}`, " ", statusBadge(shownRunStatus(r))), actions);
    renderActions(r);
    const dur = r.finished_at
      ? between(r.created_at, r.finished_at)
      : between(r.created_at, new Date().toISOString());
    replace(
      summary,
      pausedNotice(r),
      r.error
        ? h("div", { class: "notice error run-error" }, h("strong", null, "Run failed: "), r.error)
        : null,
      kv([
        [
          "Workflow",
          h(
            "span",
            null,
            h("a", { href: `/ui/workflows?name=${encodeURIComponent(r.workflow)}` }, r.workflow),
            r.version !== null ? h("span", { class: "muted" }, ` version ${r.version}`) : null,
          ),
        ],
        ["Chart", chartLink(r.subject)],
        [
          "Event",
          r.event_type
            ? h(
                "span",
                null,
                h("code", null, r.event_type),
                r.event_id ? h("span", { class: "muted" }, ` #${r.event_id}`) : null,
              )
            : "—",
        ],
        ["Trace", r.trace_id ? h("code", { class: "trace-id" }, r.trace_id) : "—"],
        ...familyRows(r),
        ["Created", timeCell(r.created_at, true)],
        ["Finished", timeCell(r.finished_at, true)],
        ["Duration", `${fmtDuration(dur)}${r.finished_at ? "" : " so far"}`],
      ]),
    );
    replace(signalHost, parkedForms(r), signalForms(r));
    replace(
      dagHost,
      dagSvg(nodesFromRun(r), {
        label: `steps of run ${r.id}`,
        onSelect: (name) => {
          const el = stepsHost.querySelector(
            `details.step[data-step="${CSS.escape(name)}"]`,
          ) as HTMLDetailsElement | null;
          if (el) {
            el.open = true;
            el.scrollIntoView({ behavior: "smooth", block: "center" });
          }
        },
      }),
      dagLegend(STEP_STATES),
    );
    replace(timelineHost, timeline(r));
    const inputs = new Map(stepsOf(r.definition).map((d) => [d.name, d.input as Json | undefined]));
    replace(
      stepsHost,
      r.steps.length
        ? r.steps.map((st) =>
            stepPanel(
              st,
              inputs.get(st.name),
              firstRender
                ? ["failed", "waiting", "parked"].includes(st.status)
                : openSteps.has(st.name),
              elementsOf(r.steps, st.name),
            ),
          )
        : h("p", { class: "muted" }, "No steps yet."),
    );
    const attempts = attemptsOf(r.history);
    replace(
      attemptsHost,
      table(
        ["Step", "Attempt", "Started", "Ended", "Took", "Outcome", "Worker", "Error"],
        attempts.map((a) =>
          h(
            "tr",
            { "data-step": a.step, "data-outcome": a.outcome },
            h("td", null, a.step),
            h("td", { class: "num" }, a.attempt ?? "—"),
            h("td", null, timeCell(a.started, true)),
            h("td", null, timeCell(a.ended, true)),
            h("td", { class: "num" }, a.ended ? fmtDuration(between(a.started, a.ended)) : "…"),
            h("td", null, statusBadge(a.outcome)),
            h("td", { class: "mono small" }, a.worker ?? "—"),
            h("td", { class: "error-cell wrap" }, a.error),
          ),
        ),
        "No attempts yet.",
      ),
    );
    replace(
      historyHost,
      table(
        ["Time", "Event", "Step", "Attempt", "Worker", "Detail"],
        r.history.map((e) =>
          h(
            "tr",
            { "data-type": e.type },
            h("td", null, timeCell(e.at, true)),
            h("td", null, h("span", { class: `badge hist-${token(e.type)}` }, e.type)),
            h("td", null, e.step ?? "—"),
            h("td", { class: "num" }, e.attempt ?? "—"),
            h("td", { class: "mono small" }, e.worker ?? "—"),
            h("td", { class: "wrap small" }, detailText(e.detail)),
          ),
        ),
        "No history yet.",
      ),
    );
    built = true;
  };

  const renderLogs = (logs: LogLine[]) => {
    replace(
      logsHost,
      table(
        ["Time", "Level", "Step", "Attempt", "Message", "Fields"],
        logs.map((l) =>
          h(
            "tr",
            { class: `log-${token(l.level)}` },
            h("td", null, timeCell(l.at, true)),
            h("td", null, levelBadge(l.level)),
            h("td", null, l.step ?? "—"),
            h("td", { class: "num" }, l.attempt ?? "—"),
            h("td", { class: "wrap" }, l.message),
            h("td", { class: "mono small wrap log-fields" }, logFields(l.fields)),
          ),
        ),
        "No log lines for this run.",
      ),
    );
  };

  const refresh = async () => {
    let r: RunDetail;
    try {
      r = await api.run(id);
    } catch (e) {
      if (!built) replace(ctx.root, errorBox(e instanceof ApiError ? e.message : String(e)));
      else
        replace(
          errorHost,
          errorBox(`Refresh failed: ${e instanceof ApiError ? e.message : String(e)}`),
        );
      return;
    }
    if (!ctx.alive()) return;
    errorHost.textContent = "";
    run = r;
    const json = JSON.stringify(r);
    if (!built) {
      replace(
        ctx.root,
        head,
        errorHost,
        card("Summary", summary),
        signalHost,
        card("Graph", dagHost, { class: "dag-card" }),
        card("Timeline", timelineHost),
        card("Steps", stepsHost),
        card("Attempts", attemptsHost, { class: "flush" }),
        card("History", historyHost, { class: "flush" }),
        card("Logs", logsHost, {
          class: "flush",
          actions: h("a", { href: `/ui/logs?run=${r.id}`, class: "small" }, "Search these logs →"),
        }),
      );
    }
    if (json !== lastRunJson) {
      lastRunJson = json;
      renderRun(r);
    } else if (!TERMINAL.has(r.status)) {
      replace(timelineHost, timeline(r));
    }
    try {
      const logs = await api.logs({ run: r.id, level: "debug", limit: 500 });
      const key = logs.items.map((l) => l.id).join(",");
      if (key !== lastLogsKey) {
        lastLogsKey = key;
        renderLogs(logs.items);
      }
    } catch (e) {
      replace(
        logsHost,
        infoBox(`Logs unavailable: ${e instanceof ApiError ? e.message : String(e)}`),
      );
    }
  };

  let settledPolls = 0;
  ctx.every(POLL_MS, async () => {
    // A finished run changes no more (its last log lines arrive within a few seconds), so polling
    // slows to a trickle: refresh every 5th tick.
    if (run && TERMINAL.has(run.status) && settledPolls++ % 5 !== 0) return;
    if (run && !TERMINAL.has(run.status)) settledPolls = 0;
    await refresh();
  });
}
