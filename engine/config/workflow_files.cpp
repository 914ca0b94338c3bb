// Reading workflow files and directories: the file system side of the loader (see
// workflow_loader.hpp); parsing is WorkflowParser's.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "config/workflow_loader.hpp"
#include "config/workflow_parser.hpp"

namespace chartflow::config {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> read_file(const fs::path& path, std::string& problem) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    problem = "cannot read file: " + (ec ? ec.message() : "no such file");
    return std::nullopt;
  }
  if (!fs::is_regular_file(status)) {
    problem = "cannot read file: not a regular file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    problem = "cannot read file";
    return std::nullopt;
  }
  return text.str();
}

LoadResult load_file(const fs::path& path, const HandlerCheck& handlers, int* name_line) {
  std::string problem;
  const auto text = read_file(path, problem);
  if (!text) return LoadResult{std::nullopt, {ConfigError{path.string(), 0, problem}}};
  WorkflowParser parser(path.string(), handlers);
  LoadResult result = parser.load(*text);
  if (name_line != nullptr) *name_line = parser.name_line();
  return result;
}

}  // namespace

LoadResult load_workflow_file(const fs::path& path, const HandlerCheck& handlers) {
  return load_file(path, handlers, nullptr);
}

DirResult load_workflow_dir(const fs::path& dir, const HandlerCheck& handlers) {
  DirResult out;
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name.empty() || name[0] == '.') continue;
    if (ext != ".yaml" && ext != ".yml" && ext != ".json") continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    files.push_back(it->path());
  }
  if (ec) {
    out.errors.push_back({dir.string(), 0, "cannot read workflow directory: " + ec.message()});
    return out;
  }
  std::sort(files.begin(), files.end());

  std::map<std::string, std::string> first_definition;  // workflow name -> "file:line"
  for (const auto& file : files) {
    int name_line = 0;
    LoadResult r = load_file(file, handlers, &name_line);
    out.errors.insert(out.errors.end(), r.errors.begin(), r.errors.end());
    if (!r.workflow) continue;
    const std::string where = fmt::format("{}:{}", file.string(), name_line);
    auto [it, inserted] = first_definition.emplace(r.workflow->name, where);
    if (!inserted) {
      out.errors.push_back(
          {file.string(), name_line,
           fmt::format("workflow name '{}' is already used by {}", r.workflow->name, it->second)});
      continue;
    }
    out.workflows.push_back(std::move(*r.workflow));
  }
  return out;
}

}  // namespace chartflow::config
