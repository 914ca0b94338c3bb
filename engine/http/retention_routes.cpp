#include "http/retention_routes.hpp"

#include <string>

#include "auth/audit.hpp"
#include "http/audit_context.hpp"
#include "http/operator_reason.hpp"
#include "store/retention_store.hpp"

namespace chartflow::http {
namespace {

constexpr std::size_t kMaxSubject = 200;

std::string subject_of(const Json& body) {
  const Json* s = body.is_object() && body.contains("subject") ? &body.at("subject") : nullptr;
  if (s == nullptr || !s->is_string() || s->get<std::string>().empty())
    throw HttpError{400, "subject must be a non-empty string (the chart id whose runs are held)"};
  auto subject = s->get<std::string>();
  if (subject.size() > kMaxSubject)
    throw HttpError{400, "subject is longer than " + std::to_string(kMaxSubject) + " bytes"};
  return subject;
}

std::string actor_of(const auth::AuditEntry& entry) {
  return entry.actor_name ? *entry.actor_name + " (" + entry.actor + ")" : entry.actor;
}

bool dry_run_of(const Request& req) {
  if (req.body.empty()) return false;
  const Json body = parse_json_body(req);
  if (!body.is_object()) throw HttpError{400, "the body must be a JSON object"};
  if (!body.contains("dry_run")) return false;
  if (!body.at("dry_run").is_boolean()) throw HttpError{400, "dry_run must be true or false"};
  return body.at("dry_run").get<bool>();
}

}  // namespace

void add_retention_routes(Router& router, runtime::Engine& engine) {
  router.add("GET", "/v1/retention", "retention", Access::of({Role::kOperator}),
             [&engine](Request&) {
               Json out;
               engine.read([&](Sql& sql) { out = store::retention_status(sql); });
               out["settings"] = engine.retention().to_json();
               return Response::json(200, out);
             });

  router.add("POST", "/v1/retention/expire", "retention_expire", Access::of({Role::kAdmin}),
             [&engine](Request& req) {
               const bool dry = dry_run_of(req);
               Json out = engine.expire_now(dry);
               if (out.value("busy", false))
                 return Response::error(
                     409, "another node is archiving or expiring right now: try again shortly");
               if (!dry) {
                 auto entry = audit_entry(req, "retention.expire", "retention", "");
                 entry.detail["partitions"] = out["dropped"].size();
                 entry.detail["bytes"] = out["bytes"];
                 audit_now(engine, entry);
               }
               return Response::json(200, out);
             });

  router.add("GET", "/v1/holds", "holds", Access::of({Role::kOperator}), [&engine](Request&) {
    Json holds;
    engine.read([&](Sql& sql) { holds = store::list_holds(sql); });
    return Response::json(200, Json{{"holds", holds}});
  });

  router.add("POST", "/v1/holds", "hold_add", Access::of({Role::kAdmin}), [&engine](Request& req) {
    const Json body = parse_json_body(req);
    const std::string subject = subject_of(body);
    const std::string reason =
        operator_reason(req, true, "reason is required: why this chart's runs must be kept");
    auto entry = audit_entry(req, "retention.hold", "subject", subject);
    entry.detail["reason"] = reason;
    std::optional<Json> hold;
    engine.transaction([&](Sql& sql) {
      hold = store::add_hold(sql, subject, reason, actor_of(entry));
      if (hold) auth::record(sql, entry);
    });
    if (!hold) {
      entry.outcome = "failure";
      entry.detail["refused"] = "already held";
      audit_now(engine, entry);
      return Response::error(409, "subject " + subject + " is already held");
    }
    return Response::json(201, *hold);
  });

  router.add("DELETE", "/v1/holds/{subject}", "hold_release", Access::of({Role::kAdmin}),
             [&engine](Request& req) {
               const std::string& subject = req.param("subject");
               const std::string reason = operator_reason(
                   req, true, "reason is required: why this chart's runs may now expire");
               auto entry = audit_entry(req, "retention.release", "subject", subject);
               entry.detail["reason"] = reason;
               bool released = false;
               engine.transaction([&](Sql& sql) {
                 released = store::release_hold(sql, subject);
                 if (released) auth::record(sql, entry);
               });
               if (!released) {
                 entry.outcome = "failure";
                 entry.detail["refused"] = "not held";
                 audit_now(engine, entry);
                 return Response::error(404, "subject " + subject + " is not held");
               }
               return Response::json(200, Json{{"subject", subject}, {"released", true}});
             });
}

}  // namespace chartflow::http
