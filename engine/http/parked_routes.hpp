// Parked steps in the API: the parked view (GET /v1/steps/parked) and an operator's decision
// about one step, POST /v1/runs/{id}/steps/{step}/retry | skip | fail (skip with a reason),
// each audited in the command's own transaction. Operator role (admin reaches every route).
#pragma once

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

void add_parked_routes(Router& router, runtime::Engine& engine);

}  // namespace chartflow::http
