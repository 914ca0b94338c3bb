// The chart API: uploads (stored as revisions and turned into chart.uploaded events in one
// transaction), chart and revision reads, the doctor's review worklist and decisions, ledger and
// insurer deliveries.
#pragma once

#include "http/router.hpp"
#include "metrics/metrics.hpp"
#include "runtime/chart_upload.hpp"

namespace chartflow::http {

using runtime::kChartUploadedEvent;

void add_chart_routes(Router& router, runtime::Engine& engine, metrics::Metrics* metrics);

}  // namespace chartflow::http
