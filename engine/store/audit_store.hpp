// The audit trail's table, audit_event: append-only (triggers reject UPDATE, DELETE and TRUNCATE)
// and hash-chained by audit_event_seal() (schema/engine/0003_auth.sql). auth/audit.hpp keeps
// what is not SQL: when to seal, paging, the FHIR export and the chain check. Every function
// runs in the caller's transaction. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/audit.hpp"
#include "engine/handler.hpp"

namespace chartflow::store {

// Inserts the record unsealed (no seq, no hash yet).
void insert_audit_event(Sql& sql, const AuditEntry& entry);
// Chains every committed unsealed record; returns how many.
int seal_audit_events(Sql& sql);

// Counts a refused unauthenticated attempt in its (action, outcome, remote, this minute) bucket
// of audit_refusal instead of writing a record: `reason` and `path` are kept from the first
// attempt of the bucket, `name` (a user name tried) joins the bucket's first ten.
void count_audit_refusal(Sql& sql, const std::string& action, const std::string& outcome,
                         const std::string& remote, const std::optional<std::string>& reason,
                         const std::optional<std::string>& path,
                         const std::optional<std::string>& name);
// Writes one audit_event record (actor "anonymous", detail {aggregated, count, minute, first_at,
// last_at, reason, path, names}) per bucket of a minute that is over (every bucket with
// `include_current_minute`) and deletes the buckets; returns how many records it wrote.
int fold_audit_refusals(Sql& sql, bool include_current_minute = false);

// The newest sealed record: its seq (the chain's length) and hash; {0, ""} for an empty chain.
struct AuditHead {
  std::int64_t count = 0;
  std::string hash;
};
AuditHead audit_head(Sql& sql);

struct AuditFilter {
  std::optional<std::string> since, until;  // RFC 3339
  std::optional<std::string> actor, action;
  std::optional<std::int64_t> after;  // paging cursor: records with id < after
  int limit = 100;
};
// Up to filter.limit records, newest first: [{id, at, actor, actor_name, role, action,
// resource_type, resource_id, remote, outcome, detail, seq, hash}], id and seq as numbers, detail
// as JSON, at in RFC 3339 with microseconds.
Json audit_events(Sql& sql, const AuditFilter& filter);
// Up to `limit` sealed records with seq > after_seq in seq order, as column text (nulls as ''):
// [{id, at, actor, actor_name, role, action, resource_type, resource_id, remote, outcome, detail,
// seq, hash}], for checking the chain.
Json audit_chain_page(Sql& sql, std::int64_t after_seq, int limit);

}  // namespace chartflow::store
