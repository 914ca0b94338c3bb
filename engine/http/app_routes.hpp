// Routes beyond the engine API: the dashboard's static files (and, with the chart module, the
// chart and review API).
#pragma once

#include <filesystem>

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

void add_app_routes(Router& router, runtime::Engine& engine,
                    const std::filesystem::path& workflows_dir);

}  // namespace chartflow::http
