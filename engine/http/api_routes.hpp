// The engine's JSON API: events, runs, commands, workflows, logs, health and metrics.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "http/router.hpp"
#include "http/webhook_auth.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

// Why this process cannot recover by itself and should be restarted (nullopt: it can). Asked on
// every GET /healthz, so it must answer at once and never wait on the database.
using UnhealthyReason = std::function<std::optional<std::string>()>;

// public_metrics: /metrics answers without a credential (--public-metrics, for a Prometheus that
// cannot send a bearer token); by default it needs the operator role.
// `secrets`: the HMAC secrets of signed event types (null: none is signed).
// `unhealthy`: makes /healthz answer 503 with its reason (null: /healthz is always 200).
void add_engine_routes(Router& router, runtime::Engine& engine, metrics::Metrics& metrics,
                       bool public_metrics = false,
                       std::shared_ptr<const WebhookSecrets> secrets = nullptr,
                       const UnhealthyReason& unhealthy = nullptr);
// since/until query parameters: RFC 3339, or HH:MM meaning today in the server's time zone.
std::optional<std::string> parse_time_param(const Request& req, const char* name);

}  // namespace chartflow::http
