// Signalling a run from inside a transaction a module already has: a step's Sql (StepContext::
// sql) or a route's (EngineServices::transaction). The signal commits with the caller's writes
// and not otherwise, so a run woken to read what the caller wrote always finds it (a signal
// sent after the commit could be lost to a crash; one sent before could wake the run too early).
#pragma once

#include <cstdint>
#include <string>

#include "engine/handler.hpp"

namespace chartflow {

// Delivers signal `name` to the step of run `run_id` waiting for it, or keeps it for that step's
// next WaitForSignal, in `sql`'s transaction (the run's row stays locked until it commits). A
// wake-up only: when a kept signal of the same name is still unconsumed, nothing more is kept,
// so a run woken by many callers wakes once; and it never waits for the run's row: a row
// another transaction holds is left alone ("busy"), so a run that polls must not count on
// every wake. Returns "delivered", "stored", "pending" (one was kept already), "busy" (the row
// is held, or there is no such run), "not_found" or "ended:<status>".
std::string wake_run(Sql& sql, std::int64_t run_id, const std::string& name);

}  // namespace chartflow
