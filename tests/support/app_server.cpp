#include "tests/support/app_server.hpp"

#include <gtest/gtest.h>

#include "app/modules.hpp"
#include "config/workflow_loader.hpp"
#include "engine/util/secret_box.hpp"
#include "http/static_files.hpp"
#include "runtime/handler_setup.hpp"
#include "store/store.hpp"
#include "tests/support/auth_support.hpp"

namespace chartflow::testing {

http::ServerSettings test_server_settings() {
  http::ServerSettings ss;
  ss.port = 0;
  ss.threads = 2;
  return ss;
}

AppServer::AppServer(const std::string& dsn, http::ServerSettings server,
                     std::shared_ptr<http::S3Config> s3, app::HttpRouteOptions routes,
                     handlers::ChartHandlerOptions chart,
                     std::shared_ptr<runtime::TraceExporter> traces)
    : dsn_(dsn) {
  const std::string workflows = std::string(CHARTFLOW_SOURCE_DIR) + "/workflows";
  // One key for every AppServer of the test binary, as every process of a deployment shares
  // one: what a server sealed opens in the server a test restarts.
  if (!chart.secrets)
    chart.secrets = std::make_shared<const util::SecretBox>(
        util::SecretBox::from_key(std::string(util::SecretBox::kKeyBytes, 'k')));
  modules_ = app::make_modules(workflows, {}, std::move(chart));
  handlers_ = modules_->handler_registry();
  auto loaded = config::load_workflow_dir(workflows, runtime::handler_check(*handlers_));
  for (const auto& e : loaded.errors) ADD_FAILURE() << e.to_string();
  registry_ = std::make_shared<runtime::WorkflowRegistry>();
  {
    store::Store s(dsn);
    registry_->publish(s, loaded.workflows);
  }
  runtime::EngineSettings settings;
  settings.dsn = dsn;
  settings.poll_interval = std::chrono::milliseconds(200);
  settings.traces = std::move(traces);
  engine_ = std::make_unique<runtime::Engine>(settings, handlers_, registry_);
  engine_->reserve_event_types(modules_->reserved_event_types());
  engine_->start();
  services_ = std::make_unique<http::ModuleServices>(*engine_, &metrics_);
  // The S3 API as `serve --s3-config` adds it, so the route matrix sees every route.
  if (!s3) {
    s3 = std::make_shared<http::S3Config>();
    s3->buckets["charts"] = true;
    s3->keys["AKIATESTUPLOADER"] = {"test-secret-of-sixteen-plus", http::Role::kUploader, {}};
  }
  routes.s3 = s3;
  if (!routes.dashboard) routes.dashboard = http::find_dashboard(std::nullopt);
  app::add_http_routes(router_, *engine_, *services_, *modules_, metrics_, routes, server);
  server_ = std::make_unique<http::Server>(std::move(server), router_);
  server_->start();
}

void AppServer::publish_workflows(const std::vector<std::string>& workflow_yaml) {
  std::vector<core::Workflow> wfs;
  int i = 0;
  for (const auto& text : workflow_yaml) {
    auto r = config::load_workflow_text(text, "extra" + std::to_string(i++) + ".yaml",
                                        runtime::handler_check(*handlers_));
    for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
    if (r.workflow) wfs.push_back(*r.workflow);
  }
  store::Store s(dsn_);
  registry_->publish(s, wfs);
}

AppServer::~AppServer() {
  server_->stop();
  engine_->drain();
}

HttpResponse AppServer::call(const std::string& method, const std::string& target,
                             const std::string& token, const std::string& body,
                             std::map<std::string, std::string> headers) const {
  if (!token.empty()) headers = with_bearer(token, std::move(headers));
  return request(method, "127.0.0.1", port(), target, body, headers);
}

}  // namespace chartflow::testing
