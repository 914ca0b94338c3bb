// Test support: the whole application as `chartflow serve` wires it (shipped workflows and
// handlers, authentication, every route) on the test's schema, listening on a free port.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "engine/module.hpp"
#include "http/module_services.hpp"
#include "http/router.hpp"
#include "http/s3_config.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"
#include "tests/support/http_client.hpp"

namespace chartflow::testing {

// What every test's server gets unless it says otherwise: a free port and two io threads.
http::ServerSettings test_server_settings();

class AppServer {
 public:
  // `s3`: the S3 API's keys and buckets (default: bucket "charts", one uploader key).
  explicit AppServer(const std::string& dsn, http::ServerSettings server = test_server_settings(),
                     std::shared_ptr<http::S3Config> s3 = nullptr);
  ~AppServer();

  unsigned short port() const { return server_->port(); }
  const http::Router& router() const { return router_; }
  runtime::Engine& engine() { return *engine_; }
  // One request with `token` as bearer credential (none when empty).
  HttpResponse call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "", std::map<std::string, std::string> headers = {});

 private:
  metrics::Metrics metrics_;
  http::Router router_;
  std::unique_ptr<ModuleRegistry> modules_;
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<http::ModuleServices> services_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace chartflow::testing
