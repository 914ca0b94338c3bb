// Reading workflow files and directories: the file system side of the loader (see
// workflow_loader.hpp); parsing is WorkflowParser's.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
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

// store::kMaxChainDepth (config does not see store): a run refuses to start a child deeper
// than this (runtime/child_workflows.cpp), so a longer chain of workflows could only fail.
constexpr int kMaxChildWorkflowDepth = 16;

// A child workflow step names a workflow loaded beside it, no chain of them leads back to where
// it started (such a run would start children until the depth limit failed it), and none is
// deeper than that limit.
void check_children(DirResult& out, const std::map<std::string, std::string>& files_of) {
  std::map<std::string, std::vector<std::string>> calls;
  for (const auto& w : out.workflows)
    for (const auto& s : w.steps) {
      if (!s.child) continue;
      if (files_of.count(s.child->workflow) == 0) {
        out.errors.push_back(
            {files_of.at(w.name), s.child->line,
             fmt::format("step '{}': workflow '{}' is not defined", s.name, s.child->workflow)});
        continue;
      }
      calls[w.name].push_back(s.child->workflow);
    }
  // Depth-first from each workflow: 1 = on the current path, 2 = done.
  std::map<std::string, int> state;
  std::vector<std::string> path;
  std::function<bool(const std::string&)> visit = [&](const std::string& name) {
    if (state[name] == 2) return false;
    if (state[name] == 1) {
      std::string chain;
      const auto from = std::find(path.begin(), path.end(), name);
      for (auto it = from; it != path.end(); ++it) chain += *it + " -> ";
      out.errors.push_back(
          {files_of.at(name), 0, fmt::format("child workflows form a cycle: {}{}", chain, name)});
      return true;
    }
    state[name] = 1;
    path.push_back(name);
    for (const auto& c : calls[name])
      if (visit(c)) return true;
    path.pop_back();
    state[name] = 2;
    return false;
  };
  for (const auto& [name, _] : calls)
    if (visit(name)) return;
  // Without a cycle, the longest chain down from each workflow (in levels of children).
  std::map<std::string, std::vector<std::string>> deepest;
  std::function<const std::vector<std::string>&(const std::string&)> chain_from =
      [&](const std::string& name) -> const std::vector<std::string>& {
    if (auto found = deepest.find(name); found != deepest.end()) return found->second;
    std::vector<std::string> longest;
    for (const auto& c : calls[name]) {
      const auto& below = chain_from(c);
      if (below.size() > longest.size()) longest = below;
    }
    longest.insert(longest.begin(), name);
    return deepest[name] = std::move(longest);
  };
  std::vector<std::string> worst;
  for (const auto& [name, _] : files_of)
    if (chain_from(name).size() > worst.size()) worst = chain_from(name);
  const int levels = static_cast<int>(worst.size()) - 1;
  if (levels > kMaxChildWorkflowDepth) {
    std::string chain;
    for (const auto& w : worst) chain += (chain.empty() ? "" : " -> ") + w;
    out.errors.push_back(
        {files_of.at(worst.front()), 0,
         fmt::format("child workflows nest {} levels deep, more than the limit of {}: {}", levels,
                     kMaxChildWorkflowDepth, chain)});
  }
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
  std::map<std::string, std::string> files_of;          // workflow name -> file, once loaded
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
    files_of[out.workflows.back().name] = file.string();
  }
  check_children(out, files_of);
  return out;
}

}  // namespace chartflow::config
