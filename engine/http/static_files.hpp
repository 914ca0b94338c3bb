// Serves the dashboard's built files from disk with a strict Content-Security-Policy.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "http/router.hpp"

namespace chartflow::http {

// Where the dashboard's built files are: `configured` (--dashboard-dir; throws if it holds no
// index.html), else share/chartflow/dashboard beside the binary's bin/ (an installed or copied
// tree), else the source tree's build (a developer's binary). nullopt: this binary has none.
std::optional<std::filesystem::path> find_dashboard(
    const std::optional<std::filesystem::path>& configured);
Response serve_static(const std::filesystem::path& root, const std::string& relative_path);

}  // namespace chartflow::http
