// Reviews: the doctors' worklist. Pending reviews with the chart summary and due time, soonest
// due first and coloured by urgency (overdue red, due today orange); the assignee by name when
// the chart names the practitioner. Approve or reject with a comment (POST
// /v1/reviews/{id}/decision), which signals the waiting step of the chart's run. Patient names
// appear here as text, never in URLs. An admin
// deciding for the assigned doctor must say why (the server refuses it otherwise, and the
// audit trail records the reason).
import { api, ApiError, type Json, type Review } from "../api";
import {
  button,
  chartLink,
  errorBox,
  infoBox,
  runLink,
  statusBadge,
  timeCell,
  toast,
} from "../components";
import { h, replace } from "../dom";
import { fmtAgo, fmtTime, localDate, parseTime } from "../format";
import { setQuery, type PageContext } from "../router";
import { field, select, textFilter } from "../filters";
import { isAdmin } from "../session";

const POLL_MS = 5000;
const STATUSES: [string, string][] = [
  ["pending", "Pending"],
  ["escalated", "Escalated"],
  ["approved", "Approved"],
  ["rejected", "Rejected"],
  ["", "All"],
];

function str(v: Json | undefined): string | null {
  return typeof v === "string" && v ? v : typeof v === "number" ? String(v) : null;
}

// How pressing an open review is: overdue, due today (local calendar day), or later. Decided
// reviews and reviews without a due time are "none".
export type Urgency = "overdue" | "today" | "later" | "none";

function isOpen(r: Review): boolean {
  return r.status === "pending" || r.status === "escalated";
}

export function urgencyOf(r: Review, now = new Date()): Urgency {
  const d = parseTime(r.due_at);
  if (!d || !isOpen(r)) return "none";
  if (d.getTime() < now.getTime()) return "overdue";
  return localDate(d) === localDate(now) ? "today" : "later";
}

// Soonest due first; reviews without a due time last, then newest first.
function byDue(a: Review, b: Review): number {
  const da = parseTime(a.due_at)?.getTime() ?? Infinity;
  const db = parseTime(b.due_at)?.getTime() ?? Infinity;
  if (da !== db) return da < db ? -1 : 1;
  return b.id - a.id;
}

function assigneeCell(r: Review): HTMLElement {
  const name = r.assignee_name;
  return h(
    "span",
    { class: "review-assignee" },
    "Assignee ",
    h("strong", { class: "assignee-name" }, name || r.assignee || "—"),
    name && r.assignee ? h("span", { class: "muted" }, ` (${r.assignee})`) : null,
  );
}

function dueCell(due: string | null): HTMLElement {
  const d = parseTime(due);
  if (!d) return h("span", { class: "muted" }, "no due time");
  const overdue = d.getTime() < Date.now();
  return h(
    "span",
    { class: overdue ? "due overdue" : "due", title: due ?? "" },
    overdue
      ? `overdue by ${fmtAgo(due).replace(" ago", "")}`
      : `due ${fmtAgo(due)} · ${fmtTime(due)}`,
  );
}

export async function reviewsPage(ctx: PageContext): Promise<void> {
  ctx.title("Reviews");
  const status = select("status", STATUSES, ctx.query.get("status") ?? "pending", "Status");
  const assignee = textFilter("assignee", ctx.query.get("assignee") ?? "", "assignee", "search");
  const form = h(
    "form",
    { class: "filters" },
    field("Status", status),
    field("Assignee", assignee, "grow"),
    h(
      "div",
      { class: "filter-buttons" },
      h("button", { type: "submit", class: "btn primary" }, "Show"),
    ),
  );
  const list = h("div", { class: "worklist" });
  const count = h("span", { class: "muted" });
  const errorHost = h("div");
  replace(
    ctx.root,
    h("div", { class: "page-head" }, h("h1", null, "Reviews"), count),
    form,
    errorHost,
    list,
  );

  const comments = new Map<number, string>();
  let lastKey = "";
  let unavailable = false;

  const decide = async (
    r: Review,
    decision: "approve" | "reject",
    comment: string,
    reason: string,
    el: HTMLElement,
  ) => {
    el.querySelectorAll("button").forEach((b) => ((b as HTMLButtonElement).disabled = true));
    try {
      const body: Json = { decision, comment };
      if (isAdmin()) body.reason = reason;
      await api.post(`/v1/reviews/${r.id}/decision`, body);
      toast(`Review #${r.id} ${decision === "approve" ? "approved" : "rejected"}`);
      comments.delete(r.id);
      el.classList.add("decided");
    } catch (e) {
      toast(`Decision failed: ${e instanceof ApiError ? e.message : String(e)}`, "error");
      el.querySelectorAll("button").forEach((b) => ((b as HTMLButtonElement).disabled = false));
    }
    lastKey = "";
    await load();
  };

  const reviewCard = (r: Review): HTMLElement => {
    const sm = r.summary ?? {};
    const patient = str(sm.patient);
    const encounter = str(sm.encounter);
    const start = str(sm.encounter_start);
    const comment = h(
      "textarea",
      { name: "comment", rows: 2, placeholder: "Comment (optional)", "aria-label": "Comment" },
      comments.get(r.id) ?? "",
    );
    comment.addEventListener("input", () => comments.set(r.id, comment.value));
    const reason = h("input", {
      name: "reason",
      type: "text",
      placeholder: "Reason for deciding in the doctor's place (required)",
      "aria-label": "Reason",
    }) as HTMLInputElement;
    const el = h(
      "article",
      {
        class: `review urgency-${urgencyOf(r)}`,
        "data-review-id": r.id,
        "data-chart-id": r.chart_id,
        "data-status": r.status,
        "data-urgency": urgencyOf(r),
      },
      h(
        "header",
        null,
        h(
          "div",
          { class: "review-patient" },
          patient ?? h("span", { class: "muted" }, "Unnamed patient"),
        ),
        statusBadge(r.status),
      ),
      h(
        "div",
        { class: "review-meta" },
        h("span", null, "Chart ", chartLink(r.chart_id)),
        encounter
          ? h(
              "span",
              null,
              encounter,
              start ? h("span", { class: "muted" }, ` · ${fmtTime(start)}`) : null,
            )
          : null,
        assigneeCell(r),
        isOpen(r) ? dueCell(r.due_at) : null,
        r.escalations ? h("span", { class: "muted" }, `escalated ${r.escalations}×`) : null,
        h("span", { class: "muted" }, "Requested ", timeCell(r.created_at)),
        r.run_id ? h("span", null, "Run ", runLink(r.run_id)) : null,
      ),
    );
    if (isOpen(r)) {
      el.appendChild(
        h(
          "div",
          { class: "review-decide" },
          comment,
          isAdmin() ? reason : null,
          h(
            "div",
            { class: "review-buttons" },
            button(
              "Approve",
              "success",
              () => void decide(r, "approve", comment.value, reason.value, el),
              { "data-action": "approve" },
            ),
            button(
              "Reject",
              "danger-outline",
              () => void decide(r, "reject", comment.value, reason.value, el),
              { "data-action": "reject" },
            ),
          ),
        ),
      );
    } else if (r.decision) {
      el.appendChild(h("div", { class: "muted small" }, `Decision: ${r.decision}`));
    }
    return el;
  };

  const load = async () => {
    let reviews: Review[];
    try {
      reviews = await api.reviews({
        status: status.value,
        assignee: assignee.value.trim(),
        limit: 200,
      });
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) {
        if (!unavailable)
          replace(
            list,
            infoBox(
              "This server has no review API (GET /v1/reviews): the chart workflow is not installed.",
            ),
          );
        unavailable = true;
        return;
      }
      replace(errorHost, errorBox(e instanceof ApiError ? e.message : String(e)));
      return;
    }
    if (!ctx.alive()) return;
    unavailable = false;
    errorHost.textContent = "";
    reviews = [...reviews].sort(byDue);
    // Urgency changes with the clock, so it is part of what decides a redraw.
    const key = JSON.stringify(
      reviews.map((r) => [r.id, r.status, r.due_at, r.escalations, r.assignee, urgencyOf(r)]),
    );
    if (key === lastKey) return;
    lastKey = key;
    count.textContent = `${reviews.length} ${status.value || "total"}`;
    replace(
      list,
      reviews.length
        ? reviews.map(reviewCard)
        : h(
            "div",
            { class: "empty-state" },
            status.value === "pending"
              ? "No reviews are waiting. All caught up."
              : "No reviews match.",
          ),
    );
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (status.value !== "pending") p.set("status", status.value);
    if (assignee.value.trim()) p.set("assignee", assignee.value.trim());
    setQuery(p);
    lastKey = "";
    void load();
  });
  status.addEventListener("change", () => form.requestSubmit());

  ctx.every(POLL_MS, load);
}
