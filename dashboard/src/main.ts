// Entry point: the app shell (navigation + page outlet) and the routes.
import "./style.css";
import { h, replace } from "./dom";
import { whenUnauthorized } from "./api";
import { interceptLinks, navigate, onNavigate, render, route } from "./router";
import { isAdmin, loadSession, session, signOut } from "./session";
import { auditPage } from "./pages/audit";
import { chartPage } from "./pages/chart";
import { logsPage } from "./pages/logs";
import { overviewPage } from "./pages/overview";
import { parkedPage } from "./pages/parked";
import { reprocessPage } from "./pages/reprocess";
import { retentionPage } from "./pages/retention";
import { reviewsPage } from "./pages/reviews";
import { runDetailPage } from "./pages/run_detail";
import { runsPage } from "./pages/runs";
import { signinPage } from "./pages/signin";
import { workflowsPage } from "./pages/workflows";

route(/^\/(?:ui\/?)?$/, "overview", overviewPage);
route(/^\/ui\/overview\/?$/, "overview", overviewPage);
route(/^\/ui\/runs\/?$/, "runs", runsPage);
route(/^\/ui\/runs\/(\d+)\/?$/, "runs", runDetailPage);
route(/^\/ui\/parked\/?$/, "parked", parkedPage);
route(/^\/ui\/reprocess\/?$/, "reprocess", reprocessPage);
route(/^\/ui\/reviews\/?$/, "reviews", reviewsPage);
route(/^\/ui\/workflows\/?$/, "workflows", workflowsPage);
route(/^\/ui\/logs\/?$/, "logs", logsPage);
route(/^\/ui\/charts\/([^/]+)\/?$/, "reviews", chartPage);
route(/^\/ui\/signin\/?$/, "signin", signinPage);
route(/^\/ui\/audit\/?$/, "audit", auditPage);
route(/^\/ui\/retention\/?$/, "retention", retentionPage);

const NAV: [string, string, string][] = [
  ["overview", "Overview", "/"],
  ["runs", "Runs", "/ui/runs"],
  ["parked", "Parked", "/ui/parked"],
  ["reprocess", "Reprocess", "/ui/reprocess"],
  ["reviews", "Reviews", "/ui/reviews"],
  ["workflows", "Workflows", "/ui/workflows"],
  ["logs", "Logs", "/ui/logs"],
  ["retention", "Retention", "/ui/retention"],
  ["audit", "Audit", "/ui/audit"],
];

const onSigninPage = () => /^\/ui\/signin\/?$/.test(location.pathname);

function toSignin(): void {
  if (onSigninPage()) return;
  navigate(`/ui/signin?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}

// The signed-in user and the sign-out button; the Audit link only for admins.
function renderUser(user: HTMLElement, nav: HTMLElement): void {
  const s = session();
  nav.querySelectorAll<HTMLElement>("a[data-nav=audit]").forEach((a) => {
    a.style.display = isAdmin() ? "" : "none";
  });
  if (!s) {
    replace(user);
    return;
  }
  replace(
    user,
    h("div", { class: "user-name", "data-role": s.role }, s.name),
    h("div", { class: "user-role" }, s.role),
    h(
      "button",
      {
        type: "button",
        class: "btn signout",
        onclick: () => {
          void signOut().then(() => {
            renderUser(user, nav);
            toSignin();
          });
        },
      },
      "Sign out",
    ),
  );
}

function shell(): void {
  const app = document.getElementById("app")!;
  const health = h(
    "div",
    { class: "health", title: "GET /readyz" },
    h("i", { class: "dot" }),
    h("span", null, "checking…"),
  );
  const user = h("div", { class: "user" });
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
      user,
      health,
    ),
    h("main", { id: "page", class: "page" }),
  );
  window.addEventListener("cf-session", () => renderUser(user, nav));
  renderUser(user, nav);
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

async function start(): Promise<void> {
  whenUnauthorized(toSignin);
  const signedIn = await loadSession().catch(() => null);
  shell();
  interceptLinks();
  if (!signedIn && !onSigninPage()) toSignin();
  else render();
}

void start();
