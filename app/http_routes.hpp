// Every route `chartflow serve` answers, in the order it registers them: authentication, the
// engine's API, the dashboard, the modules' routes and (with an S3 configuration) the S3 API with
// the chart module's intake. One function, so the route matrix test exercises what serve runs.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "engine/module.hpp"
#include "http/api_routes.hpp"
#include "http/auth_routes.hpp"
#include "http/module_services.hpp"
#include "http/router.hpp"
#include "http/s3_config.hpp"
#include "http/server.hpp"
#include "http/webhook_auth.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"

namespace chartflow::app {

struct HttpRouteOptions {
  http::AuthSettings auth;
  bool public_metrics = false;                                  // --public-metrics
  std::shared_ptr<const http::WebhookSecrets> webhook_secrets;  // null: no type is signed
  http::UnhealthyReason unhealthy;                              // null: /healthz is always 200
  std::optional<std::filesystem::path> dashboard;               // none: / and /ui/ answer 404
  std::shared_ptr<const http::S3Config> s3;                     // null: no S3 API
};

// Registers every route on `router` and counts each answer in `metrics`. With S3 buckets the
// server's limits change too (their objects are uploads of any kind), so `server` is adjusted
// here and must be handed to the Server afterwards. `engine`, `services`, `modules` and `metrics`
// must outlive the router.
void add_http_routes(http::Router& router, runtime::Engine& engine, http::ModuleServices& services,
                     const ModuleRegistry& modules, metrics::Metrics& metrics,
                     const HttpRouteOptions& options, http::ServerSettings& server);

}  // namespace chartflow::app
