// Test support: one chartflow process as far as the database can tell, serving the engine's API
// (its routes and sign-in) over the workflows an EngineHarness published: its own engine,
// instance id, metrics (each loaded workflow declared, as serve does) and HTTP server on a port
// of its own. Destroying it stops the server and drains the engine, as a clean shutdown does.
#pragma once

#include <memory>
#include <string>

#include "http/router.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"
#include "runtime/engine.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/http_client.hpp"

namespace chartflow::testing {

class ServedEngine {
 public:
  // `settings` as the test wants them (workers, batch size, poll interval); the DSN is set here.
  ServedEngine(const std::string& dsn, EngineHarness& harness, runtime::EngineSettings settings);
  ~ServedEngine();
  ServedEngine(const ServedEngine&) = delete;
  ServedEngine& operator=(const ServedEngine&) = delete;

  runtime::Engine& engine() { return *engine_; }
  int port() const { return server_->port(); }
  // A request with `token` as its bearer credential.
  HttpResponse call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") const;

 private:
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<metrics::Metrics> metrics_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace chartflow::testing
