// Writing the record of an outside call (a POST to an insurer or a bill webhook, a bill file)
// through the step journal (StepContext::journal): committed at once on a connection of its own,
// so it survives the attempt's transaction being rolled back by a retry or a crash. The rows it
// writes are written by the journal only, never by a step's transaction, so a journal write
// never waits on the step that made it. Stateless; safe from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "engine/handler.hpp"
#include "engine/util/sql_rows.hpp"

namespace chartflow::handlers {

// Runs one statement through the journal and returns its first row, or nullopt.
std::optional<Json> journal_one(StepContext& ctx, std::string_view statement,
                                const util::SqlParams& params);

// How long a claimed row stays the claiming step's: the call's own timeout and a margin for the
// records around it, in milliseconds as text for a `$n::bigint` parameter. Long enough that no
// other step sends the row while the call may still be running; a crashed step's next attempt
// takes its row over without waiting (the claim matches on the step's idempotency key).
std::string lease_millis(std::chrono::milliseconds call_timeout);

}  // namespace chartflow::handlers
