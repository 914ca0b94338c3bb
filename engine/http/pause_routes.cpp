#include "http/pause_routes.hpp"

#include <string>

#include "auth/audit.hpp"
#include "config/workflow_validation.hpp"
#include "http/audit_context.hpp"
#include "http/operator_reason.hpp"

namespace chartflow::http {
namespace {

using CommandResult = store::Store::CommandResult;
using PauseCommand = runtime::Engine::PauseCommand;
using PauseFn =
    std::function<CommandResult(PauseCommand&, std::string*, const store::Store::BeforeCommand&)>;

// One command with its audit record: written in the command's transaction when it succeeds, on
// its own when it is refused (the refused transaction rolled back).
Response audited_pause(runtime::Engine& engine, const Request& req, auth::AuditEntry entry,
                       bool pausing, Json answer, const PauseFn& fn) {
  PauseCommand command;
  // Shown on the dashboard: the credential's name where it has one, with its id.
  command.by = entry.actor_name ? *entry.actor_name + " (" + entry.actor + ")" : entry.actor;
  if (pausing) {
    command.reason = operator_reason(req, false);
    if (!command.reason.empty()) entry.detail["reason"] = command.reason;
  }
  std::string message;
  const auto r = fn(command, &message, [&](Sql& sql) {
    auth::record(sql, entry);
    return true;
  });
  if (r == CommandResult::kOk) {
    answer["result"] = message;
    answer["in_flight"] = command.in_flight;
    if (!pausing) answer["released"] = command.released;
    return Response::json(202, answer);
  }
  entry.outcome = "failure";
  entry.detail["refused"] = r == CommandResult::kNotFound ? "not found" : message;
  audit_now(engine, entry);
  return Response::error(r == CommandResult::kNotFound ? 404 : 409, message);
}

std::string workflow_param(const Request& req) {
  const std::string& name = req.param("name");
  if (!config::valid_workflow_name(name))
    throw HttpError{400,
                    "workflow must be a workflow name (lower-case letters, digits, ., _ and -)"};
  return name;
}

}  // namespace

void add_pause_routes(Router& router, runtime::Engine& engine) {
  for (const bool pausing : {true, false}) {
    const std::string verb = pausing ? "pause" : "resume";
    router.add("POST", "/v1/workflows/{name}/" + verb, "workflow_" + verb,
               Access::of({Role::kOperator}), [&engine, pausing, verb](Request& req) {
                 const std::string name = workflow_param(req);
                 return audited_pause(
                     engine, req, audit_entry(req, "workflow." + verb, "workflow", name), pausing,
                     Json{{"workflow", name}},
                     [&](PauseCommand& c, std::string* m, const store::Store::BeforeCommand& b) {
                       return pausing ? engine.pause_workflow(name, c, m, b)
                                      : engine.resume_workflow(name, c, m, b);
                     });
               });
    router.add("POST", "/v1/runs/{id}/" + verb, "run_" + verb, Access::of({Role::kOperator}),
               [&engine, pausing, verb](Request& req) {
                 const auto id = parse_id(req.param("id"), "run id");
                 return audited_pause(
                     engine, req, audit_entry(req, "run." + verb, "run", std::to_string(id)),
                     pausing, Json{{"run_id", id}},
                     [&](PauseCommand& c, std::string* m, const store::Store::BeforeCommand& b) {
                       return pausing ? engine.pause_run(id, c, m, b)
                                      : engine.resume_run(id, c, m, b);
                     });
               });
  }
}

}  // namespace chartflow::http
