// The engine's side of moving runs to another version: resolves the versions, checks the
// renames against both definitions, and moves (or, in a dry run, plans) each candidate run in a
// transaction of its own through the pooled stores, as every run command goes.
#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

std::vector<std::string> step_names(const core::Workflow& wf) {
  std::vector<std::string> names;
  for (const auto& s : wf.steps) names.push_back(s.name);
  return names;
}

}  // namespace

Json Engine::migrate_runs(const RunMigrationRequest& request, const BeforeMove& before_each) {
  if (request.from == request.to)
    throw MigrationRejected(false, "from and to are the same version; nothing would move");
  Json report = {{"workflow", request.workflow},
                 {"from", request.from},
                 {"to", request.to},
                 {"dry_run", request.dry_run},
                 {"runs", Json::array()}};
  int movable = 0, refused = 0, next_steps = 0;
  bool more = false;
  pool_.with([&](store::Store& s) {
    const auto from = s.workflow_version_of(request.workflow, request.from);
    const auto to = s.workflow_version_of(request.workflow, request.to);
    if (!from || !to) {
      std::string missing;
      for (const auto& [v, n] : {std::pair{&from, request.from}, std::pair{&to, request.to}})
        if (!*v) missing += (missing.empty() ? "" : " and ") + std::to_string(n);
      throw MigrationRejected(true, "workflow " + request.workflow + " has no version " + missing);
    }
    const WorkflowPtr old_wf = workflows_->by_version(from->id, s);
    const WorkflowPtr new_wf = workflows_->by_version(to->id, s);
    if (auto problem = core::check_renames(step_names(old_wf->workflow),
                                           step_names(new_wf->workflow), request.renames))
      throw MigrationRejected(false, *problem);

    store::Store::RunMove move;
    move.from_id = from->id;
    move.to_id = to->id;
    move.to_label = "version " + std::to_string(request.to);
    for (const auto& step : new_wf->workflow.steps) move.target.push_back({step.name, step.needs});
    move.renames = request.renames;
    move.dry_run = request.dry_run;
    move.steps_for = [new_wf](const Json& body) {
      std::vector<store::StepPlan> steps;
      for (const auto& step : new_wf->workflow.steps)
        steps.push_back(plan_step(new_wf->workflow, step, body));
      return steps;
    };
    move.detail = {{"from_version", request.from}, {"to_version", request.to}};

    auto ids = s.unended_runs_at(request.workflow, from->id, request.after, request.limit + 1);
    if (static_cast<int>(ids.size()) > request.limit) {
      more = true;
      ids.resize(request.limit);
    }
    for (const auto id : ids) {
      store::Store::BeforeCommand before;
      if (before_each) before = [&, id](Sql& sql) { return before_each(sql, id); };
      const auto plan = s.move_run(id, move, before);
      Json entry = plan.to_json();
      entry["run_id"] = id;
      report["runs"].push_back(std::move(entry));
      if (plan.movable) {
        ++movable;
        next_steps += static_cast<int>(plan.next.size());
      } else {
        ++refused;
      }
    }
  });
  report["candidates"] = movable + refused;
  report["movable"] = movable;
  report["moved"] = request.dry_run ? 0 : movable;
  report["refused"] = refused;
  report["more"] = more;
  if (!request.dry_run) {
    Log::info("runs_migrated", {{"workflow", request.workflow},
                                {"from", request.from},
                                {"to", request.to},
                                {"moved", movable},
                                {"refused", refused}});
    if (next_steps > 0) wake_workers(next_steps);
  }
  return report;
}

}  // namespace chartflow::runtime
