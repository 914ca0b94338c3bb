// DOM construction without HTML parsing. Every string that reaches the page goes through
// document.createTextNode or setAttribute, never innerHTML, so data from the API (patient names,
// error messages, log lines) is always shown as text: "<script>" stays "<script>".

export type Child = Node | string | number | boolean | null | undefined | Child[];
type AttrValue = string | number | boolean | null | undefined;
export type Attrs = { [name: string]: AttrValue | ((ev: Event) => void) };

const SVG_NS = "http://www.w3.org/2000/svg";

function appendChildren(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === true) continue;
    if (Array.isArray(c)) appendChildren(parent, c);
    else if (c instanceof Node) parent.appendChild(c);
    else parent.appendChild(document.createTextNode(String(c)));
  }
}

// Links are built by this code from ids; anything else is refused rather than risk a
// "javascript:" URL made from data.
function safeUrl(value: string): string {
  return value.startsWith("/") || value.startsWith("#") || value.startsWith("?") ? value : "#";
}

function setAttrs(el: Element, attrs: Attrs | null | undefined): void {
  if (!attrs) return;
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") {
      if (!name.startsWith("on")) throw new Error(`handler for non-event attribute ${name}`);
      el.addEventListener(name.slice(2).toLowerCase(), value as EventListener);
      continue;
    }
    if (name.startsWith("on")) throw new Error(`refusing string event attribute ${name}`);
    const text = value === true ? "" : String(value);
    el.setAttribute(name, name === "href" || name === "src" ? safeUrl(text) : text);
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendChildren(el, children);
  return el;
}

export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendChildren(el, children);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  appendChildren(el, children);
}

// A CSS class token from a value the API sends (statuses, levels): only [a-z0-9_-] survive.
export function token(value: unknown): string {
  return String(value ?? "unknown")
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "");
}
