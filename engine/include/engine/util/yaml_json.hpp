// Converts yaml-cpp nodes to nlohmann::json, keeping track of where each problem is in the file.
// Used by the workflow loader for free-form values (step input, conditions, handler settings).
// Stateless functions; safe to call from any thread on distinct nodes.
//
// Scalars follow the YAML 1.2 core schema, not YAML 1.1: only true/false are booleans (so
// `country: NO` stays a string), and a quoted scalar is always a string ("123" stays "123").
// .inf and .nan have no JSON form and stay strings.
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace chartflow::config {

struct YamlIssue {
  int line = 0;  // 1-based; 0 when yaml-cpp has no position for the node
  std::string message;
};

// 1-based line of `node`, or 0 when it has none (e.g. a node built in code).
int yaml_line(const YAML::Node& node);

// Converts a scalar (or null) node by the rules above. Never fails: anything that is not a
// recognised null, bool or number is a string.
nlohmann::json yaml_scalar_to_json(const YAML::Node& node);

// Converts a whole tree. Problems JSON cannot express (non-scalar or duplicate mapping keys) go
// to `issues` and the offending entry is skipped, so one call reports all of them.
nlohmann::json yaml_to_json(const YAML::Node& node, std::vector<YamlIssue>& issues);

}  // namespace chartflow::config
