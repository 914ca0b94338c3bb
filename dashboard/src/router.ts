// Client-side routing over the History API. The server answers "/" and any "/ui/<path>"
// without a dot in it with index.html, so every page has a real, reloadable URL. URLs carry
// only ids and filters (run ids, chart ids, workflow names), never patient data.

export interface PageContext {
  root: HTMLElement;
  params: string[];
  query: URLSearchParams;
  // Runs fn now and then every ms until the page is left; never two calls at once; skipped
  // while the tab is hidden.
  every(ms: number, fn: () => Promise<void> | void): void;
  alive(): boolean;
  title(text: string): void;
}

export type Page = (ctx: PageContext) => void | Promise<void>;

interface Route {
  pattern: RegExp;
  page: Page;
  nav: string;
}

const routes: Route[] = [];
let current: { stop: () => void } | null = null;
let onNav: (nav: string) => void = () => {};

export function route(pattern: RegExp, nav: string, page: Page): void {
  routes.push({ pattern, page, nav });
}

export function onNavigate(fn: (nav: string) => void): void {
  onNav = fn;
}

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

// Updates the address bar (filters) without re-rendering the page.
export function setQuery(query: URLSearchParams): void {
  const qs = query.toString();
  history.replaceState(null, "", location.pathname + (qs ? `?${qs}` : ""));
}

export function render(): void {
  const outlet = document.getElementById("page");
  if (!outlet) return;
  current?.stop();
  const path = location.pathname;
  let found: { r: Route; m: RegExpMatchArray } | null = null;
  for (const r of routes) {
    const m = path.match(r.pattern);
    if (m) {
      found = { r, m };
      break;
    }
  }
  while (outlet.firstChild) outlet.removeChild(outlet.firstChild);
  let stopped = false;
  const timers: number[] = [];
  current = {
    stop() {
      stopped = true;
      timers.forEach((t) => window.clearTimeout(t));
    },
  };
  const ctx: PageContext = {
    root: outlet,
    params: found ? found.m.slice(1).map((p) => decodeURIComponent(p ?? "")) : [],
    query: new URLSearchParams(location.search),
    alive: () => !stopped,
    title: (text) => {
      document.title = `${text} · chartflow`;
    },
    every(ms, fn) {
      const tick = async () => {
        if (stopped) return;
        if (!document.hidden) {
          try {
            await fn();
          } catch (e) {
            console.error(e);
          }
        }
        if (!stopped) timers.push(window.setTimeout(tick, ms));
      };
      void tick();
    },
  };
  if (!found) {
    onNav("");
    ctx.title("Not found");
    const p = document.createElement("p");
    p.className = "notice error";
    p.textContent = "No such page.";
    outlet.appendChild(p);
    return;
  }
  onNav(found.r.nav);
  window.scrollTo(0, 0);
  void Promise.resolve(found.r.page(ctx)).catch((e) => {
    const p = document.createElement("p");
    p.className = "notice error";
    p.textContent = `This page failed to load: ${e instanceof Error ? e.message : String(e)}`;
    outlet.appendChild(p);
  });
}

// Same-origin links inside the app navigate without a reload.
export function interceptLinks(): void {
  document.addEventListener("click", (ev) => {
    if (
      ev.defaultPrevented ||
      ev.button !== 0 ||
      ev.metaKey ||
      ev.ctrlKey ||
      ev.shiftKey ||
      ev.altKey
    )
      return;
    const a = (ev.target as Element | null)?.closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const href = a.getAttribute("href");
    if (!href || !(href === "/" || href.startsWith("/ui/") || href === "/ui")) return;
    ev.preventDefault();
    navigate(href);
  });
  window.addEventListener("popstate", render);
}
