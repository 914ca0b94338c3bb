// Entry point: the app shell (navigation + page outlet) and the routes.
import "./style.css";
import { h, replace } from "./dom";
import { interceptLinks, onNavigate, render, route } from "./router";
import { chartPage } from "./pages/chart";
import { logsPage } from "./pages/logs";
import { overviewPage } from "./pages/overview";
import { reviewsPage } from "./pages/reviews";
import { runDetailPage } from "./pages/run_detail";
import { runsPage } from "./pages/runs";
import { workflowsPage } from "./pages/workflows";

route(/^\/(?:ui\/?)?$/, "overview", overviewPage);
route(/^\/ui\/overview\/?$/, "overview", overviewPage);
route(/^\/ui\/runs\/?$/, "runs", runsPage);
route(/^\/ui\/runs\/(\d+)\/?$/, "runs", runDetailPage);
route(/^\/ui\/reviews\/?$/, "reviews", reviewsPage);
route(/^\/ui\/workflows\/?$/, "workflows", workflowsPage);
route(/^\/ui\/logs\/?$/, "logs", logsPage);
route(/^\/ui\/charts\/([^/]+)\/?$/, "reviews", chartPage);

const NAV: [string, string, string][] = [
  ["overview", "Overview", "/"],
  ["runs", "Runs", "/ui/runs"],
  ["reviews", "Reviews", "/ui/reviews"],
  ["workflows", "Workflows", "/ui/workflows"],
  ["logs", "Logs", "/ui/logs"],
];

function shell(): void {
  const app = document.getElementById("app")!;
  const health = h(
    "div",
    { class: "health", title: "GET /readyz" },
    h("i", { class: "dot" }),
    h("span", null, "checking…"),
  );
  const nav = h(
    "nav",
    { class: "nav", "aria-label": "Main" },
    NAV.map(([key, label, href]) => h("a", { href, "data-nav": key }, label)),
  );
  replace(
    app,
    h(
      "aside",
      { class: "sidebar" },
      h(
        "a",
        { class: "brand", href: "/" },
        h("span", { class: "brand-mark" }, "cf"),
        h("span", null, "chartflow"),
      ),
      nav,
      health,
    ),
    h("main", { id: "page", class: "page" }),
  );
  onNavigate((active) => {
    nav
      .querySelectorAll("a")
      .forEach((a) => a.classList.toggle("active", a.dataset.nav === active));
  });
  const check = async () => {
    let ok = false;
    let text = "server unreachable";
    try {
      const r = await fetch("/readyz");
      ok = r.ok;
      text = ok ? "server ready" : `not ready (${r.status})`;
    } catch {
      // unreachable
    }
    health.classList.toggle("ok", ok);
    health.classList.toggle("bad", !ok);
    health.querySelector("span")!.textContent = text;
  };
  void check();
  window.setInterval(() => void check(), 10_000);
}

shell();
interceptLinks();
render();
