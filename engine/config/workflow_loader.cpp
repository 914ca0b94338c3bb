// The loader's entry points that need no file, and ConfigError; the rest is split by concern:
// yaml_helpers (raw text and nodes), node_reader (typed values), workflow_parser (a document
// into a core::Workflow), workflow_validation (names and the step graph), workflow_files (I/O).
#include "config/workflow_loader.hpp"

#include <fmt/format.h>

#include <cstdint>

#include "config/workflow_parser.hpp"

namespace chartflow::config {

std::string ConfigError::to_string() const {
  if (line <= 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}: {}", file, line, message);
}

LoadResult load_workflow_text(const std::string& text, const std::string& file_name,
                              const HandlerCheck& handlers) {
  return WorkflowParser(file_name, handlers).load(text);
}

std::string content_hash(const core::Workflow& w) {
  // FNV-1a, 64-bit: the canonical dump has sorted keys, so equal definitions hash equally.
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : w.to_json().dump()) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace chartflow::config
