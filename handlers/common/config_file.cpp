#include "handlers/common/config_file.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "engine/util/duration.hpp"
#include "engine/util/yaml_json.hpp"

namespace chartflow::handlers {
Json yaml_to_json(const YAML::Node& node) {
  std::vector<config::YamlIssue> issues;
  Json out = config::yaml_to_json(node, issues);
  if (!issues.empty()) {
    throw std::invalid_argument(
        fmt::format("line {}: {}", issues.front().line, issues.front().message));
  }
  return out;
}

Json load_config_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::invalid_argument(fmt::format("settings file {} does not exist", path.string()));
  }
  try {
    return yaml_to_json(YAML::LoadFile(path.string()));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(fmt::format("settings file {}: {}", path.string(), e.what()));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("settings file {}: {}", path.string(), e.what()));
  }
}

namespace {

std::vector<std::string> split_key_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t dot = path.find('.'); dot != std::string_view::npos;
       start = dot + 1, dot = path.find('.', start))
    out.emplace_back(path.substr(start, dot - start));
  out.emplace_back(path.substr(start));
  return out;
}

// The child of `node` named `key` (a mapping's key, or a list item's `name`), with its line.
std::optional<std::pair<YAML::Node, int>> child(const YAML::Node& node, const std::string& key) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key)
        return std::make_pair(YAML::Node(it->second), it->first.Mark().line + 1);
  } else if (node.IsSequence()) {
    for (const auto& item : node)
      if (item.IsMap() && item["name"] && item["name"].IsScalar() && item["name"].Scalar() == key)
        return std::make_pair(item, item.Mark().line + 1);
  }
  return std::nullopt;
}

}  // namespace

int settings_error_line(const std::filesystem::path& path, std::string_view message) {
  const auto colon = message.find(": ");
  if (colon == std::string_view::npos || colon == 0) return 0;
  const std::string_view key_path = message.substr(0, colon);
  if (key_path.find_first_of(" \t'\"") != std::string_view::npos) return 0;
  try {
    YAML::Node node = YAML::LoadFile(path.string());
    const auto keys = split_key_path(key_path);
    int line = 0;
    // A name may hold dots itself ("payors.blue.cross.url"): the longest that matches wins.
    for (std::size_t i = 0; i < keys.size();) {
      bool found = false;
      for (std::size_t j = keys.size(); j > i && !found; --j) {
        std::string name = keys[i];
        for (std::size_t k = i + 1; k < j; ++k) name += "." + keys[k];
        if (auto c = child(node, name)) {
          node = c->first;
          line = c->second;
          i = j;
          found = true;
        }
      }
      if (!found) break;
    }
    return line;
  } catch (const YAML::Exception&) {
    return 0;
  }
}

std::string expand_env(std::string_view text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      auto close = text.find('}', i + 2);
      if (close != std::string_view::npos) {
        std::string_view inner = text.substr(i + 2, close - i - 2);
        std::string_view fallback;
        bool has_fallback = false;
        if (auto sep = inner.find(":-"); sep != std::string_view::npos) {
          fallback = inner.substr(sep + 2);
          inner = inner.substr(0, sep);
          has_fallback = true;
        }
        const char* value = std::getenv(std::string(inner).c_str());
        if (value != nullptr && *value != '\0') {
          out += value;
        } else if (has_fallback) {
          out += fallback;
        }
        i = close + 1;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

const Json* step_setting(const StepContext& ctx, std::string_view key) {
  for (const Json* source : {&ctx.input(), &ctx.config()}) {
    if (!source->is_object()) continue;
    auto it = source->find(key);
    if (it != source->end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

Json merged_settings(const StepContext& ctx) {
  Json merged = ctx.config().is_object() ? ctx.config() : Json::object();
  if (ctx.input().is_object()) {
    for (const auto& [key, value] : ctx.input().items()) {
      if (!value.is_null()) merged[key] = value;
    }
  }
  return merged;
}

std::string string_setting(const Json* value, std::string_view key, std::string_view fallback) {
  if (value == nullptr || value->is_null()) return std::string(fallback);
  if (!value->is_string()) {
    throw std::invalid_argument(fmt::format("setting '{}' must be a string", key));
  }
  return value->get<std::string>();
}

std::chrono::milliseconds duration_setting(const Json* value, std::string_view key,
                                           std::chrono::milliseconds fallback) {
  if (value == nullptr || value->is_null()) return fallback;
  std::optional<std::chrono::milliseconds> parsed;
  if (value->is_number()) {
    double seconds = value->get<double>();
    if (seconds > 0) parsed = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  } else if (value->is_string()) {
    parsed = core::parse_duration(value->get<std::string>());
  }
  if (!parsed || parsed->count() <= 0) {
    throw std::invalid_argument(
        fmt::format("setting '{}' must be a positive duration such as \"48h\"", key));
  }
  return *parsed;
}

}  // namespace chartflow::handlers
