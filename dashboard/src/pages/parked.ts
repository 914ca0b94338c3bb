// Parked steps: those whose attempts ran out under on_exhausted: park and that wait for an
// operator, longest waiting first. Retry one (or all shown, once their cause is fixed, e.g. an
// insurer back up); skip or fail one from its run page, where a skip's reason is entered.
import { api, ApiError, type ParkedStep } from "../api";
import {
  button,
  card,
  chartLink,
  emptyRow,
  errorBox,
  runLink,
  statusBadge,
  timeCell,
  toast,
} from "../components";
import { h, replace } from "../dom";
import { between, fmtDuration } from "../format";
import type { PageContext } from "../router";

const POLL_MS = 5000;
const COLUMNS = ["Run", "Workflow", "Step", "Chart", "Parked since", "Attempts", "Error", ""];

export async function parkedPage(ctx: PageContext): Promise<void> {
  ctx.title("Parked");
  const tbody = h("tbody", null, emptyRow(COLUMNS.length, "Loading…"));
  const errorHost = h("div");
  const total = h("span", { class: "muted small", "data-parked-total": "" });
  let shown: ParkedStep[] = [];
  let confirmingAll = false;

  const retry = async (steps: ParkedStep[]) => {
    let ok = 0;
    for (const s of steps) {
      try {
        await api.decideParked(s.run_id, s.step, "retry");
        ok++;
      } catch (e) {
        toast(
          `Retry ${s.step} of run #${s.run_id} failed: ${e instanceof ApiError ? e.message : String(e)}`,
          "error",
        );
      }
    }
    if (ok) toast(`${ok} step(s) requeued`);
    await load();
  };

  const retryAll = button("Retry all shown", "ghost", () => {
    if (!confirmingAll) {
      confirmingAll = true;
      retryAll.textContent = `Confirm: retry ${shown.length}`;
      return;
    }
    confirmingAll = false;
    retryAll.textContent = "Retry all shown";
    void retry(shown);
  });
  retryAll.setAttribute("data-action", "retry-all");

  const row = (s: ParkedStep) =>
    h(
      "tr",
      { "data-run-id": s.run_id, "data-step": s.step },
      h("td", null, runLink(s.run_id), " ", statusBadge(s.run_status)),
      h("td", null, h("span", { class: "wf-name" }, s.workflow)),
      h(
        "td",
        null,
        h("strong", null, s.step),
        h("span", { class: "muted small" }, ` ${s.handler ?? ""}`),
      ),
      h("td", null, chartLink(s.subject)),
      h(
        "td",
        null,
        timeCell(s.parked_at),
        s.parked_at
          ? h(
              "div",
              { class: "muted small" },
              `${fmtDuration(between(s.parked_at, new Date().toISOString()))} ago`,
            )
          : null,
      ),
      h("td", { class: "num" }, s.attempts ?? "—"),
      h("td", { class: "error-cell wrap", title: s.error ?? "" }, s.error ?? ""),
      h(
        "td",
        { class: "parked-actions" },
        button("Retry now", "primary", () => void retry([s]), { "data-action": "retry-step" }),
        h(
          "a",
          { href: `/ui/runs/${s.run_id}`, class: "btn ghost", "data-action": "decide" },
          "Skip or fail…",
        ),
      ),
    );

  const load = async () => {
    let parked;
    try {
      parked = await api.parked();
    } catch (e) {
      replace(errorHost, errorBox(e instanceof ApiError ? e.message : String(e)));
      return;
    }
    if (!ctx.alive()) return;
    errorHost.textContent = "";
    shown = parked.steps;
    total.textContent =
      parked.total > shown.length
        ? `${parked.total} parked, the ${shown.length} longest waiting shown`
        : `${parked.total} parked`;
    retryAll.disabled = shown.length === 0;
    replace(
      tbody,
      shown.length
        ? shown.map(row)
        : emptyRow(COLUMNS.length, "No step is parked: every run is moving or done."),
    );
  };

  replace(
    ctx.root,
    h("div", { class: "page-head" }, h("h1", null, "Parked steps"), total),
    h(
      "p",
      { class: "muted" },
      "Steps whose retries ran out (on_exhausted: park). Each holds its run, not a worker, until an operator acts.",
    ),
    errorHost,
    card(
      "Waiting for an operator",
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "grid parked-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              COLUMNS.map((c) => h("th", null, c)),
            ),
          ),
          tbody,
        ),
      ),
      { class: "flush", actions: retryAll },
    ),
  );
  ctx.every(POLL_MS, load);
}
