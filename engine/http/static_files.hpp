// Serves the dashboard's built files from disk with a strict Content-Security-Policy.
#pragma once

#include <filesystem>
#include <string>

#include "http/router.hpp"

namespace chartflow::http {

std::filesystem::path dashboard_root();
Response serve_static(const std::filesystem::path& root, const std::string& relative_path);

}  // namespace chartflow::http
