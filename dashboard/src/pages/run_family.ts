// A run's place among child workflows (docs/workflows.md, "Child workflows"): a link to the run
// that started it, and its own children under it, each with its status.
import type { RunDetail } from "../api";
import { statusBadge } from "../components";
import { h } from "../dom";

function runLink(id: number): HTMLElement {
  return h("a", { href: `/ui/runs/${id}` }, `#${id}`);
}

// Rows for the run's summary: "Parent" for a child run, "Children" for a parent; none for a run
// that is neither.
export function familyRows(r: RunDetail): [string, HTMLElement][] {
  const rows: [string, HTMLElement][] = [];
  if (r.parent_run_id) {
    rows.push([
      "Parent",
      h(
        "span",
        { class: "parent-run" },
        runLink(r.parent_run_id),
        h("span", { class: "muted" }, ` step ${r.parent_step ?? ""}`),
      ),
    ]);
  }
  if (r.children?.length) {
    rows.push([
      "Children",
      h(
        "ul",
        { class: "child-runs" },
        r.children.map((c) =>
          h(
            "li",
            { "data-child": String(c.id) },
            runLink(c.id),
            " ",
            h("span", null, c.workflow),
            h("span", { class: "muted" }, ` (step ${c.step}) `),
            statusBadge(c.status),
          ),
        ),
      ),
    ]);
  }
  return rows;
}
