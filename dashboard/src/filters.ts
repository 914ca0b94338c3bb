// The filter bars of the list pages (runs, logs, reviews, audit): labelled selects and text
// inputs whose values deep-link through the page's query string.
import { h, type Attrs } from "./dom";

export function select(
  name: string,
  options: [string, string][],
  value: string,
  label: string,
): HTMLSelectElement {
  const el = h(
    "select",
    { name, "aria-label": label },
    options.map(([v, text]) => h("option", { value: v }, text)),
  );
  el.value = options.some(([v]) => v === value) ? value : (options[0]?.[0] ?? "");
  return el;
}

// Adds the loaded workflow names to a select that may already hold the deep-linked one.
export function addWorkflowOptions(sel: HTMLSelectElement, names: string[]): void {
  const have = new Set([...sel.options].map((o) => o.value));
  const current = sel.value;
  for (const n of names) if (!have.has(n)) sel.appendChild(h("option", { value: n }, n));
  sel.value = current;
}

export function field(label: string, control: HTMLElement, extraClass = ""): HTMLElement {
  return h("label", { class: `field ${extraClass}` }, h("span", null, label), control);
}

// A free-text filter: ids, names and times, so no autocomplete and no spell checking.
export function textFilter(
  name: string,
  value: string,
  placeholder: string,
  type: "text" | "search" = "text",
  extra: Attrs = {},
): HTMLInputElement {
  return h("input", {
    name,
    type,
    placeholder,
    value,
    autocomplete: "off",
    spellcheck: "false",
    ...extra,
  });
}
