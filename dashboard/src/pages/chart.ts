// One chart: the patient's name and birth date beside the chart id (when the API sends them:
// not to billing), revisions with who uploaded them, open questions, the latest review, the bill
// and the ledger total with their currency, and the chart's runs (runs whose subject is the chart
// id). The chart id is an opaque id, so it may appear in the URL; chart content is shown as text
// only, never in the URL.
import { api, ApiError, type Json } from "../api";
import {
  card,
  errorBox,
  infoBox,
  jsonView,
  kv,
  loading,
  runLink,
  statusBadge,
  table,
  timeCell,
} from "../components";
import { h, replace, token } from "../dom";
import { fmtDuration, fmtMoney } from "../format";
import type { PageContext } from "../router";

type Obj = { [key: string]: Json };

function obj(v: Json | undefined): Obj | null {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : null;
}
function arr(v: Json | undefined): Obj[] {
  return Array.isArray(v) ? (v.filter((x) => obj(x)) as Obj[]) : [];
}
function text(v: Json | undefined): string {
  if (v === null || v === undefined) return "—";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
function time(v: Json | undefined): HTMLElement {
  return timeCell(typeof v === "string" ? v : null);
}

function num(v: Json | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
function str(v: Json | undefined): string | null {
  return typeof v === "string" && v ? v : null;
}

// Who uploaded a revision: the API sends the credential's stable id ("token:3", "user:ana") or a
// source's name. A user's id holds the name; a token's name is in the audit trail (the upload's
// own record), which only an admin may read. Otherwise the id is shown.
// The server names the credential behind each revision (`uploaded_by_name`); the id stays in
// the tooltip for matching against the audit trail.
function uploaderCell(r: Obj): HTMLElement {
  const id = str(r.uploaded_by);
  const name = str(r.uploaded_by_name);
  if (!id) return h("td", { class: "uploader" }, "—");
  if (!name) return h("td", { class: "uploader" }, id);
  return h("td", { class: "uploader" }, h("span", { class: "uploader-name", title: id }, name));
}

const KNOWN = new Set([
  "chart_id",
  "patient",
  "patient_ref",
  "latest_revision",
  "created_at",
  "updated_at",
  "revisions",
  "open_questions",
  "review",
  "bill",
  "ledger_total",
  "ledger_entries",
  "ledger_currency",
  "runs",
]);

export async function chartPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0];
  ctx.title(`Chart ${id}`);
  replace(ctx.root, loading());
  const runsHost = h("div", { class: "table-wrap" });
  let chart: Obj | null = null;
  let chartError: string | null = null;
  try {
    chart = await api.chart(id);
  } catch (e) {
    chartError =
      e instanceof ApiError
        ? e.status === 404
          ? "No such chart on this server (or the chart API is not installed)."
          : e.message
        : String(e);
  }
  if (!ctx.alive()) return;

  const patient = chart ? obj(chart.patient) : null;
  const patientName = str(patient?.name);
  const birthDate = str(patient?.birth_date);
  const sections: HTMLElement[] = [
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Chart ", h("span", { class: "mono" }, id)),
      patient
        ? h(
            "div",
            { class: "chart-patient" },
            h("span", { class: "chart-patient-name" }, patientName ?? "Unnamed patient"),
            birthDate
              ? h("span", { class: "chart-patient-birth muted" }, `born ${birthDate}`)
              : null,
          )
        : null,
    ),
  ];
  if (chartError) sections.push(infoBox(chartError));
  if (chart) {
    sections.push(
      card(
        "Summary",
        kv([
          ["Patient", h("span", { class: "mono" }, text(chart.patient_ref))],
          ["Latest revision", text(chart.latest_revision)],
          ["Created", time(chart.created_at)],
          ["Updated", time(chart.updated_at)],
          [
            "Ledger",
            h(
              "span",
              { class: "ledger-total" },
              `${text(chart.ledger_entries)} entries, total ${fmtMoney(num(chart.ledger_total), str(chart.ledger_currency))}`,
            ),
          ],
        ]),
      ),
    );
    const review = obj(chart.review);
    if (review) {
      sections.push(
        card(
          "Latest review",
          kv([
            ["Status", statusBadge(text(review.status))],
            [
              "Assignee",
              str(review.assignee_name)
                ? `${text(review.assignee_name)} (${text(review.assignee)})`
                : text(review.assignee),
            ],
            ["Due", time(review.due_at)],
            ["Decision", text(review.decision)],
            ["Comment", h("span", { class: "wrap" }, text(review.comment))],
            ["Run", runLink(typeof review.run_id === "number" ? review.run_id : null)],
          ]),
          { actions: h("a", { href: "/ui/reviews", class: "small" }, "Worklist →") },
        ),
      );
    }
    const questions = arr(chart.open_questions);
    sections.push(
      card(
        `Open questions (${questions.length})`,
        h(
          "div",
          { class: "table-wrap" },
          table(
            ["Severity", "Rule", "Resource", "Question", "Since revision", "Opened"],
            questions.map((q) =>
              h(
                "tr",
                null,
                h(
                  "td",
                  null,
                  h("span", { class: `badge sev-${token(q.severity)}` }, text(q.severity)),
                ),
                h("td", { class: "mono small" }, text(q.rule_id)),
                h("td", { class: "mono small" }, text(q.resource_ref)),
                h("td", { class: "wrap" }, text(q.question)),
                h("td", { class: "num" }, text(q.opened_revision)),
                h("td", null, time(q.created_at)),
              ),
            ),
            "No open questions.",
          ),
        ),
        { class: "flush" },
      ),
    );
    const revisions = arr(chart.revisions);
    sections.push(
      card(
        "Revisions",
        h(
          "div",
          { class: "table-wrap" },
          table(
            ["Revision", "Source", "Uploaded by", "Based on", "Content hash", "Created"],
            revisions.map((r) =>
              h(
                "tr",
                null,
                h("td", { class: "num" }, text(r.revision)),
                h("td", null, text(r.source)),
                uploaderCell(r),
                h("td", { class: "num" }, text(r.based_on_revision)),
                h("td", { class: "mono small" }, text(r.content_hash).slice(0, 12)),
                h("td", null, time(r.created_at)),
              ),
            ),
          ),
        ),
        { class: "flush" },
      ),
    );
    const bill = obj(chart.bill);
    if (bill) {
      sections.push(
        card(
          "Bill",
          kv([
            ["Invoice", h("span", { class: "mono" }, text(bill.invoice_id))],
            ["Status", statusBadge(text(bill.status))],
            [
              "Total",
              h("span", { class: "bill-total" }, fmtMoney(num(bill.total), str(bill.currency))),
            ],
            [
              "Deliveries",
              Array.isArray(bill.deliveries) && bill.deliveries.length
                ? bill.deliveries.map(text).join(", ")
                : "—",
            ],
            ["Created", time(bill.created_at)],
          ]),
        ),
      );
    }
    const rest: Obj = {};
    for (const [k, v] of Object.entries(chart)) if (!KNOWN.has(k)) rest[k] = v;
    if (Object.keys(rest).length) sections.push(card("More", jsonView(rest, 1)));
  }
  sections.push(
    card("Runs of this chart", runsHost, {
      class: "flush",
      actions: h(
        "a",
        { href: `/ui/runs?subject=${encodeURIComponent(id)}`, class: "small" },
        "In the runs list →",
      ),
    }),
  );
  replace(ctx.root, sections);

  const loadRuns = async () => {
    try {
      const page = await api.runs({ subject: id, limit: 100 });
      if (!ctx.alive()) return;
      replace(
        runsHost,
        table(
          ["Run", "Workflow", "Status", "Started", "Duration", "Error"],
          page.items.map((r) =>
            h(
              "tr",
              { "data-run-id": r.id },
              h("td", null, runLink(r.id)),
              h("td", null, r.workflow),
              h("td", null, statusBadge(r.status)),
              h("td", null, timeCell(r.created_at)),
              h("td", { class: "num" }, fmtDuration(r.duration_ms)),
              h("td", { class: "error-cell" }, r.error ?? ""),
            ),
          ),
          "No runs for this chart.",
        ),
      );
    } catch (e) {
      replace(runsHost, errorBox(e instanceof ApiError ? e.message : String(e)));
    }
  };
  ctx.every(3000, loadRuns);
}
