// The audit trail: who did what to which resource, when, from where, with what outcome. Records
// carry ids, never chart content. audit_event is append-only (triggers reject UPDATE, DELETE and
// TRUNCATE) and hash-chained: each record's hash covers the previous hash and its own canonical
// text, so `verify_chain` finds the first record changed or removed behind chartflow's back.
// Write a record in the transaction of the action it describes, so neither exists without the
// other. Records go in unsealed, without waiting for one another; `seal` chains the committed
// ones (audit_event_seal() in schema/engine/0003_auth.sql), so the chain covers a record from its
// first seal on. Safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/audit.hpp"
#include "engine/handler.hpp"
#include "store/audit_store.hpp"

namespace chartflow::auth {

using chartflow::AuditEntry;

// A string field of the detail named "path" is cut to kMaxAuditPath bytes (at a UTF-8
// character boundary): a request's path is the client's to choose, the record's size is not.
void record(Sql& sql, const AuditEntry& entry);
inline constexpr std::size_t kMaxAuditPath = 256;
// `text` cut to at most `max_bytes` bytes without splitting a UTF-8 character.
std::string clip(std::string_view text, std::size_t max_bytes);

// A refused attempt of someone not authenticated (an unknown bearer token, a failed or throttled
// sign-in): instead of a record each, counted per (action, outcome, remote, minute) in
// audit_refusal; sealing writes one record per bucket once its minute is over (detail: count,
// minute, first_at, last_at, reason, path, names). Takes entry.action, outcome, remote,
// actor_name (a user name tried) and detail's "reason" and "path" (clipped).
void count_refusal(Sql& sql, const AuditEntry& entry);

// Folds the refusal buckets of minutes that are over into records, then chains every committed
// unsealed record; returns how many it chained. Cheap when there are none.
int seal(Sql& sql);
// True once since this process last asked, if it has recorded anything (or counted a refusal
// whose minute is now over): the server's sealer asks so that an idle server sends no query.
bool take_unsealed();
// Puts back what take_unsealed took, after a seal that failed.
void record_pending_again();

// since, until (RFC 3339), actor, action, after (paging cursor: records with id < after), limit.
using AuditFilter = store::AuditFilter;
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
  // Where the intact chain ends (after a point-in-time restore: the last record restored).
  std::optional<std::int64_t> head_id;
  std::string head_at;
  // With an expected head: its position (seq) in the intact chain, or nullopt when no record
  // has that hash (the newest records were removed, or the chain rewritten); then ok is false.
  std::optional<std::int64_t> anchor_seq;
};
// Seals, then walks the chain in seq order. `expected_head`: a head hash noted earlier (see
// AuditSealer's head export); the chain must still contain that record.
VerifyResult verify_chain(Sql& sql, const std::optional<std::string>& expected_head = {});

// Seals, then the newest record's seq (the chain's length) and hash.
using AuditHead = store::AuditHead;
AuditHead head(Sql& sql);

}  // namespace chartflow::auth
