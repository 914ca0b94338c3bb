#include "config/node_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <stdexcept>

#include "config/workflow_validation.hpp"
#include "config/yaml_helpers.hpp"
#include "engine/util/yaml_json.hpp"

namespace chartflow::config {
namespace {

using core::Millis;
using nlohmann::json;

// Finds the innermost part of a condition that Condition::from_json rejects, so the error points
// at the broken leaf of a long all:/any: list rather than at its top.
YAML::Node locate_condition_error(const YAML::Node& node, const json& j) {
  if (!node.IsMap() || !j.is_object() || j.size() != 1) return node;
  const auto fails = [](const json& c) {
    try {
      (void)core::Condition::from_json(c);
      return false;
    } catch (const std::invalid_argument&) {
      return true;
    }
  };
  if (j.contains("not")) {
    const json& inner = j.at("not");
    return fails(inner) ? locate_condition_error(child(node, "not"), inner) : node;
  }
  for (const char* key : {"all", "any"}) {
    if (!j.contains(key)) continue;
    const json& list = j.at(key);
    const YAML::Node seq = child(node, key);
    if (!list.is_array() || !seq.IsSequence() || seq.size() != list.size()) return node;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (fails(list[i])) return locate_condition_error(seq[i], list[i]);
  }
  return node;
}

void collect_paths(const YAML::Node& node, const core::Condition& c, int fallback_line,
                   std::vector<std::pair<std::string, int>>& out) {
  using Op = core::Condition::Op;
  if (c.op == Op::kAll || c.op == Op::kAny) {
    const YAML::Node seq = child(node, c.op == Op::kAll ? "all" : "any");
    for (std::size_t i = 0; i < c.children.size(); ++i)
      collect_paths(seq[i], c.children[i], fallback_line, out);
  } else if (c.op == Op::kNot) {
    collect_paths(child(node, "not"), c.children.at(0), fallback_line, out);
  } else {
    const int line = yaml_line(child(node, "path"));
    out.emplace_back(c.path, line != 0 ? line : fallback_line);
  }
}

}  // namespace

const Entry* find(const std::vector<Entry>& entries, std::string_view key) {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

std::vector<Entry> NodeReader::read_map(const YAML::Node& map, const std::string& where,
                                        std::initializer_list<std::string_view> allowed,
                                        const char* noun) {
  std::vector<Entry> out;
  std::map<std::string, int> first_line;
  // Range-for, not `it->first`: yaml-cpp's iterators hand out the pair by value.
  for (const auto& kv : map) {
    const int line = yaml_line(kv.first);
    if (!kv.first.IsScalar()) {
      errors_.add(line, where + "keys must be plain strings, not " + describe(kv.first));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    auto [seen, inserted] = first_line.emplace(key, line);
    if (!inserted) {
      errors_.add(line, fmt::format("{}duplicate {} '{}' (first at line {})", where, noun, key,
                                    seen->second));
      continue;
    }
    if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      errors_.add(line, fmt::format("{}unknown key '{}'{}; allowed keys: {}", where, key,
                                    did_you_mean(key, allowed), list));
      continue;
    }
    out.push_back({key, line, kv.second});
  }
  return out;
}

std::optional<std::string> NodeReader::string_value(const Entry& e, const std::string& where) {
  if (!e.value.IsScalar()) {
    errors_.add(e.line,
                fmt::format("{}{} must be a string, not {}", where, e.key, describe(e.value)));
    return std::nullopt;
  }
  return e.value.Scalar();
}

std::optional<json> NodeReader::json_value(const Entry& e, const std::string& where) {
  std::vector<YamlIssue> issues;
  json j = yaml_to_json(e.value, issues);
  for (const auto& issue : issues)
    errors_.add(issue.line != 0 ? issue.line : e.line, where + e.key + ": " + issue.message);
  if (!issues.empty()) return std::nullopt;
  return j;
}

std::optional<Millis> NodeReader::duration_value(const Entry& e, const std::string& where) {
  if (!e.value.IsScalar()) {
    errors_.add(e.line, fmt::format("{}{}: expected a duration (e.g. 250ms, 3s, 1m30s), not {}",
                                    where, e.key, describe(e.value)));
    return std::nullopt;
  }
  const auto d = core::parse_duration(e.value.Scalar());
  if (!d) {
    errors_.add(e.line, fmt::format("{}{}: '{}' is not a duration (use e.g. 250ms, 3s, 1m30s)",
                                    where, e.key, e.value.Scalar()));
    return std::nullopt;
  }
  if (d->count() <= 0) {
    errors_.add(e.line, fmt::format("{}{}: must be greater than zero", where, e.key));
    return std::nullopt;
  }
  return d;
}

std::optional<std::int64_t> NodeReader::int_value(const Entry& e, const std::string& where,
                                                  std::int64_t min, std::int64_t max) {
  const json j = yaml_scalar_to_json(e.value);
  if (!j.is_number_integer() || j.get<std::int64_t>() < min || j.get<std::int64_t>() > max) {
    const std::string range =
        max >= INT32_MAX ? fmt::format(">= {}", min) : fmt::format("from {} to {}", min, max);
    errors_.add(e.line, fmt::format("{}{} must be a whole number {}, not {}", where, e.key, range,
                                    describe(e.value)));
    return std::nullopt;
  }
  return j.get<std::int64_t>();
}

std::optional<double> NodeReader::number_value(const Entry& e, const std::string& where, double min,
                                               double max) {
  const json j = yaml_scalar_to_json(e.value);
  if (!j.is_number() || j.get<double>() < min || j.get<double>() > max) {
    const std::string range =
        max > 1e300 ? fmt::format(">= {}", min) : fmt::format("from {} to {}", min, max);
    errors_.add(e.line, fmt::format("{}{} must be a number {}, not {}", where, e.key, range,
                                    describe(e.value)));
    return std::nullopt;
  }
  return j.get<double>();
}

std::optional<core::Condition> NodeReader::condition_value(
    const Entry& e, const std::string& where, std::vector<std::pair<std::string, int>>& paths) {
  const auto j = json_value(e, where);
  if (!j) return std::nullopt;
  try {
    core::Condition c = core::Condition::from_json(*j);
    collect_paths(e.value, c, e.line, paths);
    return c;
  } catch (const std::invalid_argument& ex) {
    const YAML::Node bad = locate_condition_error(e.value, *j);
    const int line = bad.is(e.value) || yaml_line(bad) == 0 ? e.line : yaml_line(bad);
    errors_.add(line, fmt::format("{}{}: {}", where, e.key, ex.what()));
    return std::nullopt;
  }
}

}  // namespace chartflow::config
