// Child workflow steps (docs/workflows.md, "Child workflows"): the engine, not a handler, runs
// them. Claimed the first time, the step starts a run of the named workflow (its latest version)
// and waits; the child's end makes it ready again with wake {"kind": "child"}, and this time
// it succeeds with the child's outputs or fails for good.
#include "core/trace.hpp"
#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {

std::optional<std::string> Engine::child_step(store::StepBatch& batch, const store::ClaimedStep& s,
                                              const core::Step& def, const Json& event) {
  const std::string& owner = settings_.instance_id;
  const std::string& name = def.child->workflow;
  if (s.wake && s.wake->value("kind", "") == "child") {
    const std::string child_id = std::to_string(s.wake->value("run_id", std::int64_t{0}));
    const std::string status = s.wake->value("status", "");
    if (status == "succeeded") {
      batch.finish_done(s, owner, s.wake->value("output", Json::object()), false);
      return std::nullopt;
    }
    return "child workflow " + name + " run " + child_id + " " + status;
  }
  // Each child's event counts one more level than its parent's: a chain of children (the
  // loader refuses cycles and chains this deep, but versions change) stops where run-end
  // chains stop (config/workflow_files.cpp refuses the same depth).
  const int depth = s.event_type == kChildWorkflowEvent ? event.value("depth", 1) + 1 : 1;
  if (depth > store::kMaxChainDepth)
    return "child workflow " + name + " not started: " + std::to_string(depth) +
           " levels of child workflows exceed the limit of " +
           std::to_string(store::kMaxChainDepth);
  WorkflowPtr child;
  for (const auto& wf : workflows_->latest())
    if (wf->workflow.name == name) child = wf;
  if (!child) return "child workflow " + name + " is not defined";
  store::EventInput ev;
  ev.type = kChildWorkflowEvent;
  ev.source = "run";
  ev.body = {{"parent_run_id", s.run_id},
             {"parent_step", s.step_key},
             {"workflow", name},
             {"input", def.input},
             {"depth", depth}};
  // The child is part of its parent's trace, under the parent run's root span.
  if (s.trace_id) {
    ev.trace_id = s.trace_id;
    ev.trace_parent = core::run_span_id(*s.trace_id, s.run_id);
  }
  store::RunPlan plan;
  plan.workflow_version_id = child->version_id;
  plan.workflow = name;
  for (const auto& cs : child->workflow.steps)
    plan.steps.push_back(plan_step(child->workflow, cs, ev.body));
  std::int64_t child_run_id = 0;
  if (batch.finish_child_started(
          s, owner, ev, [&](const store::EventInput&) { return std::vector<store::RunPlan>{plan}; },
          child_run_id)) {
    Log::info("child_run_started", {{"workflow", s.workflow},
                                    {"run", s.run_id},
                                    {"step", s.step_key},
                                    {"child_workflow", name},
                                    {"child_run", child_run_id}});
    if (hooks_.run_started) hooks_.run_started(name);
  }
  return std::nullopt;
}

}  // namespace chartflow::runtime
