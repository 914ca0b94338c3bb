// Moving runs to another version of their workflow in the API (issue #17 item 6):
// POST /v1/workflows/{name}/migrate {"from": N, "to": M, "map": {"old": "new"}, "dry_run": true}.
// A dry run answers the plan per run; a move moves the movable runs, each audited (run.migrate)
// in its own transaction, and the whole as workflow.migrate with its counts. Operator role.
#pragma once

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

void add_migrate_routes(Router& router, runtime::Engine& engine);

}  // namespace chartflow::http
