// Time-series charts on the overview, drawn by uPlot (canvas; no inline scripts, no eval).
// Times on the axes and in the legend go through format.ts (24-hour, like every page). A chart
// with fewer than two samples shows an empty state instead of an axis: uPlot stretches a single
// point's time axis over years.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom";
import { fmtAxisTime, fmtTime } from "./format";

export interface SeriesSpec {
  label: string;
  color: string;
  bars?: boolean;
  fill?: boolean;
  unit?: string;
  points?: boolean; // draw each value as a dot and join across gaps (sparse series)
}

export interface TimeChart {
  el: HTMLElement;
  set(xs: number[], ys: (number | null)[][]): void;
}

const barPaths = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 24], gap: 1 }) : undefined;

export function timeChart(
  title: string,
  specs: SeriesSpec[],
  opts: { height?: number; yLabel?: string; minSpanSec?: number; emptyText?: string } = {},
): TimeChart {
  const host = h("div", { class: "chart-host" });
  const empty = h(
    "div",
    { class: "chart-empty muted" },
    opts.emptyText ?? "No samples yet: the chart starts with the second one.",
  );
  empty.style.height = `${opts.height ?? 200}px`;
  host.hidden = true;
  const el = h("figure", { class: "chart" }, h("figcaption", null, title), empty, host);
  let plot: uPlot | null = null;
  let data: uPlot.AlignedData = [[], ...specs.map(() => [])];

  const make = () => {
    const width = Math.max(240, host.clientWidth || 480);
    const options: uPlot.Options = {
      width,
      height: opts.height ?? 200,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          // A short sample (the queue chart just after opening) still spans a readable window.
          range: (_u, min, max) => {
            const span = opts.minSpanSec ?? 0;
            if (min === null || max === null) {
              const now = Date.now() / 1000;
              return [now - Math.max(span, 60), now];
            }
            return max - min < span ? [max - span, max] : [min, max];
          },
        },
        y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 0) * 1.1)] },
      },
      axes: [
        {
          stroke: "#6b7280",
          grid: { stroke: "#eef0f3" },
          ticks: { stroke: "#e5e7eb" },
          values: (u: uPlot, splits: number[]) => {
            const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
            return splits.map((v) => fmtAxisTime(v, span));
          },
        },
        {
          stroke: "#6b7280",
          grid: { stroke: "#eef0f3" },
          ticks: { stroke: "#e5e7eb" },
          label: opts.yLabel,
          size: 56,
        },
      ],
      hooks: {
        // The drawn window, for tests and for whoever inspects the page.
        setScale: [
          (u: uPlot, key: string) => {
            if (key !== "x") return;
            el.dataset.xMin = String(u.scales.x.min ?? "");
            el.dataset.xMax = String(u.scales.x.max ?? "");
          },
        ],
      },
      series: [
        {
          value: (_u: uPlot, v: number | null) =>
            v === null || v === undefined ? "—" : fmtTime(new Date(v * 1000).toISOString()),
        },
        ...specs.map((sp) => ({
          label: sp.label,
          stroke: sp.color,
          width: sp.bars ? 0 : 2,
          fill: sp.bars || sp.fill ? sp.color + (sp.bars ? "cc" : "22") : undefined,
          paths: sp.bars ? barPaths : undefined,
          points: sp.points ? { show: true, size: 6, fill: sp.color } : { show: false },
          spanGaps: !!sp.points,
          value: (_u: uPlot, v: number | null) =>
            v === null || v === undefined ? "—" : `${Number(v.toFixed(2))}${sp.unit ?? ""}`,
        })),
      ],
    };
    plot?.destroy();
    plot = new uPlot(options, data, host);
  };

  const ro = new ResizeObserver(() => {
    if (!host.isConnected) {
      ro.disconnect();
      return;
    }
    const w = host.clientWidth;
    if (plot && w > 0 && Math.abs(plot.width - w) > 4)
      plot.setSize({ width: w, height: opts.height ?? 200 });
  });
  ro.observe(host);

  return {
    el,
    set(xs, ys) {
      data = [xs, ...ys] as uPlot.AlignedData;
      const drawable = xs.length >= 2;
      empty.hidden = drawable;
      host.hidden = !drawable;
      el.dataset.samples = String(xs.length);
      if (!drawable) return;
      if (!plot) make();
      else plot.setData(data);
    },
  };
}
