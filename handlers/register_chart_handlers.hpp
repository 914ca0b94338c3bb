// Registers the chart handlers (missing_field_scan, doctor_review, billing, insurance,
// discharge) under those names. Call once at start-up, before workflows are validated.
// Loads and validates <workflows_dir>/settings/*.yaml and the default rule file; throws
// std::invalid_argument naming the file and the problem, which should stop the process.
#pragma once

#include <filesystem>

#include "engine/handler.hpp"
#include "handlers/chart_settings.hpp"

namespace chartflow::handlers {

void register_chart_handlers(HandlerRegistry& registry, const std::filesystem::path& workflows_dir,
                             const ChartHandlerOptions& options = {});

}  // namespace chartflow::handlers
