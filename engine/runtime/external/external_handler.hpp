// The handler behind `handler: {exec: [...]}` and `handler: {runtime: python3, ...}`: runs the
// step in a warm external process (see process_pool.hpp) under the contract documented in
// handlers/README.md ("External handlers"). One object serves every external step of a process
// and is registered under both names; run() is safe to call concurrently.
#pragma once

#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "engine/handler.hpp"
#include "runtime/external/external_spec.hpp"
#include "runtime/external/process_pool.hpp"

namespace chartflow::runtime::external {

struct ExternalSettings {
  std::filesystem::path workflows_dir;  // where relative programs and python modules live
  PythonRuntime python;
  PoolHooks hooks;
};

// The adapter's default: $CHARTFLOW_PYTHON, else python3 from PATH; the source is embedded.
PythonRuntime default_python_runtime();

class ExternalHandler : public Handler {
 public:
  explicit ExternalHandler(ExternalSettings settings);
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;
  // Creates the pool of this handler mapping now, so min_warm processes start ahead of need.
  void prewarm(const Json& config);

 private:
  // The pool serving a handler mapping, found by the mapping's text: one hash lookup per call.
  HandlerPool& pool_for(const Json& config);

  ExternalSettings settings_;
  PoolSet pools_;  // declared before pools_by_config_, which points into it
  std::mutex mu_;
  std::unordered_map<std::string, HandlerPool*> pools_by_config_;
};

}  // namespace chartflow::runtime::external
