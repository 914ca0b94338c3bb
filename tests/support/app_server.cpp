#include "tests/support/app_server.hpp"

#include <gtest/gtest.h>

#include "app/modules.hpp"
#include "config/workflow_loader.hpp"
#include "http/api_routes.hpp"
#include "http/app_routes.hpp"
#include "http/auth_routes.hpp"
#include "http/s3_routes.hpp"
#include "http/static_files.hpp"
#include "runtime/handler_setup.hpp"
#include "tests/support/auth_support.hpp"

namespace chartflow::testing {

http::ServerSettings test_server_settings() {
  http::ServerSettings ss;
  ss.port = 0;
  ss.threads = 2;
  return ss;
}

AppServer::AppServer(const std::string& dsn, http::ServerSettings server,
                     std::shared_ptr<http::S3Config> s3) {
  const std::string workflows = std::string(CHARTFLOW_SOURCE_DIR) + "/workflows";
  modules_ = app::make_modules(workflows);
  auto handlers = modules_->handler_registry();
  auto loaded = config::load_workflow_dir(workflows, runtime::handler_check(*handlers));
  for (const auto& e : loaded.errors) ADD_FAILURE() << e.to_string();
  auto registry = std::make_shared<runtime::WorkflowRegistry>();
  {
    store::Store s(dsn);
    registry->publish(s, loaded.workflows);
  }
  runtime::EngineSettings settings;
  settings.dsn = dsn;
  settings.poll_interval = std::chrono::milliseconds(200);
  engine_ = std::make_unique<runtime::Engine>(settings, handlers, registry);
  engine_->reserve_event_types(modules_->reserved_event_types());
  engine_->start();
  services_ = std::make_unique<http::ModuleServices>(*engine_, &metrics_);
  http::add_auth(router_, *engine_);
  http::add_engine_routes(router_, *engine_, metrics_);
  // The S3 API as `serve --s3-config` adds it, so the route matrix sees every route.
  if (!s3) {
    s3 = std::make_shared<http::S3Config>();
    s3->buckets["charts"] = true;
    s3->keys["AKIATESTUPLOADER"] = {"test-secret-of-sixteen-plus", http::Role::kUploader, {}};
  }
  http::add_app_routes(router_, http::find_dashboard(std::nullopt),
                       [s3](http::Request& req) { return http::s3_root(req, *s3); });
  http::add_module_routes(router_, *services_, *modules_);
  http::add_s3_routes(router_, *engine_, s3,
                      http::bind_intake_with_access(*services_, *modules_, "chart"));
  server_ = std::make_unique<http::Server>(std::move(server), router_);
  server_->start();
}

AppServer::~AppServer() {
  server_->stop();
  engine_->drain();
}

HttpResponse AppServer::call(const std::string& method, const std::string& target,
                             const std::string& token, const std::string& body,
                             std::map<std::string, std::string> headers) {
  if (!token.empty()) headers = with_bearer(token, std::move(headers));
  return request(method, "127.0.0.1", port(), target, body, headers);
}

}  // namespace chartflow::testing
