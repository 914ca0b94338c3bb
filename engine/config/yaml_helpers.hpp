// Small helpers for reading a workflow file's YAML: checks on the raw text before yaml-cpp sees
// it, and lookups and descriptions of nodes for error messages. Stateless functions; safe to
// call from any thread on distinct nodes.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chartflow::config {

// The offset of the first byte that does not belong to a well-formed UTF-8 sequence.
std::optional<std::size_t> first_invalid_utf8(std::string_view text);

struct DocumentCount {
  int count = 0;        // 0, 1 or 2 (meaning two or more)
  int second_line = 0;  // where the second document starts
};

// Counts a text's YAML documents, stopping at two. Throws YAML::Exception on a syntax error.
DocumentCount count_documents(const std::string& text);

// First value of `key` in a mapping node; an undefined node when absent.
YAML::Node child(const YAML::Node& map, std::string_view key);

// What a node is, for messages: "a mapping", "an empty list", "'text'", "nothing".
std::string describe(const YAML::Node& node);

}  // namespace chartflow::config
