// Test support: the whole application as `chartflow serve` wires it (shipped workflows and
// handlers, authentication, every route through app::add_http_routes, serve's own registration)
// on the test's schema, listening on a free port.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app/http_routes.hpp"
#include "engine/module.hpp"
#include "handlers/chart_settings.hpp"
#include "http/module_services.hpp"
#include "http/router.hpp"
#include "http/s3_config.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"
#include "runtime/trace_export.hpp"
#include "runtime/workflow_registry.hpp"
#include "tests/support/http_client.hpp"

namespace chartflow::testing {

// What every test's server gets unless it says otherwise: a free port and two io threads.
http::ServerSettings test_server_settings();

class AppServer {
 public:
  // `s3`: the S3 API's keys and buckets (default: bucket "charts", one uploader key).
  // `routes`: serve's options (its `s3` is replaced by `s3` or the default).
  // `chart`: settings that replace the shipped settings files (e.g. fhir_subscriptions).
  // `traces`: where the engine's spans go (--otlp-endpoint); null: none are recorded.
  explicit AppServer(const std::string& dsn, http::ServerSettings server = test_server_settings(),
                     std::shared_ptr<http::S3Config> s3 = nullptr,
                     app::HttpRouteOptions routes = {}, handlers::ChartHandlerOptions chart = {},
                     std::shared_ptr<runtime::TraceExporter> traces = nullptr);
  ~AppServer();

  unsigned short port() const { return server_->port(); }
  const http::Server& server() const { return *server_; }
  const http::Router& router() const { return router_; }
  runtime::Engine& engine() { return *engine_; }
  // Adds workflows (YAML) beside the shipped ones, as a workflows folder with more files would:
  // for states the shipped workflows reach only slowly (a parked step, a run awaiting a signal).
  void publish_workflows(const std::vector<std::string>& workflow_yaml);
  // One request with `token` as bearer credential (none when empty).
  HttpResponse call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "",
                    std::map<std::string, std::string> headers = {}) const;

 private:
  metrics::Metrics metrics_;
  http::Router router_;
  std::unique_ptr<ModuleRegistry> modules_;
  std::shared_ptr<HandlerRegistry> handlers_;
  std::shared_ptr<runtime::WorkflowRegistry> registry_;
  std::string dsn_;
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<http::ModuleServices> services_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace chartflow::testing
