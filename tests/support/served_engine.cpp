#include "tests/support/served_engine.hpp"

#include "http/api_routes.hpp"
#include "http/auth_routes.hpp"
#include "tests/support/auth_support.hpp"

namespace chartflow::testing {

ServedEngine::ServedEngine(const std::string& dsn, EngineHarness& harness,
                           runtime::EngineSettings settings) {
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  registry->load_latest(harness.store());
  settings.dsn = dsn;
  engine_ = std::make_unique<runtime::Engine>(settings, harness.handlers(), registry);
  engine_->start();
  metrics_ = std::make_unique<metrics::Metrics>();
  for (const auto& wf : registry->latest()) metrics_->declare_workflow(wf->workflow);
  router_ = std::make_unique<http::Router>();
  http::add_auth(*router_, *engine_);
  http::add_engine_routes(*router_, *engine_, *metrics_);
  http::ServerSettings ss;
  ss.host = "127.0.0.1";
  ss.port = 0;
  ss.threads = 2;
  server_ = std::make_unique<http::Server>(ss, *router_);
  server_->start();
}

ServedEngine::~ServedEngine() {
  server_->stop();
  server_.reset();
  engine_->drain();
}

HttpResponse ServedEngine::call(const std::string& method, const std::string& target,
                                const std::string& token, const std::string& body) const {
  return request(method, "127.0.0.1", port(), target, body, with_bearer(token));
}

}  // namespace chartflow::testing
