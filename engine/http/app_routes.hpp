// Routes beyond the engine API: the dashboard's static files (and, with the chart module, the
// chart and review API).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

// Answers some requests to "/" instead of the dashboard (S3 ListBuckets); nullopt: not its.
using RootOverride = std::function<std::optional<Response>(Request&)>;

void add_app_routes(Router& router, runtime::Engine& engine,
                    const std::filesystem::path& workflows_dir,
                    RootOverride root_override = nullptr);

}  // namespace chartflow::http
