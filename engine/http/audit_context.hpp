// Audit records and access scoping for HTTP requests: the actor is the request's principal.
#pragma once

#include <string>

#include "auth/audit.hpp"
#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

// Writes one record in a transaction of its own: for refusals and failures, whose action left
// no transaction to write it in. A failure to write is logged, never thrown.
void audit_now(runtime::Engine& engine, const auth::AuditEntry& entry);
// The same for a read whose data may only leave with its record: throws when the write fails.
void audit_or_throw(runtime::Engine& engine, const auth::AuditEntry& entry);

// A refused attempt of someone not authenticated (a bad token, signature or password): counted
// per (source, minute), not a record each (see auth::count_refusal), so a flood of them cannot
// grow the undeletable audit table. A failure to count is logged, never thrown.
void count_refusal_now(runtime::Engine& engine, const auth::AuditEntry& entry);

// Operators see runs, never chart content.
bool sees_chart_content(const Request& req);

}  // namespace chartflow::http
