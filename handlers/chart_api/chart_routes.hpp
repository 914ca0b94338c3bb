// The chart API: uploads (stored as revisions and turned into chart.uploaded events in one
// transaction), chart and revision reads, the doctor's review worklist and decisions, ledger and
// insurer deliveries. Registered as module routes; every read of patient data is audited.
#pragma once

#include "engine/module.hpp"

namespace chartflow::handlers {

void add_chart_routes(ModuleRegistry& module);

}  // namespace chartflow::handlers
