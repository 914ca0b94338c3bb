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

#include "engine/audit.hpp"
#include "engine/handler.hpp"
#include "store/audit_store.hpp"

namespace chartflow::auth {

using chartflow::AuditEntry;

void record(Sql& sql, const AuditEntry& entry);

// Chains every committed unsealed record; returns how many. Cheap when there are none.
int seal(Sql& sql);
// True once since this process last asked, if it has recorded anything: the server's sealer
// asks so that an idle server sends no query.
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
};
// Seals, then walks the chain in seq order.
VerifyResult verify_chain(Sql& sql);

}  // namespace chartflow::auth
