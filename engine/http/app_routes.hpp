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

void add_app_routes(Router& router, RootOverride root_override = nullptr);

}  // namespace chartflow::http
