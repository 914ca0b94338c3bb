// Debounced triggers in the runtime (workflow files: `debounce`): what an event's debounce
// key is, and how the workflows list shows the settings and pending starts. The pending starts
// themselves are rows (store/debounce_store.cpp); the dispatcher starts the due ones
// (Engine::start_debounced).
#pragma once

#include <optional>

#include "core/workflow.hpp"
#include "store/types.hpp"

namespace chartflow::runtime {

// The pending start this event joins, or nullopt when the event has no value at the key (null
// counts as none): it cannot be coalesced and starts its run at once.
std::optional<store::DebouncePlan> debounce_plan(const core::Debounce& debounce,
                                                 const store::Json& body);

// Adds to each workflow of Store::list_workflows its latest version's debounced triggers,
// "debounce": [{"event", "key", "window_ms", "max_wait_ms"}], and "debounce_pending": how many
// starts wait (`pending`: Store::debounce_pending_counts).
void describe_debounce(store::Json& workflows, const store::Json& pending);

}  // namespace chartflow::runtime
