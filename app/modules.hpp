// The composition root's one decision: which modules this binary carries. The engine's own
// handlers (built-ins, external "exec"/"python3") and the chart application, registered into one
// ModuleRegistry that serve, worker, migrate and validate all start from.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "engine/module.hpp"
#include "handlers/chart_settings.hpp"
#include "runtime/external/process_pool.hpp"

namespace chartflow::app {

// `chart`: overrides of the chart settings files (tests); its warnings go to the log unless it
// names a receiver.
std::unique_ptr<ModuleRegistry> make_modules(const std::filesystem::path& workflows_dir,
                                             runtime::external::PoolHooks hooks = {},
                                             handlers::ChartHandlerOptions chart = {});
// The modules' migrations alone (what make_modules registers), for commands that only migrate.
std::vector<MigrationSet> module_migrations();

}  // namespace chartflow::app
