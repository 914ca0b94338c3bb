// The engine's JSON API: events, runs, commands, workflows, logs, health and metrics.
#pragma once

#include "http/router.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

// public_metrics: /metrics answers without a credential (--public-metrics, for a Prometheus that
// cannot send a bearer token); by default it needs the operator role.
void add_engine_routes(Router& router, runtime::Engine& engine, metrics::Metrics& metrics,
                       bool public_metrics = false);
// since/until query parameters: RFC 3339, or HH:MM meaning today in the server's time zone.
std::optional<std::string> parse_time_param(const Request& req, const char* name);

}  // namespace chartflow::http
