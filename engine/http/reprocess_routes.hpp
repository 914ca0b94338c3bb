// Reprocessing runs in the API (issue #17 item 3). Operator role.
//   POST /v1/reprocess {"workflow", "from", "to", "status": [..], "chart_id", "failed_step",
//        "dry_run": true, "resend": false, "force": false, "reason": "...", "batch_size": 50}
//     dry run (the default): the blast radius, nothing written; otherwise 202 with the job,
//     audited as reprocess.start (with the selection, the flags and the reason).
//   GET  /v1/reprocess            recent jobs
//   GET  /v1/reprocess/{id}       one job and its progress
//   POST /v1/reprocess/{id}/cancel  no further batches; audited as reprocess.cancel
#pragma once

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

void add_reprocess_routes(Router& router, runtime::Engine& engine);

}  // namespace chartflow::http
