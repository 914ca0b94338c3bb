#include "http/parked_routes.hpp"

#include <regex>
#include <string>

#include "auth/audit.hpp"
#include "http/audit_context.hpp"
#include "http/operator_reason.hpp"

namespace chartflow::http {
namespace {

using ParkedAction = store::Store::ParkedAction;

// A step's name, or an element of a for_each step (`send_bill[1]`, sent as `send_bill%5B1%5D`).
const std::regex kStepName(R"(^[a-z0-9_-]{1,100}(\[[0-9]{1,9}\])?$)");
constexpr int kDefaultParkedLimit = 200;

Response decide(runtime::Engine& engine, Request& req, ParkedAction action, const char* name) {
  const auto id = parse_id(req.param("id"), "run id");
  const std::string& step = req.param("step");
  if (!std::regex_match(step, kStepName))
    throw HttpError{400,
                    "step must be a step name (lower-case letters, digits, _ and -), or an "
                    "element of a for_each step (name[index])"};
  const std::string reason =
      operator_reason(req, action == ParkedAction::kSkip,
                      R"(a skip needs a reason: {"reason": "why the step need not run"})");
  auto entry = audit_entry(req, std::string("step.") + name, "run", std::to_string(id));
  entry.detail = {{"step", step}};
  if (!reason.empty()) entry.detail["reason"] = reason;
  std::string message;
  const auto r = engine.act_on_parked(id, step, action, reason, &message, [&](Sql& sql) {
    auth::record(sql, entry);
    return true;
  });
  switch (r) {
    case store::Store::CommandResult::kOk:
      return Response::json(202, Json{{"run_id", id}, {"step", step}, {"result", message}});
    case store::Store::CommandResult::kNotFound:
      entry.outcome = "failure";
      entry.detail["reason"] = "not found";
      audit_now(engine, entry);
      return Response::error(404, message);
    default:
      // Refused: the command's transaction, audit record included, rolled back.
      entry.outcome = "failure";
      entry.detail["refused"] = message;
      audit_now(engine, entry);
      return Response::error(409, message);
  }
}

// What a step said while it failed may name the patient of a chart run: operators see that it
// failed, admins what it said (as on the run page).
void redact_chart_errors(Request& req, Json& parked) {
  if (sees_chart_content(req)) return;
  for (auto& s : parked["steps"])
    if (s.value("event_type", "").starts_with("chart.") && !s.at("error").is_null())
      s["error"] = "(redacted: a chart run's step error is shown to admins only)";
}

int parse_parked_limit(const Request& req) {
  auto v = req.q("limit");
  if (!v) return kDefaultParkedLimit;
  const auto n = parse_id(*v, "limit");
  if (n < 1 || n > 1000) throw HttpError{400, "limit must be an integer from 1 to 1000"};
  return static_cast<int>(n);
}

}  // namespace

void add_parked_routes(Router& router, runtime::Engine& engine) {
  router.add("GET", "/v1/steps/parked", "steps_parked", Access::of({Role::kOperator}),
             [&engine](Request& req) {
               Json parked = engine.parked_steps(parse_parked_limit(req));
               redact_chart_errors(req, parked);
               return Response::json(200, parked);
             });
  const std::pair<const char*, ParkedAction> actions[] = {{"retry", ParkedAction::kRetry},
                                                          {"skip", ParkedAction::kSkip},
                                                          {"fail", ParkedAction::kFail}};
  for (const auto& [name, action] : actions)
    router.add("POST", std::string("/v1/runs/{id}/steps/{step}/") + name,
               std::string("step_") + name, Access::of({Role::kOperator}),
               [&engine, action = action, name = name](Request& req) {
                 return decide(engine, req, action, name);
               });
}

}  // namespace chartflow::http
