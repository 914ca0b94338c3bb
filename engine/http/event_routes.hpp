// Event sources over HTTP: single events (optionally HMAC-signed per type), batches stored all
// or nothing, and the Prometheus Alertmanager webhook receiver.
#pragma once

#include <memory>

#include "http/router.hpp"
#include "http/webhook_auth.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

inline constexpr std::size_t kMaxBatchEvents = 1000;

// `secrets` may be null (no type is signed).
void add_event_routes(Router& router, runtime::Engine& engine, metrics::Metrics& metrics,
                      std::shared_ptr<const WebhookSecrets> secrets);

}  // namespace chartflow::http
