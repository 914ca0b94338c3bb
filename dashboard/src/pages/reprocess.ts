// Reprocess (POST /v1/reprocess, issue #17 item 3): select runs (workflow, time range, status,
// chart, failed step), see the blast radius in a dry run (how many runs and charts, and per step
// what re-running would do to ledger, insurer notifications and bills), then start the job and
// follow its progress, with a cancel. Start sends exactly the selection the dry run answered.
import { api, ApiError, type Json } from "../api";
import { button, card, chartLink, runLink, table, toast } from "../components";
import { h, replace } from "../dom";
import type { PageContext } from "../router";

interface Effect {
  step: string;
  effect: string;
  action: string;
  count: number;
  runs: number;
}

interface DryRun {
  workflow: string;
  version: number;
  runs: number;
  charts: number;
  run_ids: number[];
  chart_ids: string[];
  previewed: number;
  effects: Effect[];
}

interface Job {
  id: number;
  workflow: string;
  status: string;
  total: number;
  started: number;
}

const POLL_MS = 1000;

function input(name: string, label: string, placeholder = ""): HTMLInputElement {
  return h("input", { type: "text", name, placeholder, "aria-label": label });
}

function checkbox(name: string): HTMLInputElement {
  return h("input", { type: "checkbox", name });
}

function effectsTable(d: DryRun): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    table(
      ["Step", "Side effect", "Would", "Count", "Runs"],
      d.effects.map((e) =>
        h(
          "tr",
          { "data-effect": `${e.step}/${e.effect}/${e.action}` },
          h("td", null, h("strong", null, e.step)),
          h("td", null, e.effect.replace(/_/g, " ")),
          h("td", null, e.action.replace(/_/g, " ")),
          h("td", { class: "num" }, String(e.count)),
          h("td", { class: "num" }, String(e.runs)),
        ),
      ),
      "No side effect outside chartflow.",
    ),
  );
}

export function reprocessPage(ctx: PageContext): void {
  ctx.title("Reprocess");
  const workflow = input("workflow", "Workflow", "workflow (required)");
  workflow.value = ctx.query.get("workflow") ?? "";
  const from = input("from", "Created from", "from (2026-01-31T00:00:00Z)");
  const to = input("to", "Created before", "to");
  const status = input("status", "Run statuses", "statuses: failed, succeeded");
  const chart = input("chart_id", "Chart id", "chart id");
  chart.value = ctx.query.get("chart") ?? "";
  const failedStep = input("failed_step", "Failed step", "failed or parked step");
  const resend = checkbox("resend");
  const force = checkbox("force");
  const reason = input("reason", "Reason for forcing", "reason (needed with force)");
  const result = h("div", { "data-testid": "reprocess-result" });
  const progress = h("div", { "data-testid": "reprocess-progress" });
  let planned: { [k: string]: Json } | null = null;

  const body = (): { [k: string]: Json } => {
    const b: { [k: string]: Json } = { workflow: workflow.value.trim() };
    const text: [HTMLInputElement, string][] = [
      [from, "from"],
      [to, "to"],
      [chart, "chart_id"],
      [failedStep, "failed_step"],
    ];
    for (const [el, key] of text) if (el.value.trim()) b[key] = el.value.trim();
    const statuses = status.value.split(/[,\s]+/).filter(Boolean);
    if (statuses.length) b.status = statuses;
    if (resend.checked) b.resend = true;
    if (force.checked) b.force = true;
    if (reason.value.trim()) b.reason = reason.value.trim();
    return b;
  };

  const fail = (host: HTMLElement, e: unknown) =>
    replace(
      host,
      h(
        "div",
        { class: "notice error", role: "alert" },
        e instanceof ApiError ? e.message : String(e),
      ),
    );

  const follow = (id: number) => {
    const show = (job: Job) => {
      const cancel =
        job.status === "running"
          ? button(
              "Cancel",
              "ghost",
              async () => {
                try {
                  show(await api.post<Job>(`/v1/reprocess/${id}/cancel`));
                  toast(`Reprocess job ${id} cancelled`);
                } catch (e) {
                  fail(progress, e);
                }
              },
              { "data-action": "cancel-reprocess" },
            )
          : null;
      replace(
        progress,
        h(
          "p",
          { "data-job": id, "data-status": job.status },
          `Job ${id}: `,
          h("strong", { "data-testid": "reprocess-status" }, job.status),
          `, ${job.started} of ${job.total} run(s) started `,
          h("progress", { max: Math.max(job.total, 1), value: job.started }),
          " ",
          cancel,
        ),
      );
    };
    ctx.every(POLL_MS, async () => {
      try {
        show(await api.get<Job>(`/v1/reprocess/${id}`));
      } catch (e) {
        fail(progress, e);
      }
    });
  };

  const dryRun = async () => {
    planned = null;
    replace(progress);
    try {
      const sent = body();
      const d = await api.post<DryRun>("/v1/reprocess", { ...sent, dry_run: true });
      planned = sent;
      replace(
        result,
        h(
          "p",
          { class: "small", "data-testid": "reprocess-summary" },
          `${d.runs} run(s) of ${d.charts} chart(s) would start again at ${d.workflow} v${d.version}.`,
          d.previewed < d.runs ? ` Side effects previewed for the first ${d.previewed}.` : "",
        ),
        d.chart_ids.length
          ? h("p", { class: "small" }, "Charts: ", ...d.chart_ids.map((c) => [chartLink(c), " "]))
          : null,
        d.run_ids.length
          ? h("p", { class: "small" }, "Runs: ", ...d.run_ids.map((r) => [runLink(r), " "]))
          : null,
        effectsTable(d),
        d.runs > 0
          ? button(`Start ${d.runs} run${d.runs === 1 ? "" : "s"}`, "primary", () => void start(), {
              "data-action": "start-reprocess",
            })
          : null,
      );
    } catch (e) {
      fail(result, e);
    }
  };

  const start = async () => {
    if (!planned) return;
    try {
      const job = await api.post<Job>("/v1/reprocess", { ...planned, dry_run: false });
      toast(`Reprocess job ${job.id} started`);
      follow(job.id);
    } catch (e) {
      fail(progress, e);
    }
  };

  // A dry run holds for the selection it was made with only.
  for (const el of [workflow, from, to, status, chart, failedStep, resend, force, reason])
    el.addEventListener("change", () => {
      planned = null;
      replace(result);
    });

  ctx.root.append(
    card(
      "Reprocess runs",
      h(
        "div",
        { class: "reprocess-form" },
        h(
          "p",
          { class: "muted small" },
          "A new run of the workflow's latest version for each selected run's event. Ledger " +
            "entries already present are skipped; insurer notifications go out again only with " +
            "resend; bills already sent only when forced, with a reason.",
        ),
        h("div", { class: "filters" }, workflow, from, to, status, chart, failedStep),
        h(
          "div",
          { class: "filters" },
          h("label", null, resend, " resend insurer notifications"),
          h("label", null, force, " force bills again"),
          reason,
          button("Dry run", "", () => void dryRun(), { "data-action": "reprocess-dry-run" }),
        ),
        result,
        progress,
      ),
    ),
  );
}
