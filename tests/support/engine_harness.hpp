// Test support: an Engine over a test schema with workflows given as YAML text and extra
// handlers registered by the test. Not thread-safe itself; the engine inside is.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/module.hpp"
#include "runtime/engine.hpp"
#include "store/store.hpp"

namespace chartflow::testing {

class EngineHarness {
 public:
  EngineHarness(std::string dsn, const std::vector<std::string>& workflow_yaml,
                std::shared_ptr<HandlerRegistry> extra = nullptr,
                runtime::EngineSettings settings = {});
  ~EngineHarness();

  runtime::Engine& engine() { return *engine_; }
  store::Store& store() { return *store_; }
  std::shared_ptr<HandlerRegistry> handlers() { return handlers_; }
  // Publishes more workflow versions (each YAML text parsed and validated; failures ADD_FAILURE).
  void publish(const std::vector<std::string>& workflow_yaml);

  std::int64_t start_run(const std::string& type, const Json& body = Json::object(),
                         std::optional<std::string> dedup_key = std::nullopt);
  Json run(std::int64_t id);
  std::string run_status(std::int64_t id);
  // Waits until the run reaches `status` (or any final status when empty).
  bool wait_status(std::int64_t id, const std::string& status,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20));
  Json step(std::int64_t run_id, const std::string& name);
  // What a module's routes and intake hooks reach this engine through.
  EngineServices& services();
  // The chart application's intake hook bound to this engine, as serve binds it for the drop
  // folder and S3 chart buckets.
  std::function<IntakeResult(const IntakeRequest&)> chart_intake();
  void start() { engine_->start(); }
  void stop() { engine_->drain(); }

 private:
  std::string dsn_;
  std::shared_ptr<HandlerRegistry> handlers_;
  std::shared_ptr<runtime::WorkflowRegistry> registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<EngineServices> services_;
};

}  // namespace chartflow::testing
