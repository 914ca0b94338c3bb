// Where the running executable lives, for what an install lays out beside it
// (PREFIX/bin/chartflow, PREFIX/share/chartflow/dashboard, PREFIX/etc/chartflow).
#pragma once

#include <filesystem>
#include <optional>

namespace chartflow::util {

// The directory holding the running executable (/proc/self/exe's), or nullopt when unreadable.
std::optional<std::filesystem::path> executable_dir();

// PREFIX when the executable is PREFIX/bin/NAME; nullopt elsewhere (a build tree), so nothing
// is looked for beside a binary that was never installed.
std::optional<std::filesystem::path> install_prefix();

}  // namespace chartflow::util
