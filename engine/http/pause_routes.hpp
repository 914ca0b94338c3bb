// Pausing in the API: POST /v1/workflows/{name}/pause | resume and POST /v1/runs/{id}/pause |
// resume, with an optional {"reason": "..."}; each audited in the command's own transaction.
// Operator role (admin reaches every route).
#pragma once

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

void add_pause_routes(Router& router, runtime::Engine& engine);

}  // namespace chartflow::http
