// An operator's three answers to a parked step (a step whose attempts ran out under
// on_exhausted: park): retry it now with a fresh attempt budget, skip it with a reason (the
// steps after it then run), or fail it and its run. Used by the run page and the Parked page.
import { api, ApiError } from "./api";
import { button, toast } from "./components";
import { h } from "./dom";

export function parkedActions(
  runId: number,
  step: string,
  done: () => void | Promise<void>,
): HTMLElement {
  const reason = h("input", {
    name: "reason",
    type: "text",
    maxlength: 1000,
    autocomplete: "off",
    placeholder: "why the step need not run (required to skip)",
    "aria-label": `Reason to skip ${step}`,
  });
  const err = h("div", { class: "form-error", role: "alert" });
  let confirmingFail = false;

  const decide = async (action: "retry" | "skip" | "fail", label: string) => {
    err.textContent = "";
    if (action === "skip" && !reason.value.trim()) {
      err.textContent = "A skip needs a reason: it is kept with the step and in the audit log.";
      reason.focus();
      return;
    }
    try {
      const r = await api.decideParked(runId, step, action, reason.value.trim());
      toast(`${label} ${step}: ${r?.result ?? "done"}`);
    } catch (e) {
      toast(`${label} ${step} failed: ${e instanceof ApiError ? e.message : String(e)}`, "error");
    }
    await done();
  };

  const fail = button("Fail step and run", "danger-outline", () => {
    if (!confirmingFail) {
      confirmingFail = true;
      fail.textContent = "Confirm fail";
      fail.className = "btn danger";
      return;
    }
    void decide("fail", "Fail");
  });
  fail.setAttribute("data-action", "fail-step");

  return h(
    "div",
    { class: "parked-row" },
    h("label", { class: "field grow" }, h("span", null, "Reason"), reason),
    h(
      "div",
      { class: "parked-actions" },
      button("Retry now", "primary", () => void decide("retry", "Retry"), {
        "data-action": "retry-step",
        title: "Run the step again with a fresh budget of attempts",
      }),
      button("Skip", "", () => void decide("skip", "Skip"), {
        "data-action": "skip-step",
        title: "Mark the step skipped with the reason; the steps after it run",
      }),
      fail,
    ),
    err,
  );
}
