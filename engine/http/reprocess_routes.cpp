#include "http/reprocess_routes.hpp"

#include <regex>
#include <set>
#include <string>

#include "auth/audit.hpp"
#include "config/workflow_validation.hpp"
#include "http/audit_context.hpp"

namespace chartflow::http {
namespace {

const std::regex kStepName("^[a-z0-9_-]{1,100}$");
const std::regex kTimestamp(
    R"(^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$)");
const std::set<std::string> kStatuses = {"pending", "running",   "waiting", "parked",
                                         "paused",  "succeeded", "failed",  "cancelled"};
const std::set<std::string> kFields = {"workflow", "from",        "to",        "status",
                                       "chart_id", "failed_step", "dry_run",   "resend",
                                       "force",    "reason",      "batch_size"};
constexpr std::size_t kMaxReason = 1000;

std::optional<std::string> text_field(const Json& body, const char* name, std::size_t max) {
  if (!body.contains(name) || body.at(name).is_null()) return std::nullopt;
  const Json& v = body.at(name);
  if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > max)
    throw HttpError{400, std::string(name) + " must be a non-empty string"};
  return v.get<std::string>();
}

bool bool_field(const Json& body, const char* name, bool def) {
  if (!body.contains(name)) return def;
  if (!body.at(name).is_boolean())
    throw HttpError{400, std::string(name) + " must be true or false"};
  return body.at(name).get<bool>();
}

runtime::ReprocessRequest parse_request(const Request& req) {
  const Json body = parse_json_body(req);
  if (!body.is_object()) throw HttpError{400, "the body must be a JSON object"};
  for (const auto& [key, value] : body.items())
    if (!kFields.count(key))
      throw HttpError{400, "unknown field " + key +
                               " (expected workflow, from, to, status, chart_id, failed_step, "
                               "dry_run, resend, force, reason, batch_size)"};
  runtime::ReprocessRequest r;
  const auto workflow = text_field(body, "workflow", 200);
  if (!workflow || !config::valid_workflow_name(*workflow))
    throw HttpError{400, "workflow is required: a workflow name"};
  r.selection.workflow = *workflow;
  for (const char* name : {"from", "to"}) {
    auto t = text_field(body, name, 64);
    if (t && !std::regex_match(*t, kTimestamp))
      throw HttpError{400, std::string(name) + " must be an RFC 3339 time (2026-01-31T09:12:00Z)"};
    (std::string(name) == "from" ? r.selection.from : r.selection.to) = t;
  }
  if (body.contains("status")) {
    Json statuses = body.at("status");
    if (statuses.is_string()) statuses = Json::array({statuses});
    if (!statuses.is_array() || statuses.empty())
      throw HttpError{400, "status must be a run status or a list of them"};
    for (const auto& s : statuses) {
      if (!s.is_string() || !kStatuses.count(s.get<std::string>()))
        throw HttpError{400,
                        "status: each must be one of pending, running, waiting, parked, "
                        "paused, succeeded, failed, cancelled"};
      r.selection.statuses.push_back(s.get<std::string>());
    }
  }
  r.selection.subject = text_field(body, "chart_id", 200);
  r.selection.failed_step = text_field(body, "failed_step", 100);
  if (r.selection.failed_step && !std::regex_match(*r.selection.failed_step, kStepName))
    throw HttpError{400, "failed_step must be a step name"};
  r.dry_run = bool_field(body, "dry_run", true);
  r.resend = bool_field(body, "resend", false);
  r.force = bool_field(body, "force", false);
  r.reason = text_field(body, "reason", kMaxReason).value_or("");
  if (r.force && r.reason.empty())
    throw HttpError{400, "force needs a reason: why bills already sent go out again"};
  if (body.contains("batch_size")) {
    const Json& b = body.at("batch_size");
    if (!b.is_number_integer() || b.get<std::int64_t>() < 1 || b.get<std::int64_t>() > 1000)
      throw HttpError{400, "batch_size must be an integer from 1 to 1000"};
    r.batch_size = b.get<int>();
  }
  return r;
}

Response start(runtime::Engine& engine, Request& req) {
  runtime::ReprocessRequest request;
  try {
    request = parse_request(req);
  } catch (const HttpError& e) {
    // A refused start is on the record; a refused dry run changed nothing and is not.
    const Json body = req.body.empty() ? Json() : Json::parse(req.body, nullptr, false);
    const bool dry_run = body.is_object() && body.value("dry_run", Json(true)) == Json(true);
    if (!dry_run) {
      auto entry = audit_entry(req, "reprocess.start", "workflow",
                               body.is_object() ? body.value("workflow", Json("")).dump() : "");
      entry.outcome = "failure";
      entry.detail["refused"] = e.message;
      audit_now(engine, entry);
    }
    throw;
  }
  try {
    if (request.dry_run) return Response::json(200, engine.reprocess_preview(request));
    auto entry = audit_entry(req, "reprocess.start", "workflow", request.selection.workflow);
    Json job =
        engine.start_reprocess(request, entry.actor, [&](Sql& sql, std::int64_t job_id, int total) {
          entry.detail = {{"job", job_id},
                          {"selection", request.selection.to_json()},
                          {"resend", request.resend},
                          {"force", request.force},
                          {"runs", total}};
          if (!request.reason.empty()) entry.detail["reason"] = request.reason;
          auth::record(sql, entry);
        });
    return Response::json(202, job);
  } catch (const runtime::ReprocessRejected& e) {
    return Response::error(e.not_found ? 404 : 400, e.what());
  }
}

}  // namespace

void add_reprocess_routes(Router& router, runtime::Engine& engine) {
  router.add("POST", "/v1/reprocess", "reprocess", Access::of({Role::kOperator}),
             [&engine](Request& req) { return start(engine, req); });
  router.add("GET", "/v1/reprocess", "reprocess_jobs", Access::of({Role::kOperator}),
             [&engine](Request&) {
               return Response::json(200, Json{{"jobs", engine.reprocess_jobs(50)}});
             });
  router.add("GET", "/v1/reprocess/{id}", "reprocess_job", Access::of({Role::kOperator}),
             [&engine](Request& req) {
               const auto id = parse_id(req.param("id"), "job id");
               auto job = engine.reprocess_job(id);
               if (!job) return Response::error(404, "no reprocess job " + std::to_string(id));
               return Response::json(200, *job);
             });
  router.add("POST", "/v1/reprocess/{id}/cancel", "reprocess_cancel", Access::of({Role::kOperator}),
             [&engine](Request& req) {
               const auto id = parse_id(req.param("id"), "job id");
               auto entry = audit_entry(req, "reprocess.cancel", "reprocess", std::to_string(id));
               std::string message;
               const auto r = engine.cancel_reprocess(id, &message, [&](Sql& sql) {
                 auth::record(sql, entry);
                 return true;
               });
               if (r == runtime::Engine::CommandResult::kNotFound)
                 return Response::error(404, message);
               if (r == runtime::Engine::CommandResult::kConflict)
                 return Response::error(409, message);
               return Response::json(200, engine.reprocess_job(id).value_or(Json::object()));
             });
}

}  // namespace chartflow::http
