// Retention: how long finished runs and logs are kept, the archive and log partitions that
// expiry drops whole, and the holds that keep a subject's runs past expiry (a litigation hold,
// say). Admins place a hold, release one with a reason, and preview what the next expiry would
// drop (a dry run: the dashboard never expires anything itself). Operators see the lists only.
import {
  api,
  ApiError,
  type ExpiredPartition,
  type RetentionHold,
  type RetentionInfo,
  type RetentionPartition,
  type RetentionSettings,
} from "../api";
import {
  button,
  card,
  chartLink,
  errorBox,
  kv,
  loading,
  table,
  timeCell,
  toast,
} from "../components";
import { h, replace } from "../dom";
import { field } from "../filters";
import { fmtBytes, fmtCount } from "../format";
import type { PageContext } from "../router";
import { isAdmin } from "../session";

const HOLD_COLUMNS = ["Subject", "Reason", "Held by", "Since"];
const PARTITION_COLUMNS = [
  "Class",
  "Table",
  "Partition",
  "From",
  "To",
  "Size",
  "Rows (est.)",
  "Held",
];
const EXPIRED_COLUMNS = ["Class", "Partition", "Until", "Size", "Rows (est.)", "Held runs"];

function message(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

function settingsList(s: RetentionSettings): HTMLElement {
  return kv([
    ["Runs archived after", h("span", { "data-setting": "archive_after" }, s.archive_after)],
    ["Finished runs kept for", h("span", { "data-setting": "runs" }, s.runs)],
    ["Logs kept for", h("span", { "data-setting": "logs" }, s.logs)],
  ]);
}

function partitionRow(p: RetentionPartition): HTMLTableRowElement {
  return h(
    "tr",
    { "data-partition": p.partition, "data-class": p.class },
    h("td", null, p.class),
    h("td", null, h("span", { class: "mono" }, p.table)),
    h("td", null, h("span", { class: "mono" }, p.partition)),
    h("td", null, p.from ?? "—"),
    h("td", null, p.to ?? "—"),
    h("td", { class: "num" }, fmtBytes(p.bytes)),
    h("td", { class: "num" }, fmtCount(p.rows_estimate)),
    h("td", null, p.held ? h("span", { class: "badge held" }, "held") : ""),
  );
}

function partitionsTable(partitions: RetentionPartition[]): HTMLTableElement {
  const t = table(PARTITION_COLUMNS, partitions.map(partitionRow), "No partition yet.");
  t.classList.add("retention-table");
  return t;
}

function expiredRow(d: ExpiredPartition): HTMLTableRowElement {
  return h(
    "tr",
    { "data-partition": d.partition, "data-class": d.class },
    h("td", null, d.class),
    h("td", null, h("span", { class: "mono" }, d.partition)),
    h("td", null, timeCell(d.until)),
    h("td", { class: "num" }, fmtBytes(d.bytes)),
    h("td", { class: "num" }, fmtCount(d.rows_estimate)),
    h("td", { class: "num" }, d.held_runs),
  );
}

// The dry run's answer: the partitions the next expiry would drop and their total size.
function expiryPreview(dropped: ExpiredPartition[], bytes: number): HTMLElement {
  const held = dropped.reduce((n, d) => n + d.held_runs, 0);
  return h(
    "div",
    { class: "expiry-preview", "data-dropped": dropped.length, "data-bytes": bytes },
    h(
      "p",
      { class: "small" },
      dropped.length
        ? `The next expiry would drop ${dropped.length} partition(s), ${fmtBytes(bytes)} in all.`
        : `The next expiry would drop nothing (${fmtBytes(bytes)}): no partition is past its retention.`,
      held ? ` ${held} run(s) under a hold would move to the held partitions instead.` : "",
    ),
    dropped.length
      ? h("div", { class: "table-wrap" }, table(EXPIRED_COLUMNS, dropped.map(expiredRow)))
      : null,
  );
}

export async function retentionPage(ctx: PageContext): Promise<void> {
  ctx.title("Retention");
  const admin = isAdmin();
  const errorHost = h("div");
  const settingsHost = h("div", null, loading());
  const holdsHost = h("div", { class: "table-wrap" }, loading());
  const partitionsHost = h("div", { class: "table-wrap" }, loading());
  const previewHost = h("div");

  const load = async () => {
    let info: RetentionInfo;
    try {
      info = await api.retention();
    } catch (e) {
      replace(errorHost, errorBox(message(e)));
      return;
    }
    if (!ctx.alive()) return;
    errorHost.textContent = "";
    replace(settingsHost, settingsList(info.settings));
    replace(holdsHost, holdsTable(info.holds));
    replace(partitionsHost, partitionsTable(info.partitions));
  };

  // An admin's change, then the lists again. A refusal shows in the error box; when it says the
  // lists are stale (404: not held, 409: held already) they are loaded again first.
  const change = async (
    btn: HTMLButtonElement,
    what: string,
    done: string,
    send: () => Promise<unknown>,
  ): Promise<boolean> => {
    btn.disabled = true;
    errorHost.textContent = "";
    try {
      await send();
    } catch (e) {
      btn.disabled = false;
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) await load();
      replace(errorHost, errorBox(`${what} failed: ${message(e)}`));
      return false;
    }
    btn.disabled = false;
    toast(done);
    await load();
    return true;
  };

  // A release needs a reason, entered beside the button as a parked step's skip reason is.
  const releaseControls = (subject: string): HTMLElement => {
    const reason = h("input", {
      name: "reason",
      type: "text",
      maxlength: 1000,
      autocomplete: "off",
      placeholder: "why the hold can end (required)",
      "aria-label": `Reason to release the hold on ${subject}`,
    });
    const err = h("div", { class: "form-error", role: "alert" });
    const release = button(
      "Release",
      "danger-outline",
      () => {
        err.textContent = "";
        if (!reason.value.trim()) {
          err.textContent = "A release needs a reason.";
          reason.focus();
          return;
        }
        void change(release, `Release of ${subject}`, `Hold on ${subject} released`, () =>
          api.releaseHold(subject, reason.value.trim()),
        );
      },
      { "data-action": "release-hold" },
    );
    return h("div", { class: "release-hold" }, reason, release, err);
  };

  const holdRow = (hold: RetentionHold): HTMLTableRowElement =>
    h(
      "tr",
      { "data-subject": hold.subject },
      h("td", null, chartLink(hold.subject)),
      h("td", { class: "wrap" }, hold.reason),
      h("td", null, hold.held_by),
      h("td", null, timeCell(hold.created_at)),
      admin ? h("td", null, releaseControls(hold.subject)) : null,
    );

  const holdsTable = (holds: RetentionHold[]): HTMLTableElement => {
    const t = table(
      admin ? [...HOLD_COLUMNS, ""] : HOLD_COLUMNS,
      holds.map(holdRow),
      "No hold: every subject's runs expire on schedule.",
    );
    t.classList.add("holds-table");
    return t;
  };

  const holdForm = (): HTMLFormElement => {
    const subject = h("input", {
      name: "subject",
      type: "text",
      maxlength: 200,
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "subject, e.g. a chart id",
    });
    const reason = h("input", {
      name: "reason",
      type: "text",
      maxlength: 1000,
      autocomplete: "off",
      placeholder: "why its runs must be kept (required)",
    });
    const err = h("div", { class: "form-error", role: "alert" });
    const submit = h(
      "button",
      { type: "submit", class: "btn primary", "data-action": "hold" },
      "Hold",
    );
    const place = async () => {
      err.textContent = "";
      const s = subject.value.trim();
      if (!s || !reason.value.trim()) {
        err.textContent = "A hold needs a subject and a reason.";
        (s ? reason : subject).focus();
        return;
      }
      if (
        await change(submit, `Hold on ${s}`, `Hold placed on ${s}`, () =>
          api.hold(s, reason.value.trim()),
        )
      ) {
        subject.value = "";
        reason.value = "";
      }
    };
    return h(
      "form",
      {
        class: "hold-form",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void place();
        },
      },
      field("Subject", subject),
      field("Reason", reason, "grow"),
      submit,
      err,
    );
  };

  const preview = button(
    "Preview next expiry",
    "",
    () => {
      preview.disabled = true;
      errorHost.textContent = "";
      void api
        .previewExpiry()
        .then((r) => replace(previewHost, expiryPreview(r.dropped, r.bytes)))
        .catch((e: unknown) => {
          replace(previewHost);
          replace(errorHost, errorBox(`Preview failed: ${message(e)}`));
        })
        .finally(() => {
          preview.disabled = false;
        });
    },
    {
      "data-action": "preview-expiry",
      title: "A dry run: lists what the next expiry would drop; nothing is dropped",
    },
  );

  replace(
    ctx.root,
    h("div", { class: "page-head" }, h("h1", null, "Retention")),
    h(
      "p",
      { class: "muted" },
      "Finished runs move to the archive, whose months are dropped once past retention, as are " +
        "old log days. A hold keeps a subject's runs past expiry until an admin releases it.",
      admin ? "" : " Only admins place or release holds and preview expiry.",
    ),
    errorHost,
    card("Settings", settingsHost),
    card("Holds", [holdsHost, admin ? holdForm() : null], { class: "flush holds-card" }),
    card("Partitions", partitionsHost, { class: "flush" }),
    admin
      ? card(
          "Next expiry",
          [
            h(
              "p",
              { class: "muted small" },
              "What the next expiry would drop, from a dry run; nothing is dropped here.",
            ),
            previewHost,
          ],
          { actions: preview, class: "expiry-card" },
        )
      : null,
  );
  await load();
}
