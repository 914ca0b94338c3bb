// Audit trail (admins): who did what to which resource, when, from where, with what outcome,
// newest first, filtered by actor, action and time range; exportable as FHIR AuditEvents.
import { api, ApiError, type AuditRecord } from "../api";
import { errorBox, timeCell } from "../components";
import { h, replace } from "../dom";
import { setQuery, type PageContext } from "../router";
import { field, textFilter } from "../filters";

const FILTERS = ["actor", "action", "since", "until"] as const;

function row(e: AuditRecord): HTMLTableRowElement {
  return h(
    "tr",
    { "data-audit-id": e.id, "data-outcome": e.outcome },
    h("td", null, timeCell(e.at)),
    h("td", null, e.actor_name ?? e.actor, h("div", { class: "muted" }, e.actor)),
    h("td", null, e.role ?? "—"),
    h("td", null, h("code", null, e.action)),
    h("td", null, e.resource_type ? `${e.resource_type} ${e.resource_id ?? ""}` : "—"),
    h("td", null, e.remote ?? "—"),
    h("td", null, h("span", { class: `badge outcome-${e.outcome}` }, e.outcome)),
  );
}

export async function auditPage(ctx: PageContext): Promise<void> {
  ctx.title("Audit trail");
  const inputs = Object.fromEntries(
    FILTERS.map((name) => [
      name,
      textFilter(
        name,
        ctx.query.get(name) ?? "",
        name === "since" || name === "until" ? "HH:MM or RFC 3339" : name,
        "search",
      ),
    ]),
  ) as Record<(typeof FILTERS)[number], HTMLInputElement>;
  const body = h("tbody");
  const status = h("div", { class: "audit-status" });
  const exportLink = h("a", { href: "/v1/audit?format=fhir", class: "btn" }, "FHIR export");
  const query = () => {
    const q: Record<string, string> = {};
    for (const name of FILTERS) if (inputs[name].value.trim()) q[name] = inputs[name].value.trim();
    return q;
  };
  const load = async () => {
    const q = query();
    setQuery(new URLSearchParams(q));
    exportLink.setAttribute(
      "href",
      `/v1/audit?${new URLSearchParams({ ...q, format: "fhir" }).toString()}`,
    );
    try {
      const r = await api.audit({ ...q, limit: 200 });
      if (!ctx.alive()) return;
      replace(body, r.events.map(row));
      replace(status, r.events.length ? "" : h("p", { class: "muted" }, "No records match."));
    } catch (e) {
      replace(body);
      replace(status, errorBox(e instanceof ApiError ? e.message : String(e)));
    }
  };
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void load();
      },
    },
    FILTERS.map((name) => field(name[0].toUpperCase() + name.slice(1), inputs[name])),
    h("button", { type: "submit", class: "btn primary" }, "Search"),
    exportLink,
  );
  replace(
    ctx.root,
    h("div", { class: "page-head" }, h("h1", null, "Audit trail")),
    form,
    status,
    h(
      "table",
      { class: "grid audit-table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["When", "Who", "Role", "Action", "Resource", "From", "Outcome"].map((t) =>
            h("th", null, t),
          ),
        ),
      ),
      body,
    ),
  );
  await load();
}
