// The engine's side of reprocessing runs: the dry run asks each step's handler what a re-run
// would do (Handler::preview_rerun), the job is created in one transaction with its audit
// record, and the dispatcher starts its runs a batch at a time, each batch one transaction
// holding the job row, so a cancel or a crash falls between batches, never inside one.
#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

// Between two batches of a running job: other work (and a cancel) gets its turn.
constexpr Millis kBatchGap{100};
constexpr int kPreviewPage = 500;

// Unwinds a transaction whose `before` refused.
struct Refused {};

WorkflowPtr latest_of(const WorkflowRegistry& registry, const std::string& name) {
  for (const auto& wf : registry.latest())
    if (wf->workflow.name == name) return wf;
  return nullptr;
}

// A new run's steps as ingest plans them for this event.
Json planned_steps(const core::Workflow& wf, const Json& body) {
  Json steps = Json::array();
  for (const auto& step : wf.steps) {
    const store::StepPlan p = plan_step(wf, step, body);
    Json o = {{"step_key", p.step_key},
              {"handler", p.handler},
              {"needs", p.needs},
              {"pending_needs", p.needs.size()},
              {"max_attempts", p.max_attempts},
              {"timeout_ms", p.timeout_ms}};
    if (p.concurrency_key) o["concurrency_key"] = *p.concurrency_key;
    if (p.concurrency_limit) o["concurrency_limit"] = *p.concurrency_limit;
    steps.push_back(std::move(o));
  }
  return steps;
}

}  // namespace

Json Engine::reprocess_preview(const ReprocessRequest& request) {
  const WorkflowPtr wf = latest_of(*workflows_, request.selection.workflow);
  if (!wf) throw ReprocessRejected(true, "no workflow " + request.selection.workflow);
  const Json flags = request.flags();
  Json report = {{"dry_run", true},
                 {"workflow", wf->workflow.name},
                 {"version", wf->version},
                 {"selection", request.selection.to_json()},
                 {"flags", flags}};
  // (step, effect, action) -> (count, runs)
  std::map<std::tuple<std::string, std::string, std::string>, std::pair<std::int64_t, int>> sums;
  Json run_ids = Json::array();
  std::set<std::string> charts;
  int previewed = 0;
  pool_.with([&](store::Store& s) {
    s.with_sql([&](Sql& sql) {
      const Json counts = store::count_reprocess_selection(sql, request.selection);
      report["runs"] = counts.at("runs");
      report["charts"] = counts.at("charts");
      std::int64_t after = 0;
      while (previewed < kReprocessPreviewRuns) {
        const auto page =
            store::select_reprocess_runs(sql, request.selection, after,
                                         std::min(kPreviewPage, kReprocessPreviewRuns - previewed));
        if (page.empty()) break;
        for (const auto& run : page) {
          after = run.run_id;
          ++previewed;
          if (static_cast<int>(run_ids.size()) < kReprocessListed) run_ids.push_back(run.run_id);
          if (run.subject && static_cast<int>(charts.size()) < kReprocessListed)
            charts.insert(*run.subject);
          // A step whose condition fails on the event is skipped by the re-run too. Conditions
          // on earlier steps' outputs cannot be known ahead: such a step is asked anyway.
          const Json doc = {{"event", run.event}, {"steps", Json::object()}};
          for (const auto& step : wf->workflow.steps) {
            if (step.when && !step.when->evaluate(doc)) continue;
            const Handler* handler = handlers_->find(step.handler.name);
            if (handler == nullptr) continue;
            RerunPreview p;
            p.run_id = run.run_id;
            p.workflow = wf->workflow.name;
            p.step = step.name;
            p.event = &run.event;
            p.config = &step.handler.config;
            p.input = &step.input;
            p.flags = flags;
            const auto effects = handler->preview_rerun(sql, p);
            if (!effects || !effects->is_array()) continue;
            for (const auto& e : *effects) {
              auto& sum = sums[{step.name, e.value("effect", ""), e.value("action", "")}];
              sum.first += e.value("count", std::int64_t{0});
              sum.second += 1;
            }
          }
        }
      }
    });
  });
  Json effects = Json::array();
  for (const auto& [key, sum] : sums)
    effects.push_back({{"step", std::get<0>(key)},
                       {"effect", std::get<1>(key)},
                       {"action", std::get<2>(key)},
                       {"count", sum.first},
                       {"runs", sum.second}});
  report["run_ids"] = run_ids;
  report["chart_ids"] = Json(charts);
  report["previewed"] = previewed;
  report["effects"] = effects;
  return report;
}

Json Engine::start_reprocess(const ReprocessRequest& request, const std::string& by,
                             const BeforeReprocess& before) {
  if (!latest_of(*workflows_, request.selection.workflow))
    throw ReprocessRejected(true, "no workflow " + request.selection.workflow);
  std::int64_t job_id = 0;
  int total = 0;
  pool_.with([&](store::Store& s) {
    s.with_sql([&](Sql& sql) {
      job_id = store::create_reprocess_job(sql, request.selection, request.flags(),
                                           request.batch_size, by, &total);
      if (before) before(sql, job_id, total);
    });
  });
  Log::info("reprocess_started",
            {{"workflow", request.selection.workflow}, {"job", job_id}, {"runs", total}});
  reprocess_pending_ = true;  // the dispatcher starts the first batch at its next look
  return reprocess_job(job_id).value_or(Json{{"id", job_id}});
}

std::optional<Json> Engine::reprocess_job(std::int64_t job_id) {
  std::optional<Json> job;
  pool_.with([&](store::Store& s) {
    s.with_autocommit_sql([&](Sql& sql) { job = store::reprocess_job(sql, job_id); });
  });
  return job;
}

Json Engine::reprocess_jobs(int limit) {
  Json jobs;
  pool_.with([&](store::Store& s) {
    s.with_autocommit_sql([&](Sql& sql) { jobs = store::reprocess_jobs(sql, limit); });
  });
  return jobs;
}

Engine::CommandResult Engine::cancel_reprocess(std::int64_t job_id, std::string* message,
                                               const store::Store::BeforeCommand& before) {
  CommandResult result = CommandResult::kOk;
  try {
    pool_.with([&](store::Store& s) {
      s.with_sql([&](Sql& sql) {
        if (before && !before(sql)) throw Refused{};
        if (store::cancel_reprocess_job(sql, job_id)) return;
        const auto job = store::reprocess_job(sql, job_id);
        result = job ? CommandResult::kConflict : CommandResult::kNotFound;
        if (message)
          *message = job ? "the job is " + job->value("status", std::string()) + ", not running"
                         : "no reprocess job " + std::to_string(job_id);
        throw Refused{};
      });
    });
  } catch (const Refused&) {
    if (result == CommandResult::kOk) result = CommandResult::kConflict;
  }
  if (result == CommandResult::kOk) Log::info("reprocess_cancelled", {{"job", job_id}});
  return result;
}

int Engine::reprocess_batch() {
  int started = -1;
  std::string workflow;
  pool_.with([&](store::Store& s) {
    s.with_sql([&](Sql& sql) {
      auto batch = store::next_reprocess_batch(sql);
      if (!batch) return;
      started = 0;
      workflow = batch->workflow;
      // The workflow's latest version now: a job that outlives a new version starts its later
      // runs at that version, as an event arriving then would.
      const WorkflowPtr wf = latest_of(*workflows_, batch->workflow);
      if (wf)
        for (const auto& item : batch->items) {
          store::start_reprocess_run(sql, batch->job_id, wf->version_id, wf->workflow.name, item,
                                     planned_steps(wf->workflow, item.event));
          ++started;
        }
      // A workflow gone from this process's registry starts nothing here; the job stays running
      // for a process that knows it.
      if (wf || batch->items.empty()) store::finish_reprocess_batch(sql, batch->job_id, started);
    });
  });
  if (started > 0) {
    if (hooks_.run_started)
      for (int i = 0; i < started; ++i) hooks_.run_started(workflow);
    wake_workers(started);
  }
  return started;
}

void Engine::continue_reprocess(store::Store& /*store*/, Millis& sleep) {
  // Cleared first: a job created meanwhile sets it again, and is not missed.
  reprocess_pending_ = false;
  if (reprocess_batch() < 0) return;
  reprocess_pending_ = true;
  sleep = std::min(sleep, kBatchGap);
}

}  // namespace chartflow::runtime
