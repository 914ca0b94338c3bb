#include "tests/support/engine_harness.hpp"

#include <gtest/gtest.h>

#include "config/workflow_loader.hpp"
#include "handlers/chart_intake/chart_upload.hpp"
#include "http/module_services.hpp"
#include "runtime/builtin_handlers.hpp"
#include "runtime/handler_setup.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {

EngineHarness::EngineHarness(std::string dsn, const std::vector<std::string>& workflow_yaml,
                             std::shared_ptr<HandlerRegistry> extra,
                             runtime::EngineSettings settings)
    : dsn_(std::move(dsn)) {
  handlers_ = extra ? extra : std::make_shared<HandlerRegistry>();
  runtime::register_builtin_handlers(*handlers_);
  registry_ = std::make_shared<runtime::WorkflowRegistry>();
  store_ = std::make_unique<store::Store>(dsn_);
  publish(workflow_yaml);
  settings.dsn = dsn_;
  if (settings.poll_interval == runtime::kDefaultPollInterval)
    settings.poll_interval = std::chrono::milliseconds(200);
  engine_ = std::make_unique<runtime::Engine>(settings, handlers_, registry_);
}

EngineHarness::~EngineHarness() { engine_->drain(); }

void EngineHarness::publish(const std::vector<std::string>& workflow_yaml) {
  std::vector<core::Workflow> wfs;
  int i = 0;
  for (const auto& text : workflow_yaml) {
    auto r = config::load_workflow_text(text, "test" + std::to_string(i++) + ".yaml",
                                        runtime::handler_check(*handlers_));
    for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
    if (r.workflow) wfs.push_back(*r.workflow);
  }
  registry_->publish(*store_, wfs);
}

std::int64_t EngineHarness::start_run(const std::string& type, const Json& body,
                                      std::optional<std::string> dedup_key) {
  store::EventInput ev;
  ev.type = type;
  ev.body = body;
  ev.dedup_key = std::move(dedup_key);
  auto r = engine_->ingest(ev);
  EXPECT_EQ(r.run_ids.size(), 1u) << "event " << type << " should start exactly one run";
  return r.run_ids.empty() ? 0 : r.run_ids.front();
}

Json EngineHarness::run(std::int64_t id) {
  auto r = store_->get_run(id);
  return r ? *r : Json();
}

std::string EngineHarness::run_status(std::int64_t id) {
  auto r = run(id);
  return r.is_null() ? "" : r.value("status", "");
}

bool EngineHarness::wait_status(std::int64_t id, const std::string& status,
                                std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        const auto s = run_status(id);
        if (status.empty()) return s == "succeeded" || s == "failed" || s == "cancelled";
        return s == status;
      },
      timeout);
}

Json EngineHarness::step(std::int64_t run_id, const std::string& name) {
  const Json r = run(run_id);  // kept alive for the loop
  if (r.is_null()) return Json();
  for (const auto& s : r.at("steps"))
    if (s.value("name", "") == name) return s;
  return Json();
}

EngineServices& EngineHarness::services() {
  if (!services_) services_ = std::make_unique<http::ModuleServices>(*engine_, nullptr);
  return *services_;
}

std::function<IntakeResult(const IntakeRequest&)> EngineHarness::chart_intake() {
  return [&s = services()](const IntakeRequest& r) { return handlers::chart_intake(s, r); };
}

}  // namespace chartflow::testing
