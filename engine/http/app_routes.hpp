// Routes beyond the engine API: the dashboard's static files (a module adds its own through
// add_module_routes).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include "http/router.hpp"

namespace chartflow::http {

// Answers some requests to "/" instead of the dashboard (S3 ListBuckets); nullopt: not its.
using RootOverride = std::function<std::optional<Response>(Request&)>;

// The dashboard from `dashboard` (find_dashboard); without one, / and /ui/ answer 404 saying
// so.
void add_app_routes(Router& router, const std::optional<std::filesystem::path>& dashboard,
                    const RootOverride& root_override = nullptr);

}  // namespace chartflow::http
