// Draws a workflow's step graph as SVG. dagre computes the layout (node positions and edge
// routes); this file only turns the result into SVG elements with one state class per node
// ("dag-node state-succeeded"), which the CSS colours and the browser tests assert on.
import dagre from "@dagrejs/dagre";
import type { Definition, DefinitionStep, RunDetail } from "./api";
import { h, s, token } from "./dom";

export interface DagNode {
  name: string;
  handler: string;
  needs: string[];
  status?: string; // absent on the Workflows page: no run, no state
  conditional?: boolean;
  detail?: string; // a short second line, e.g. "attempt 2/3"
}

const NODE_HEIGHT = 46;
const CHAR_WIDTH = 7.4;

export function stepsOf(def: Definition | null | undefined): DefinitionStep[] {
  if (!def || !def.steps) return [];
  if (Array.isArray(def.steps)) return def.steps;
  return Object.entries(def.steps).map(([name, step]) => ({ ...step, name }));
}

export function handlerName(step: DefinitionStep): string {
  const hd = step.handler;
  if (typeof hd === "string") return hd;
  return hd?.name ?? "?";
}

export function nodesFromDefinition(def: Definition | null | undefined): DagNode[] {
  return stepsOf(def).map((st) => ({
    name: st.name,
    handler: handlerName(st),
    needs: Array.isArray(st.needs) ? st.needs : [],
    conditional: st.when !== undefined && st.when !== null,
  }));
}

// A run's graph: the definition it started with, coloured by each step's state. Steps the
// engine has not created yet are "pending".
export function nodesFromRun(run: RunDetail): DagNode[] {
  const byName = new Map(run.steps.map((st) => [st.name, st]));
  const base = nodesFromDefinition(run.definition);
  const nodes: DagNode[] = base.length
    ? base
    : run.steps.map((st) => ({ name: st.name, handler: st.handler ?? "?", needs: st.needs ?? [] }));
  return nodes.map((n) => {
    const st = byName.get(n.name);
    const status = st?.status ?? "pending";
    let detail = status;
    // Attempts matter once there was more than one, or while more may follow.
    if (st && st.attempts && st.max_attempts && (st.attempts > 1 || status === "retrying"))
      detail = `${status} · attempt ${st.attempts}/${st.max_attempts}`;
    return { ...n, status, detail };
  });
}

// d3's curveBasis: a smooth path through dagre's edge control points.
function basisPath(points: { x: number; y: number }[]): string {
  if (points.length < 3) return points.map((p, i) => `${i ? "L" : "M"}${p.x},${p.y}`).join(" ");
  const out: string[] = [`M${points[0].x},${points[0].y}`];
  let x0 = points[0].x,
    y0 = points[0].y,
    x1 = points[0].x,
    y1 = points[0].y;
  const bezier = (x: number, y: number) =>
    out.push(
      `C${(2 * x0 + x1) / 3},${(2 * y0 + y1) / 3} ${(x0 + 2 * x1) / 3},${(y0 + 2 * y1) / 3} ${(x0 + 4 * x1 + x) / 6},${(y0 + 4 * y1 + y) / 6}`,
    );
  points.forEach((p, i) => {
    if (i === 1) {
      // nothing to draw yet
    } else if (i === 2) {
      out.push(`L${(5 * x0 + x1) / 6},${(5 * y0 + y1) / 6}`);
      bezier(p.x, p.y);
    } else if (i > 2) {
      bezier(p.x, p.y);
    }
    x0 = x1;
    y0 = y1;
    x1 = p.x;
    y1 = p.y;
  });
  bezier(x1, y1);
  out.push(`L${x1},${y1}`);
  return out.join(" ");
}

let markerSeq = 0;

export function dagSvg(
  nodes: DagNode[],
  opts: { onSelect?: (name: string) => void; label?: string } = {},
): SVGSVGElement | HTMLElement {
  if (nodes.length === 0) return h("p", { class: "muted" }, "This workflow has no steps.");
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 56, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  const known = new Set(nodes.map((n) => n.name));
  for (const n of nodes) {
    const chars = Math.max(n.name.length, (n.detail ?? n.handler).length + 2, n.handler.length + 2);
    g.setNode(n.name, { width: Math.max(116, chars * CHAR_WIDTH + 34), height: NODE_HEIGHT });
  }
  for (const n of nodes) for (const dep of n.needs) if (known.has(dep)) g.setEdge(dep, n.name);
  dagre.layout(g);

  const graph = g.graph();
  const width = Math.ceil(graph.width ?? 200);
  const height = Math.ceil(graph.height ?? 80);
  const marker = `dag-arrow-${++markerSeq}`;
  const byName = new Map(nodes.map((n) => [n.name, n]));

  const svg = s("svg", {
    class: "dag",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": opts.label ?? "workflow graph",
  });
  svg.appendChild(
    s(
      "defs",
      null,
      s(
        "marker",
        {
          id: marker,
          viewBox: "0 0 10 10",
          refX: 9,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: "auto-start-reverse",
        },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "dag-arrow" }),
      ),
    ),
  );
  const edges = s("g", { class: "dag-edges" });
  for (const e of g.edges()) {
    const pts = g.edge(e).points ?? [];
    const from = byName.get(e.v);
    const done = from?.status === "succeeded" || from?.status === "skipped";
    edges.appendChild(
      s("path", {
        d: basisPath(pts),
        class: `dag-edge${done ? " done" : ""}`,
        "marker-end": `url(#${marker})`,
        "data-from": e.v,
        "data-to": e.w,
      }),
    );
  }
  svg.appendChild(edges);

  for (const n of nodes) {
    const pos = g.node(n.name);
    const w = pos.width;
    const x = pos.x - w / 2;
    const y = pos.y - NODE_HEIGHT / 2;
    const state = n.status ? ` state-${token(n.status)}` : " state-none";
    const title = n.status ? `${n.name} (${n.handler}): ${n.status}` : `${n.name} (${n.handler})`;
    const node = s(
      "g",
      {
        class: `dag-node${state}${n.conditional ? " conditional" : ""}`,
        transform: `translate(${x},${y})`,
        "data-step": n.name,
        "data-state": n.status ?? "",
        tabindex: opts.onSelect ? 0 : null,
      },
      s("title", null, title),
      s("rect", { width: w, height: NODE_HEIGHT, rx: 8, ry: 8, class: "dag-box" }),
      s("rect", { width: 5, height: NODE_HEIGHT - 12, x: 6, y: 6, rx: 2.5, class: "dag-stripe" }),
      s("text", { x: 18, y: 19, class: "dag-name" }, n.name),
      s(
        "text",
        { x: 18, y: 35, class: "dag-sub" },
        n.status ? (n.detail ?? n.status) : n.handler + (n.conditional ? " · when" : ""),
      ),
    );
    if (opts.onSelect) {
      const select = opts.onSelect;
      node.addEventListener("click", () => select(n.name));
      node.addEventListener("keydown", (ev) => {
        if ((ev as KeyboardEvent).key === "Enter") select(n.name);
      });
    }
    svg.appendChild(node);
  }
  return svg;
}

export function dagLegend(states: string[]): HTMLElement {
  return h(
    "div",
    { class: "dag-legend" },
    states.map((st) => h("span", { class: `legend-item state-${token(st)}` }, h("i", null), st)),
  );
}
