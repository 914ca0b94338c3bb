#include "http/api_routes.hpp"

#include <ctime>
#include <regex>
#include <set>

#include "auth/audit.hpp"
#include "http/audit_context.hpp"
#include "http/event_routes.hpp"
#include "http/migrate_routes.hpp"
#include "http/parked_routes.hpp"
#include "http/pause_routes.hpp"
#include "http/reprocess_routes.hpp"
#include "http/retention_routes.hpp"
#include "runtime/log.hpp"

namespace chartflow::http {
namespace {

const std::regex kSignalName("^[A-Za-z0-9._:-]{1,200}$");
// RFC 3339 (date-time) as the API accepts it; PostgreSQL parses the rest.
const std::regex kTimestamp(
    R"(^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$)");
const std::regex kHourMinute(R"(^(\d{1,2}):(\d{2})$)");

int parse_limit(const Request& req, int def, int max) {
  auto v = req.q("limit");
  if (!v) return def;
  try {
    std::size_t used = 0;
    int n = std::stoi(*v, &used);
    if (used != v->size() || n < 1 || n > max) throw std::invalid_argument("range");
    return n;
  } catch (const std::exception&) {
    throw HttpError{400, "limit must be an integer from 1 to " + std::to_string(max)};
  }
}

std::optional<std::int64_t> parse_cursor(const Request& req, const char* name) {
  auto v = req.q(name);
  if (!v) return std::nullopt;
  return parse_id(*v, name);
}

Response command_response(store::Store::CommandResult r, const std::string& message,
                          std::int64_t run_id) {
  switch (r) {
    case store::Store::CommandResult::kOk:
      return Response::json(202, Json{{"run_id", run_id}, {"result", message}});
    case store::Store::CommandResult::kNotFound:
      return Response::error(404, message);
    default:
      return Response::error(409, message);
  }
}

// Runs a run command with its audit record in the command's own transaction; a refused command
// rolls that back, so its record is written on its own.
using RunCommand =
    std::function<store::Store::CommandResult(std::string*, const store::Store::BeforeCommand&)>;
Response audited_command(runtime::Engine& engine, const Request& req, const std::string& action,
                         std::int64_t run_id, const RunCommand& command) {
  std::string msg;
  auto entry = audit_entry(req, action, "run", std::to_string(run_id));
  auto r = command(&msg, [&](Sql& sql) {
    auth::record(sql, entry);
    return true;
  });
  if (r != store::Store::CommandResult::kOk) {
    entry.outcome = "failure";
    entry.detail = {{"reason", r == store::Store::CommandResult::kNotFound ? "not found" : msg}};
    audit_now(engine, entry);
  }
  return command_response(r, msg, run_id);
}

// Operators see a chart run's shape, not what its steps produced from the chart.
// What a handler made of a chart may name the patient: its output, and also its error and the
// history's details (an exception's text, an external handler's stderr). Operators see that a
// step failed and how often, not what it said.
void redact_chart_content(Json& run) {
  if (!run.value("event_type", "").starts_with("chart.")) return;
  const Json redacted_output = Json{{"redacted", "chart content is not shown to operators"}};
  for (auto& step : run["steps"]) {
    if (step.contains("output") && !step.at("output").is_null()) step["output"] = redacted_output;
    if (step.contains("error") && !step.at("error").is_null())
      step["error"] = "(redacted: a chart run's step error is shown to admins only)";
  }
  if (run.contains("error") && !run.at("error").is_null())
    run["error"] = "(redacted: a chart run's error is shown to admins only)";
  if (run.contains("history") && run.at("history").is_array())
    for (auto& h : run["history"])
      if (h.contains("detail") && !h.at("detail").is_null()) h["detail"] = redacted_output;
  run["redacted"] = true;
}

}  // namespace

std::optional<std::string> parse_time_param(const Request& req, const char* name) {
  auto v = req.q(name);
  if (!v) return std::nullopt;
  std::smatch m;
  if (std::regex_match(*v, m, kHourMinute)) {
    // HH:MM means today in the server's time zone.
    const int h = std::stoi(m[1]);
    const int min = std::stoi(m[2]);
    if (h > 23 || min > 59) throw HttpError{400, std::string(name) + ": no such time of day"};
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    tm.tm_hour = h;
    tm.tm_min = min;
    tm.tm_sec = 0;
    std::time_t t = std::mktime(&tm);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return std::string(buf);
  }
  if (!std::regex_match(*v, kTimestamp))
    throw HttpError{
        400, std::string(name) + " must be an RFC 3339 time (2026-01-31T09:12:00Z) or HH:MM"};
  return *v;
}

void add_engine_routes(Router& router, runtime::Engine& engine, metrics::Metrics& metrics,
                       bool public_metrics, std::shared_ptr<const WebhookSecrets> secrets,
                       const UnhealthyReason& unhealthy) {
  add_event_routes(router, engine, metrics, std::move(secrets));
  router.add("GET", "/healthz", "healthz", Access::open(), [unhealthy](Request&) {
    if (unhealthy)
      if (auto reason = unhealthy())
        return Response::json(503, Json{{"status", "unhealthy"}, {"reason", *reason}});
    return Response::json(200, Json{{"status", "ok"}});
  });

  router.add("GET", "/readyz", "readyz", Access::open(), [&engine](Request&) {
    // A short budget: a probe that waits on a frozen server is no probe.
    if (!engine.database_ready(std::chrono::seconds(2)))
      return Response::error(503, "database unavailable");
    if (engine.draining()) return Response::error(503, "draining");
    return Response::json(200, Json{{"status", "ready"}});
  });
  // Both answer on the io threads: behind handlers that wait on a frozen database they would
  // wait too (readyz's own wait is bounded by its 2 s budget).
  router.answer_at_once("/healthz");
  router.answer_at_once("/readyz");

  router.add(
      "GET", "/metrics", "metrics", public_metrics ? Access::open() : Access::of({Role::kOperator}),
      [&engine, &metrics](Request&) {
        try {
          auto q = engine.queue_stats();
          metrics.set_queue(q.value("ready", 0.0), q.value("oldest_ready_seconds", 0.0),
                            q.value("waiting", 0.0), q.value("running", 0.0));
          std::vector<metrics::ParkedSteps> parked;
          for (const auto& p : engine.parked_counts())
            parked.push_back({p.at("workflow"), p.at("step"), p.at("count")});
          metrics.set_steps_parked(parked);
          const auto pauses = engine.pauses();
          std::vector<metrics::PausedWorkflow> paused;
          for (const auto& p : pauses.at("workflows"))
            paused.push_back({p.at("workflow"), p.at("queued_steps")});
          metrics.set_paused(paused, pauses.at("paused_runs"));
          const auto b = engine.backup_stats();
          metrics.set_backup_stats({b.value("last_backup", 0.0), b.value("archiving", false),
                                    b.value("archived", 0.0), b.value("failed", 0.0),
                                    b.value("last_archived", 0.0), b.value("last_failed", 0.0)});
        } catch (const std::exception&) {
        }
        Response r;
        r.content_type = "text/plain; version=0.0.4";
        r.body = metrics.serialize();
        return r;
      });

  router.add("GET", "/v1/runs", "runs", Access::of({Role::kOperator}), [&engine](Request& req) {
    store::Store::RunFilter f;
    f.workflow = req.q("workflow");
    f.status = req.q("status");
    f.subject = req.q("subject");
    if (!f.subject) f.subject = req.q("chart_id");
    static const std::set<std::string> kStatuses = {"pending",   "running", "waiting",  "parked",
                                                    "succeeded", "failed",  "cancelled"};
    if (f.status && !kStatuses.count(*f.status))
      throw HttpError{400,
                      "status must be one of pending, running, waiting, parked, succeeded, failed, "
                      "cancelled"};
    f.since = parse_time_param(req, "since");
    f.until = parse_time_param(req, "until");
    f.after = parse_cursor(req, "after");
    f.limit = parse_limit(req, 50, 500);
    return Response::json(200, engine.list_runs(f));
  });

  router.add("GET", "/v1/runs/{id}", "run", Access::of({Role::kOperator}), [&engine](Request& req) {
    const auto id = parse_id(req.param("id"), "run id");
    auto run = engine.get_run(id);
    if (!run) return Response::error(404, "run " + std::to_string(id) + " not found");
    if (!sees_chart_content(req))
      redact_chart_content(*run);
    else if (run->value("event_type", "").starts_with("chart."))
      audit_or_throw(engine, audit_entry(req, "run.read", "run", std::to_string(id)));
    return Response::json(200, *run);
  });

  router.add("POST", "/v1/runs/{id}/retry", "run_retry", Access::of({Role::kOperator}),
             [&engine](Request& req) {
               const auto id = parse_id(req.param("id"), "run id");
               return audited_command(
                   engine, req, "run.retry", id,
                   [&engine, id](std::string* msg, const store::Store::BeforeCommand& before) {
                     return engine.retry(id, msg, before);
                   });
             });

  router.add("POST", "/v1/runs/{id}/cancel", "run_cancel", Access::of({Role::kOperator}),
             [&engine](Request& req) {
               const auto id = parse_id(req.param("id"), "run id");
               return audited_command(
                   engine, req, "run.cancel", id,
                   [&engine, id](std::string* msg, const store::Store::BeforeCommand& before) {
                     return engine.cancel(id, msg, before);
                   });
             });

  router.add(
      "POST", "/v1/runs/{id}/signal/{name}", "run_signal", Access::of({Role::kOperator}),
      [&engine](Request& req) {
        const auto id = parse_id(req.param("id"), "run id");
        const std::string& name = req.param("name");
        if (!std::regex_match(name, kSignalName))
          throw HttpError{400, "signal name must be 1-200 characters of letters, digits, . _ : -"};
        // A handler's own signal carries a decision its module records and authorises itself.
        if (auto owned = engine.handlers().signal_owner(name)) {
          auto entry = audit_entry(req, "run.signal", "run", std::to_string(id));
          entry.outcome = "denied";
          entry.detail = {{"signal", name}};
          audit_now(engine, entry);
          throw HttpError{403, "signal '" + name + "' is delivered only through " + owned->route +
                                   ", by the role that route allows"};
        }
        Json payload = parse_json_body(req);
        return audited_command(engine, req, "run.signal", id,
                               [&](std::string* msg, const store::Store::BeforeCommand& before) {
                                 return engine.signal(id, name, payload, msg, before);
                               });
      });

  add_parked_routes(router, engine);
  add_migrate_routes(router, engine);
  add_reprocess_routes(router, engine);
  add_pause_routes(router, engine);
  add_retention_routes(router, engine);

  router.add("GET", "/v1/workflows", "workflows", Access::of({Role::kOperator}),
             [&engine](Request&) {
               return Response::json(200, Json{{"workflows", engine.list_workflows()}});
             });

  router.add("GET", "/v1/logs", "logs", Access::of({Role::kOperator}), [&engine](Request& req) {
    store::Store::LogFilter f;
    if (auto lvl = req.q("level")) {
      auto parsed = runtime::parse_level(*lvl);
      if (!parsed) throw HttpError{400, "level must be one of debug, info, warning, error"};
      f.min_level = *parsed;
    }
    f.since = parse_time_param(req, "since");
    f.until = parse_time_param(req, "until");
    f.workflow = req.q("workflow");
    f.step = req.q("step");
    f.text = req.q("q");
    f.run_id = parse_cursor(req, "run");
    f.after = parse_cursor(req, "after");
    f.limit = parse_limit(req, 100, 1000);
    // What a handler printed about a chart is chart content: operators see that it printed.
    if (!sees_chart_content(req)) f.redact_stderr_of_events = "chart.";
    return Response::json(200, engine.query_logs(f));
  });
}

}  // namespace chartflow::http
