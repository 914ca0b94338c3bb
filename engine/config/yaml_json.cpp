#include "engine/util/yaml_json.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string_view>

namespace chartflow::config {
namespace {

using nlohmann::json;

constexpr std::string_view kStrTag = "tag:yaml.org,2002:str";

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}

bool is_dec(char c) { return c >= '0' && c <= '9'; }
bool is_oct(char c) { return c >= '0' && c <= '7'; }
bool is_hex(char c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Integer by the core schema: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+. Values beyond int64 fall
// back to uint64 and then double, as JSON parsers do, rather than becoming strings.
std::optional<json> parse_int(std::string_view s) {
  int base = 10;
  bool negative = false;
  std::string_view digits = s;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    base = s[1] == 'o' ? 8 : 16;
    digits = s.substr(2);
    if (!all_of(digits, base == 8 ? is_oct : is_hex)) return std::nullopt;
  } else {
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
      negative = digits[0] == '-';
      digits.remove_prefix(1);
    }
    if (!all_of(digits, is_dec)) return std::nullopt;
  }
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec == std::errc() && end == digits.data() + digits.size()) {
    constexpr auto kMinMagnitude = static_cast<std::uint64_t>(INT64_MAX) + 1;
    if (!negative) {
      if (magnitude <= static_cast<std::uint64_t>(INT64_MAX))
        return json(static_cast<std::int64_t>(magnitude));
      return json(magnitude);
    }
    if (magnitude < kMinMagnitude) return json(-static_cast<std::int64_t>(magnitude));
    if (magnitude == kMinMagnitude) return json(INT64_MIN);
  }
  if (base != 10) return std::nullopt;
  return json(std::strtod(std::string(s).c_str(), nullptr));
}

// Float by the core schema: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
std::optional<json> parse_float(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t int_digits = 0;
  while (i < s.size() && is_dec(s[i])) ++i, ++int_digits;
  std::size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_dec(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (!all_of(s.substr(i), is_dec)) return std::nullopt;
    i = s.size();
  }
  if (i != s.size()) return std::nullopt;
  return json(std::strtod(std::string(s).c_str(), nullptr));
}

json convert(const YAML::Node& node, std::vector<YamlIssue>& issues) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(convert(item, issues));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      // yaml-cpp keeps duplicate keys as separate entries; JSON cannot, and silently keeping
      // one would hide a typo, so each duplicate is reported.
      std::map<std::string, int> first_line;
      // Range-for keeps yaml-cpp's by-value iterator pair alive; `it->first` would dangle.
      for (const auto& kv : node) {
        const YAML::Node& key = kv.first;
        const int line = yaml_line(key);
        if (!key.IsScalar()) {
          issues.push_back({line, "mapping keys must be plain strings"});
          continue;
        }
        auto [seen, inserted] = first_line.emplace(key.Scalar(), line);
        if (!inserted) {
          issues.push_back({line, fmt::format("duplicate key '{}' (first at line {})", key.Scalar(),
                                              seen->second)});
          continue;
        }
        out[key.Scalar()] = convert(kv.second, issues);
      }
      return out;
    }
    case YAML::NodeType::Scalar:
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return yaml_scalar_to_json(node);
}

}  // namespace

int yaml_line(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

json yaml_scalar_to_json(const YAML::Node& node) {
  if (!node.IsScalar()) return nullptr;
  const std::string& s = node.Scalar();
  // "!" is what yaml-cpp reports for quoted scalars (and JSON strings).
  if (node.Tag() == "!" || node.Tag() == kStrTag) return s;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (auto i = parse_int(s)) return *i;
  if (auto f = parse_float(s)) return *f;
  return s;
}

json yaml_to_json(const YAML::Node& node, std::vector<YamlIssue>& issues) {
  return convert(node, issues);
}

}  // namespace chartflow::config
