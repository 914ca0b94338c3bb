#include "engine/util/install_prefix.hpp"

namespace chartflow::util {

std::optional<std::filesystem::path> executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  return exe.parent_path();
}

std::optional<std::filesystem::path> install_prefix() {
  auto dir = executable_dir();
  if (!dir || dir->filename() != "bin") return std::nullopt;
  return dir->parent_path();
}

}  // namespace chartflow::util
