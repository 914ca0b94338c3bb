// "Move runs" on the workflows page: moves a workflow's unfinished runs from one version to
// another (POST /v1/workflows/{name}/migrate). A dry run comes first and shows, per run, whether
// it can move, why not, and what would run next; only then does "Move N runs" do it, with the
// same versions and renames the plan was made for.
import { api, ApiError, type Json, type WorkflowInfo } from "../api";
import { button, runLink, table, toast } from "../components";
import { h, replace } from "../dom";

interface PlannedRun {
  run_id: number;
  movable: boolean;
  reason?: string;
  next?: string[];
}

interface MigrationReport {
  runs: PlannedRun[];
  candidates: number;
  movable: number;
  moved: number;
  refused: number;
  more: boolean;
}

// "intake=receive, a=b" -> {intake: "receive", a: "b"}; throws naming a bad entry.
function parseRenames(text: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const [from, to, extra] = part.split("=");
    if (!from || !to || extra !== undefined) throw new Error(`rename "${part}" is not OLD=NEW`);
    map[from] = to;
  }
  return map;
}

function planTable(report: MigrationReport, moved: boolean): HTMLElement {
  const rows = report.runs.map((r) =>
    h(
      "tr",
      { "data-run": r.run_id, "data-movable": String(r.movable) },
      h("td", null, runLink(r.run_id)),
      h("td", null, r.movable ? (moved ? "moved" : "yes") : "no"),
      h("td", { class: "small" }, r.movable ? "" : (r.reason ?? "")),
      h("td", { class: "mono small" }, r.movable ? (r.next ?? []).join(", ") || "—" : ""),
    ),
  );
  return h(
    "div",
    { class: "table-wrap" },
    table(
      ["Run", moved ? "Moved" : "Movable", "Why not", "Runs next"],
      rows,
      "No unfinished runs at this version.",
    ),
  );
}

function versionSelect(wf: WorkflowInfo, name: string, selected: number): HTMLSelectElement {
  return h(
    "select",
    { name, "aria-label": name === "from" ? "Move runs from version" : "to version" },
    wf.versions.map((v) =>
      h("option", { value: String(v.version), selected: v.version === selected }, `v${v.version}`),
    ),
  );
}

export function migrateControls(wf: WorkflowInfo): HTMLElement | null {
  if (wf.versions.length < 2) return null;
  const from = versionSelect(wf, "from", wf.versions[1].version);
  const to = versionSelect(wf, "to", wf.versions[0].version);
  const renames = h("input", {
    type: "text",
    name: "map",
    placeholder: "Renames: old=new, ...",
    "aria-label": "Step renames, old=new",
  });
  const result = h("div", { class: "migrate-result", "data-testid": "migrate-result" });
  const path = `/v1/workflows/${encodeURIComponent(wf.name)}/migrate`;
  let planned: { body: { [k: string]: Json }; movable: number } | null = null;

  const send = async (dryRun: boolean) => {
    let body: { [k: string]: Json };
    try {
      body = dryRun
        ? { from: Number(from.value), to: Number(to.value), map: parseRenames(renames.value) }
        : { ...(planned?.body ?? {}) };
    } catch (e) {
      replace(
        result,
        h("div", { class: "notice error", role: "alert" }, String((e as Error).message)),
      );
      return;
    }
    try {
      const report = await api.post<MigrationReport>(path, { ...body, dry_run: dryRun });
      const summary = dryRun
        ? `${report.movable} of ${report.candidates} run(s) can move; ${report.refused} stay.`
        : `Moved ${report.moved} of ${report.candidates} run(s); ${report.refused} stay.`;
      planned = dryRun ? { body, movable: report.movable } : null;
      replace(
        result,
        h(
          "p",
          { class: "small", "data-testid": "migrate-summary" },
          summary,
          report.more ? " More runs wait: move these, then plan again." : "",
        ),
        planTable(report, !dryRun),
        dryRun && report.movable > 0
          ? button(
              `Move ${report.movable} run${report.movable === 1 ? "" : "s"}`,
              "primary",
              () => void send(false),
              { "data-action": "migrate-runs" },
            )
          : null,
      );
      if (!dryRun) toast(summary);
    } catch (e) {
      replace(
        result,
        h(
          "div",
          { class: "notice error", role: "alert" },
          e instanceof ApiError ? e.message : String(e),
        ),
      );
    }
  };
  // A plan holds for the versions and renames it was made with only.
  const stale = () => {
    planned = null;
    replace(result);
  };
  for (const input of [from, to, renames]) input.addEventListener("change", stale);

  return h(
    "details",
    { class: "migrate-runs", "data-testid": "migrate-runs" },
    h("summary", null, "Move runs"),
    h(
      "div",
      { class: "migrate-form" },
      h("label", null, "From ", from),
      h("label", null, " to ", to),
      renames,
      button("Plan (dry run)", "", () => void send(true), { "data-action": "plan-migration" }),
    ),
    result,
  );
}
