#include "http/module_services.hpp"

#include "core/input_limits.hpp"
#include "http/audit_context.hpp"
#include "store/auth_store.hpp"
#include "store/retention_store.hpp"

namespace chartflow::http {

IngestResult ModuleServices::ingest(EventInput event, const BeforeIngest& before) {
  return engine_.ingest(std::move(event), before);
}

EngineServices::CommandResult ModuleServices::signal(std::int64_t run_id, const std::string& name,
                                                     const Json& payload, std::string* message,
                                                     const std::function<bool(Sql&)>& before) {
  // `payload` is passed on by reference: a `before` that records a decision may fill it in.
  switch (engine_.signal(run_id, name, payload, message, before)) {
    case store::Store::CommandResult::kOk:
      return CommandResult::kOk;
    case store::Store::CommandResult::kNotFound:
      return CommandResult::kNotFound;
    default:
      return CommandResult::kConflict;
  }
}

Json ModuleServices::runs_of_subject(const std::string& subject, int limit) {
  store::Store::RunFilter f;
  f.subject = subject;
  f.limit = limit;
  return engine_.list_runs(f).at("runs");
}

std::map<std::string, std::string> ModuleServices::credential_names(
    const std::vector<std::string>& subjects) {
  std::map<std::string, std::string> names;
  if (subjects.empty()) return names;
  engine_.read([&](Sql& sql) { names = store::credential_names(sql, subjects); });
  return names;
}

void ModuleServices::transaction(const std::function<void(Sql&)>& fn) { engine_.transaction(fn); }

void ModuleServices::read(const std::function<void(Sql&)>& fn) { engine_.read(fn); }

void ModuleServices::audit(Sql& sql, const AuditEntry& entry) { auth::record(sql, entry); }

void ModuleServices::audit_now(const AuditEntry& entry) { http::audit_now(engine_, entry); }

void ModuleServices::count_refusal(const AuditEntry& entry) {
  http::count_refusal_now(engine_, entry);
}

std::vector<std::string> ModuleServices::held_subjects() {
  std::vector<std::string> out;
  engine_.read([&](Sql& sql) {
    for (const auto& h : store::list_holds(sql)) out.push_back(h.at("subject").get<std::string>());
  });
  return out;
}

std::optional<std::string> ModuleServices::upload_limit_breach(std::string_view content) const {
  if (content.size() > limits_.upload_body_bytes)
    return "the content has " + std::to_string(content.size()) +
           " bytes, more than the upload limit of " + std::to_string(limits_.upload_body_bytes);
  if (auto breach = core::check_json_limits(
          content, core::JsonLimits{limits_.json_depth, limits_.bundle_entries}))
    return breach->describe();
  return std::nullopt;
}

void ModuleServices::count_event(const std::string& type) {
  if (metrics_) metrics_->event_received(type);
}

void add_module_routes(Router& router, EngineServices& services, const ModuleRegistry& modules) {
  modules.services()->bind(&services);
  for (const auto& r : modules.routes())
    router.add(r.method, r.pattern, r.name, r.access,
               [&services, handler = r.handler](Request& req) { return handler(services, req); });
}

IntakeFn bind_intake(EngineServices& services, const ModuleRegistry& modules,
                     const std::string& name) {
  const IntakeHook* hook = modules.intake(name);
  if (!hook) return nullptr;
  return [&services, hook = *hook](const IntakeRequest& r) { return hook(services, r); };
}

BoundIntake bind_intake_with_access(EngineServices& services, const ModuleRegistry& modules,
                                    const std::string& name) {
  BoundIntake out{bind_intake(services, modules, name), nullptr};
  if (const SubjectAccess* access = modules.read_access(name)) out.may_read = *access;
  return out;
}

}  // namespace chartflow::http
