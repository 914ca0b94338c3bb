// The audit trail: who did what to which resource, when, from where, with what outcome. Records
// carry ids, never chart content. audit_event is append-only (triggers reject UPDATE, DELETE and
// TRUNCATE) and hash-chained: each record's hash covers the previous hash and its own canonical
// text, so `verify_chain` finds the first record changed or removed behind chartflow's back.
// Write a record in the transaction of the action it describes, so neither exists without the
// other. Records go in unsealed, without waiting for one another; `seal` chains the committed
// ones (schema/0007_audit_seal.sql), so the chain covers a record from its first seal on.
// Safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::auth {

struct AuditEntry {
  std::string actor;  // credential subject ("token:7", "user:alice"), "cli:<os user>", "anonymous"
  std::optional<std::string> actor_name;
  std::optional<std::string> role;
  std::string action;  // "chart.read", "chart.upload", "review.decide", "run.cancel", ...
  std::optional<std::string> resource_type;
  std::optional<std::string> resource_id;
  std::optional<std::string> remote;
  std::string outcome = "success";  // success | failure | denied
  Json detail = Json::object();     // ids, counts and reasons only
};

void record(Sql& sql, const AuditEntry& entry);

// Chains every committed unsealed record; returns how many. Cheap when there are none.
int seal(Sql& sql);
// True once since this process last asked, if it has recorded anything: the server's sealer
// asks so that an idle server sends no query.
bool take_unsealed();
// Puts back what take_unsealed took, after a seal that failed.
void record_pending_again();

struct AuditFilter {
  std::optional<std::string> since, until;  // RFC 3339
  std::optional<std::string> actor, action;
  std::optional<std::int64_t> after;  // paging cursor: records with id < after
  int limit = 100;
};
// Seals, then {"events": [{id, at, actor, actor_name, role, action, resource_type, resource_id,
// remote, outcome, detail, seq, hash}], "next": cursor|null}, newest first.
Json query_audit(Sql& sql, const AuditFilter& filter);

// The events as a FHIR R4 Bundle (type searchset) of AuditEvent resources.
Json to_fhir_bundle(const Json& events);

struct VerifyResult {
  bool ok = true;
  std::int64_t checked = 0;
  std::optional<std::int64_t> first_broken;  // id of the first record whose hash does not match
  std::string head_hash;                     // hash of the last record checked
};
// Seals, then walks the chain in seq order.
VerifyResult verify_chain(Sql& sql);

}  // namespace chartflow::auth
