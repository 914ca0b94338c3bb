// The chart application's one entry point: adds the chart handlers (missing_field_scan,
// doctor_review, billing, insurance, discharge), the chart API routes, the "chart" intake hook
// and the chart tables' migrations to an engine's module registry. Call once at start-up, before
// workflows are validated. Loads and validates <workflows_dir>/settings/*.yaml and the default
// rule file; throws std::invalid_argument naming the file and the problem, which should stop the
// process.
#pragma once

#include <filesystem>

#include "engine/module.hpp"
#include "handlers/chart_settings.hpp"

namespace chartflow::handlers {

void register_chart_module(ModuleRegistry& module, const std::filesystem::path& workflows_dir,
                           const ChartHandlerOptions& options = {});

// The handlers alone, for tests and benchmarks that drive them without a server.
void register_chart_handlers(HandlerRegistry& registry, const std::filesystem::path& workflows_dir,
                             const ChartHandlerOptions& options = {});

}  // namespace chartflow::handlers
