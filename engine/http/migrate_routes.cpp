#include "http/migrate_routes.hpp"

#include <cstdint>
#include <regex>
#include <string>

#include "auth/audit.hpp"
#include "config/workflow_validation.hpp"
#include "http/audit_context.hpp"

namespace chartflow::http {
namespace {

const std::regex kStepName("^[a-z0-9_-]{1,100}$");
constexpr int kMaxMigrationLimit = 10'000;

int version_field(const Json& body, const char* name) {
  if (!body.contains(name))
    throw HttpError{400, std::string(name) + " is required: a version number"};
  const Json& v = body.at(name);
  if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > INT32_MAX)
    throw HttpError{400, std::string(name) + " must be a version number (1, 2, ...)"};
  return v.get<int>();
}

runtime::RunMigrationRequest parse_request(const std::string& workflow, const Request& req) {
  const Json body = parse_json_body(req);
  if (!body.is_object()) throw HttpError{400, "the body must be a JSON object"};
  for (const auto& [key, value] : body.items())
    if (key != "from" && key != "to" && key != "map" && key != "dry_run" && key != "after" &&
        key != "limit")
      throw HttpError{400,
                      "unknown field " + key + " (expected from, to, map, dry_run, after, limit)"};
  runtime::RunMigrationRequest r;
  r.workflow = workflow;
  r.from = version_field(body, "from");
  r.to = version_field(body, "to");
  if (r.from == r.to) throw HttpError{400, "from and to are the same version; nothing would move"};
  if (body.contains("map")) {
    const Json& map = body.at("map");
    if (!map.is_object())
      throw HttpError{400, R"(map must be an object: {"old name": "new name"})"};
    for (const auto& [old_name, new_name] : map.items()) {
      if (!new_name.is_string() || !std::regex_match(old_name, kStepName) ||
          !std::regex_match(new_name.get<std::string>(), kStepName))
        throw HttpError{400, "map: each entry is a step name to a step name"};
      r.renames[old_name] = new_name.get<std::string>();
    }
  }
  if (body.contains("dry_run")) {
    if (!body.at("dry_run").is_boolean()) throw HttpError{400, "dry_run must be true or false"};
    r.dry_run = body.at("dry_run").get<bool>();
  }
  if (body.contains("after")) {
    const Json& a = body.at("after");
    if (!a.is_number_integer() || a.get<std::int64_t>() < 0)
      throw HttpError{400, "after must be a run id"};
    r.after = a.get<std::int64_t>();
  }
  if (body.contains("limit")) {
    const Json& l = body.at("limit");
    if (!l.is_number_integer() || l.get<std::int64_t>() < 1 ||
        l.get<std::int64_t>() > kMaxMigrationLimit)
      throw HttpError{400,
                      "limit must be an integer from 1 to " + std::to_string(kMaxMigrationLimit)};
    r.limit = l.get<int>();
  }
  return r;
}

Response migrate(runtime::Engine& engine, Request& req) {
  const std::string& name = req.param("name");
  if (!config::valid_workflow_name(name))
    throw HttpError{400,
                    "workflow must be a workflow name (lower-case letters, digits, ., _ and -)"};
  auto entry = audit_entry(req, "workflow.migrate", "workflow", name);
  runtime::RunMigrationRequest request;
  try {
    request = parse_request(name, req);
  } catch (const HttpError& e) {
    // A refused move is on the record; a refused dry run changed nothing and is not.
    const Json body = req.body.empty() ? Json() : Json::parse(req.body, nullptr, false);
    const bool dry_run = body.is_object() && (!body.contains("dry_run") || body["dry_run"] == true);
    if (!dry_run) {
      entry.outcome = "failure";
      entry.detail["refused"] = e.message;
      audit_now(engine, entry);
    }
    throw;
  }
  entry.detail = {{"from", request.from}, {"to", request.to}};
  if (!request.renames.empty()) entry.detail["map"] = request.renames;
  Json report;
  try {
    runtime::Engine::BeforeMove before;
    if (!request.dry_run)
      before = [&](Sql& sql, std::int64_t run_id) {
        auto run_entry = audit_entry(req, "run.migrate", "run", std::to_string(run_id));
        run_entry.detail = entry.detail;
        run_entry.detail["workflow"] = name;
        auth::record(sql, run_entry);
        return true;
      };
    report = engine.migrate_runs(request, before);
  } catch (const runtime::MigrationRejected& e) {
    if (!request.dry_run) {
      entry.outcome = "failure";
      entry.detail["refused"] = e.what();
      audit_now(engine, entry);
    }
    return Response::error(e.not_found ? 404 : 400, e.what());
  }
  // Each move committed with its own run.migrate record; this one sums the request up.
  if (!request.dry_run) {
    for (const char* count : {"candidates", "moved", "refused"})
      entry.detail[count] = report.at(count);
    audit_now(engine, entry);
  }
  return Response::json(200, report);
}

}  // namespace

void add_migrate_routes(Router& router, runtime::Engine& engine) {
  router.add("POST", "/v1/workflows/{name}/migrate", "workflow_migrate",
             Access::of({Role::kOperator}),
             [&engine](Request& req) { return migrate(engine, req); });
}

}  // namespace chartflow::http
