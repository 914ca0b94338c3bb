// Reads typed values out of a workflow file's YAML nodes for the workflow parser. A reader that
// finds a problem adds it to the file's ErrorList, at the value's line and prefixed with `where`
// (the place in the file, e.g. "step 'a': "), and returns nothing, so that parsing goes on and
// one load reports every problem. Borrows the ErrorList; one per load, not thread-safe.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/error_list.hpp"
#include "core/condition.hpp"
#include "engine/util/duration.hpp"

namespace chartflow::config {

// One key of a mapping. Problems with the value as a whole are reported at the key's line: an
// empty or block value has no line of its own that reads well (yaml-cpp marks the next token).
struct Entry {
  std::string key;
  int line = 0;
  YAML::Node value;
};

// The entry for `key`, or nullptr.
const Entry* find(const std::vector<Entry>& entries, std::string_view key);

class NodeReader {
 public:
  explicit NodeReader(ErrorList& errors) : errors_(errors) {}

  // The entries of a mapping in file order, leaving out (and reporting) non-scalar and
  // duplicate keys and, unless `allowed` is empty, keys not in it. `noun` names a key in
  // messages ("step" for the steps mapping).
  std::vector<Entry> read_map(const YAML::Node& map, const std::string& where,
                              std::initializer_list<std::string_view> allowed,
                              const char* noun = "key");
  std::optional<std::string> string_value(const Entry& e, const std::string& where);
  // Any value, converted as yaml_to_json does.
  std::optional<nlohmann::json> json_value(const Entry& e, const std::string& where);
  // A duration greater than zero.
  std::optional<core::Millis> duration_value(const Entry& e, const std::string& where);
  std::optional<std::int64_t> int_value(const Entry& e, const std::string& where, std::int64_t min,
                                        std::int64_t max);
  std::optional<double> number_value(const Entry& e, const std::string& where, double min,
                                     double max);
  // A condition; appends each path it reads, with its line, to `paths`.
  std::optional<core::Condition> condition_value(const Entry& e, const std::string& where,
                                                 std::vector<std::pair<std::string, int>>& paths);

 private:
  ErrorList& errors_;
};

}  // namespace chartflow::config
