// Small building blocks shared by the pages: status badges, cards, tables, the JSON viewer,
// notices. All text goes through h(), so it is escaped by construction.
import { api, ApiError, type Json } from "./api";
import { h, token, type Attrs, type Child } from "./dom";
import { fmtAgo, fmtTime } from "./format";

export const RUN_STATUSES = [
  "pending",
  "running",
  "waiting",
  "parked",
  "succeeded",
  "failed",
  "cancelled",
];
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export function statusBadge(status: string | null | undefined): HTMLElement {
  const st = status ?? "unknown";
  return h("span", { class: `badge status-${token(st)}`, "data-status": st }, st);
}

export function levelBadge(level: string): HTMLElement {
  return h("span", { class: `badge level-${token(level)}` }, level);
}

export function runLink(id: number | string | null | undefined, label?: string): Child {
  if (id === null || id === undefined || id === "") return "—";
  const n = String(id);
  return h("a", { href: `/ui/runs/${encodeURIComponent(n)}`, class: "mono" }, label ?? `#${n}`);
}

export function chartLink(chartId: string | null | undefined): Child {
  if (!chartId) return h("span", { class: "muted" }, "—");
  return h("a", { href: `/ui/charts/${encodeURIComponent(chartId)}`, class: "mono" }, chartId);
}

export function timeCell(iso: string | null | undefined, ms = false): HTMLElement {
  return h(
    "time",
    { datetime: iso ?? "", title: iso ? `${iso} (${fmtAgo(iso)})` : "" },
    fmtTime(iso, ms),
  );
}

export function card(
  title: Child,
  body: Child,
  extra?: { actions?: Child; id?: string; class?: string },
): HTMLElement {
  return h(
    "section",
    { class: `card ${extra?.class ?? ""}`, id: extra?.id },
    h(
      "header",
      { class: "card-head" },
      h("h2", null, title),
      extra?.actions ? h("div", { class: "card-actions" }, extra.actions) : null,
    ),
    h("div", { class: "card-body" }, body),
  );
}

export function table(
  headers: Child[],
  rows: HTMLTableRowElement[],
  empty = "Nothing to show.",
): HTMLTableElement {
  const tbody = h("tbody", null, rows);
  if (rows.length === 0) tbody.appendChild(emptyRow(headers.length, empty));
  return h(
    "table",
    { class: "grid" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        headers.map((x) => h("th", null, x)),
      ),
    ),
    tbody,
  );
}

export function emptyRow(span: number, text: string): HTMLTableRowElement {
  return h("tr", { class: "empty" }, h("td", { colspan: span }, text));
}

export function errorBox(message: string): HTMLElement {
  return h("div", { class: "notice error", role: "alert" }, message);
}

export function infoBox(message: Child): HTMLElement {
  return h("div", { class: "notice info" }, message);
}

export function loading(): HTMLElement {
  return h("div", { class: "loading" }, "Loading…");
}

export function kv(pairs: [string, Child][]): HTMLElement {
  return h(
    "dl",
    { class: "kv" },
    pairs.map(([k, v]) => [h("dt", null, k), h("dd", null, v ?? "—")]),
  );
}

let toastHost: HTMLElement | null = null;

export function toast(message: string, kind: "ok" | "error" = "ok"): void {
  if (!toastHost) {
    toastHost = h("div", { class: "toasts", "aria-live": "polite" });
    document.body.appendChild(toastHost);
  }
  const el = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    message,
  );
  toastHost.appendChild(el);
  window.setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

// Collapsible, pretty JSON built from <details>: objects and arrays fold, scalars are coloured.
export function jsonView(value: Json | undefined, openDepth = 2): HTMLElement {
  return h("div", { class: "json" }, jsonNode(value ?? null, openDepth, 0));
}

function scalar(value: Json): HTMLElement {
  if (value === null) return h("span", { class: "j-null" }, "null");
  switch (typeof value) {
    case "string":
      return h("span", { class: "j-str" }, JSON.stringify(value));
    case "number":
      return h("span", { class: "j-num" }, String(value));
    case "boolean":
      return h("span", { class: "j-bool" }, String(value));
    default:
      return h("span", null, String(value));
  }
}

function jsonNode(value: Json, openDepth: number, depth: number): HTMLElement {
  if (value === null || typeof value !== "object") return scalar(value);
  const isArray = Array.isArray(value);
  const entries: [string, Json][] = isArray
    ? (value as Json[]).map((v, i) => [String(i), v])
    : Object.entries(value as { [k: string]: Json });
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) return h("span", { class: "j-punct" }, open + close);
  const count = isArray
    ? `${entries.length} item${entries.length === 1 ? "" : "s"}`
    : `${entries.length} key${entries.length === 1 ? "" : "s"}`;
  const details = h(
    "details",
    { class: "j-fold", open: depth < openDepth },
    h(
      "summary",
      null,
      h("span", { class: "j-punct" }, open),
      h("span", { class: "j-count" }, ` ${count} `),
      h("span", { class: "j-punct j-close-inline" }, close),
    ),
    h(
      "div",
      { class: "j-children" },
      entries.map(([k, v]) =>
        h(
          "div",
          { class: "j-row" },
          isArray
            ? null
            : [
                h("span", { class: "j-key" }, JSON.stringify(k)),
                h("span", { class: "j-punct" }, ": "),
              ],
          jsonNode(v, openDepth, depth + 1),
        ),
      ),
    ),
    h("span", { class: "j-punct j-close" }, close),
  );
  return details;
}

// One line of JSON for table cells, truncated.
export function jsonInline(value: Json | undefined, max = 160): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "object" && Object.keys(value).length === 0) return "";
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// A log line's fields for a table cell: one line of JSON, and a Python traceback (the
// `exception` field external handlers send, engine/runtime/external/chartflow_lambda.py) as
// preformatted text below it rather than as an escaped JSON string.
export function logFields(fields: Json | undefined, max = 240): Child {
  if (!fields || typeof fields !== "object" || Array.isArray(fields))
    return jsonInline(fields, max);
  const { exception, ...rest } = fields as { [key: string]: Json };
  if (typeof exception !== "string" || !exception) return jsonInline(fields, max);
  return [
    jsonInline(rest, max),
    h("pre", { class: "log-exception" }, exception.replace(/\n+$/, "")),
  ];
}

export function button(
  label: Child,
  cls: string,
  onClick: (ev: Event) => void,
  attrs: Attrs = {},
): HTMLButtonElement {
  return h("button", { type: "button", class: `btn ${cls}`, ...attrs, onclick: onClick }, label);
}

// Sends an operator command (pause, resume, retry ...) and says in a toast how it went; the
// caller refreshes what it shows afterwards, either way.
export async function postCommand(what: string, path: string, body: Json = {}): Promise<void> {
  try {
    const r = await api.post<{ result?: string }>(path, body);
    toast(`${what}: ${r?.result ?? "done"}`);
  } catch (e) {
    toast(`${what} failed: ${e instanceof ApiError ? e.message : String(e)}`, "error");
  }
}
