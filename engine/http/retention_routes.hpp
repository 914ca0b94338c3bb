// Retention in the API (issue #17 item 5): GET /v1/retention (the policy, every partition with
// its size, the holds), POST /v1/retention/expire ({"dry_run": true} lists what the next expiry
// drops), GET /v1/holds, POST /v1/holds ({"subject", "reason"}) and DELETE /v1/holds/{subject}
// ({"reason"}). Reading is for operators; expiring and holds are an admin's, each audited.
#pragma once

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

void add_retention_routes(Router& router, runtime::Engine& engine);

}  // namespace chartflow::http
