#include "http/audit_context.hpp"

#include "runtime/log.hpp"

namespace chartflow::http {

auth::AuditEntry audit_entry(const Request& req, std::string action, std::string resource_type,
                             std::string resource_id, std::string outcome) {
  auth::AuditEntry e;
  if (req.principal) {
    e.actor = req.principal->id;
    e.actor_name = req.principal->name;
    e.role = role_name(req.principal->role);
  } else {
    e.actor = "anonymous";
  }
  e.action = std::move(action);
  if (!resource_type.empty()) e.resource_type = std::move(resource_type);
  if (!resource_id.empty()) e.resource_id = std::move(resource_id);
  if (!req.remote.empty()) e.remote = req.remote;
  e.outcome = std::move(outcome);
  return e;
}

void audit_or_throw(runtime::Engine& engine, const auth::AuditEntry& entry) {
  // One INSERT: it commits by itself, without BEGIN and COMMIT around it.
  engine.read([&](Sql& sql) { auth::record(sql, entry); });
}

void audit_now(runtime::Engine& engine, const auth::AuditEntry& entry) {
  try {
    audit_or_throw(engine, entry);
  } catch (const std::exception& e) {
    runtime::Log::error("audit_write_failed", {{"action", entry.action}, {"error", e.what()}});
  }
}

std::optional<std::string> reviewer_scope(const Request& req) {
  if (!req.principal || req.principal->role != Role::kReviewer) return std::nullopt;
  // A reviewer credential always carries an assignee; an empty one matches no review.
  return req.principal->assignee.value_or("");
}

void count_refusal_now(runtime::Engine& engine, const auth::AuditEntry& entry) {
  try {
    engine.read([&](Sql& sql) { auth::count_refusal(sql, entry); });
  } catch (const std::exception& e) {
    runtime::Log::error("audit_write_failed", {{"action", entry.action}, {"error", e.what()}});
  }
}

bool sees_chart_content(const Request& req) {
  return !req.principal || req.principal->role != Role::kOperator;
}

}  // namespace chartflow::http
