// Workflows: each definition with its DAG, triggers, versions and run counts of the last 24 h.
import { api, ApiError, type Json, type WorkflowInfo, type WorkflowVersion } from "../api";
import {
  button,
  card,
  errorBox,
  infoBox,
  jsonInline,
  loading,
  postCommand,
  RUN_STATUSES,
  statusBadge,
  table,
  timeCell,
} from "../components";
import { dagSvg, nodesFromDefinition } from "../dag";
import { h, replace } from "../dom";
import type { PageContext } from "../router";
import { migrateControls } from "./migrate_runs";

function triggers(def: WorkflowVersion["definition"]): HTMLElement {
  const on = Array.isArray(def.on) ? (def.on as Json[]) : def.on ? [def.on] : [];
  if (on.length === 0) return h("span", { class: "muted" }, "none");
  return h(
    "ul",
    { class: "triggers" },
    on.map((t) => {
      if (t && typeof t === "object" && !Array.isArray(t)) {
        const { event, filter, ...rest } = t as { [k: string]: Json };
        return h(
          "li",
          null,
          event ? h("code", { class: "event" }, String(event)) : null,
          filter !== undefined
            ? h("span", { class: "muted small" }, " where ", jsonInline(filter, 200))
            : null,
          Object.keys(rest).length
            ? h("span", { class: "muted small" }, " ", jsonInline(rest, 200))
            : null,
        );
      }
      return h("li", null, h("code", null, jsonInline(t)));
    }),
  );
}

function counts(wf: WorkflowInfo): HTMLElement {
  const entries = RUN_STATUSES.filter((s) => wf.recent_runs?.[s]).map(
    (s) => [s, wf.recent_runs[s]] as const,
  );
  if (entries.length === 0) return h("span", { class: "muted" }, "no runs in the last 24 hours");
  return h(
    "div",
    { class: "counts" },
    entries.map(([status, n]) =>
      h(
        "a",
        {
          class: "count",
          href: `/ui/runs?workflow=${encodeURIComponent(wf.name)}&status=${status}&range=24h`,
          "data-status": status,
        },
        statusBadge(status),
        h("span", { class: "count-n" }, String(n)),
      ),
    ),
  );
}

// Pausing: while paused no step of the workflow is claimed; events still start runs, which
// queue here until an operator resumes it.
function pauseControls(wf: WorkflowInfo, changed: () => void): HTMLElement {
  const act = async (what: string, path: string, body: Json = {}) => {
    await postCommand(what, path, body);
    changed();
  };
  const base = `/v1/workflows/${encodeURIComponent(wf.name)}`;
  const p = wf.paused;
  if (p) {
    return h(
      "div",
      { class: "notice paused-notice", "data-testid": "workflow-paused" },
      h(
        "div",
        null,
        h("strong", null, "Paused"),
        ` by ${p.paused_by} since `,
        timeCell(p.paused_at),
        p.reason ? `: ${p.reason}` : "",
      ),
      h(
        "div",
        { class: "small" },
        h("span", { "data-testid": "queued-runs" }, String(p.queued_runs)),
        ` run(s) queued (${p.queued_steps} step(s))`,
        p.running_steps ? `, ${p.running_steps} step(s) still finishing` : "",
      ),
      button("Resume workflow", "primary", () => void act("Resume", `${base}/resume`), {
        "data-action": "resume-workflow",
      }),
    );
  }
  const reason = h("input", {
    type: "text",
    name: "reason",
    placeholder: "Reason (optional)",
    "aria-label": "Reason for pausing",
    maxlength: 1000,
  });
  return h(
    "div",
    { class: "pause-form" },
    reason,
    button(
      "Pause workflow",
      "",
      () =>
        void act(
          "Pause",
          `${base}/pause`,
          reason.value.trim() ? { reason: reason.value.trim() } : {},
        ),
      {
        "data-action": "pause-workflow",
        title: "Claim no step of this workflow until it is resumed; new runs queue",
      },
    ),
  );
}

// Debounced triggers: events with one key value within the window start one run, later.
function debounceInfo(wf: WorkflowInfo): HTMLElement | null {
  if (!wf.debounce?.length) return null;
  const secs = (ms: number) => `${ms / 1000} s`;
  return h(
    "div",
    { class: "debounce small" },
    wf.debounce.map((d) =>
      h(
        "div",
        null,
        "Debounced: ",
        h("code", null, d.event),
        " per ",
        h("code", null, d.key),
        `, window ${secs(d.window_ms)}, at most ${secs(d.max_wait_ms)}`,
      ),
    ),
    h(
      "div",
      { class: "muted" },
      h("span", { "data-testid": "debounce-pending" }, String(wf.debounce_pending ?? 0)),
      " start(s) waiting for their window",
    ),
  );
}

function workflowCard(wf: WorkflowInfo, changed: () => void): HTMLElement {
  const latest = wf.versions[0];
  const dagHost = h("div", { class: "dag-wrap" });
  const showVersion = (v: WorkflowVersion) => {
    replace(
      dagHost,
      dagSvg(nodesFromDefinition(v.definition), {
        label: `steps of ${wf.name} version ${v.version}`,
      }),
    );
    rows.forEach((r) => r.classList.toggle("selected", r.dataset.version === String(v.version)));
    replace(trigHost, triggers(v.definition));
    replace(descHost, typeof v.definition.description === "string" ? v.definition.description : "");
  };
  const trigHost = h("div");
  const descHost = h("p", { class: "muted" });
  const rows = wf.versions.map((v) =>
    h(
      "tr",
      {
        class: "clickable",
        "data-version": v.version,
        onclick: () => showVersion(v),
        title: "Show this version's graph",
      },
      h("td", null, `v${v.version}`),
      h("td", { class: "mono small" }, (v.content_hash ?? "").slice(0, 12)),
      h("td", null, timeCell(v.created_at)),
      h("td", { class: "mono small" }, v.source_file ?? "—"),
    ),
  );
  const body = h(
    "div",
    { class: "wf-body" },
    descHost,
    pauseControls(wf, changed),
    migrateControls(wf),
    h(
      "div",
      { class: "wf-meta" },
      h("div", null, h("div", { class: "subhead" }, "Triggers"), trigHost, debounceInfo(wf)),
      h("div", null, h("div", { class: "subhead" }, "Runs, last 24 hours"), counts(wf)),
    ),
    h("div", { class: "subhead" }, "Steps"),
    dagHost,
    h("div", { class: "subhead" }, "Versions"),
    h(
      "div",
      { class: "table-wrap" },
      table(["Version", "Content hash", "Loaded", "Source file"], rows),
    ),
  );
  const el = card(
    [
      h("span", { class: "wf-title" }, wf.name),
      h("span", { class: "muted small" }, ` latest v${wf.latest_version}`),
      wf.paused ? [" ", statusBadge("paused")] : null,
    ],
    body,
    {
      id: `wf-${wf.name}`,
      class: "workflow-card",
      actions: h(
        "a",
        { href: `/ui/runs?workflow=${encodeURIComponent(wf.name)}`, class: "small" },
        "Runs →",
      ),
    },
  );
  el.dataset.workflow = wf.name;
  if (latest) showVersion(latest);
  return el;
}

export async function workflowsPage(ctx: PageContext): Promise<void> {
  ctx.title("Workflows");
  replace(ctx.root, h("div", { class: "page-head" }, h("h1", null, "Workflows")), loading());
  let list: WorkflowInfo[];
  try {
    list = await api.workflows();
  } catch (e) {
    replace(
      ctx.root,
      h("div", { class: "page-head" }, h("h1", null, "Workflows")),
      errorBox(e instanceof ApiError ? e.message : String(e)),
    );
    return;
  }
  if (!ctx.alive()) return;
  const want = ctx.query.get("name");
  const cards = list.map((w) => workflowCard(w, () => void (ctx.alive() && workflowsPage(ctx))));
  replace(
    ctx.root,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Workflows"),
      h("span", { class: "muted" }, `${list.length} loaded`),
    ),
    list.length
      ? null
      : infoBox("No workflows are loaded. Put YAML files in the --workflows directory."),
    h(
      "nav",
      { class: "wf-index" },
      list.map((w) =>
        h(
          "a",
          {
            href: `/ui/workflows?name=${encodeURIComponent(w.name)}`,
            class: w.name === want ? "active" : "",
          },
          w.name,
        ),
      ),
    ),
    cards,
  );
  if (want) {
    const target = cards.find((c) => c.dataset.workflow === want);
    target?.classList.add("highlight");
    target?.scrollIntoView({ block: "start" });
  }
}
