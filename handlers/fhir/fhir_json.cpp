#include "handlers/fhir/fhir_json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

namespace chartflow::handlers::fhir {
namespace {

const Json& empty_array() {
  static const Json kEmpty = Json::array();
  return kEmpty;
}

const Json& empty_object() {
  static const Json kEmpty = Json::object();
  return kEmpty;
}

void collect(const Json& value, std::vector<const Json*>& out) {
  if (value.is_array()) {
    for (const auto& v : value) {
      if (!v.is_null()) out.push_back(&v);
    }
  } else if (!value.is_null()) {
    out.push_back(&value);
  }
}

}  // namespace

const Json* member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string string_member(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

const Json& array_member(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  return v != nullptr && v->is_array() ? *v : empty_array();
}

const Json& object_member(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  return v != nullptr && v->is_object() ? *v : empty_object();
}

std::optional<double> number_member(const Json& obj, std::string_view key) {
  const Json* v = member(obj, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number()) {
    double d = v->get<double>();
    return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
  }
  if (v->is_string()) {
    const std::string& s = v->get_ref<const std::string&>();
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || !std::isfinite(d)) return std::nullopt;
    return d;
  }
  return std::nullopt;
}

bool bool_member(const Json& obj, std::string_view key, bool fallback) {
  const Json* v = member(obj, key);
  if (v == nullptr) return fallback;
  if (v->is_boolean()) return v->get<bool>();
  if (v->is_string()) {
    if (*v == "true") return true;
    if (*v == "false") return false;
  }
  return fallback;
}

bool has_value(const Json& value) {
  if (value.is_null()) return false;
  if (value.is_string()) return !value.get_ref<const std::string&>().empty();
  if (value.is_array()) {
    for (const auto& v : value) {
      if (has_value(v)) return true;
    }
    return false;
  }
  if (value.is_object()) return !value.empty();
  return true;
}

std::vector<const Json*> element_values(const Json& resource, std::string_view dotted_path) {
  std::vector<const Json*> current{&resource};
  while (!dotted_path.empty()) {
    auto dot = dotted_path.find('.');
    std::string_view segment = dotted_path.substr(0, dot);
    dotted_path = dot == std::string_view::npos ? std::string_view() : dotted_path.substr(dot + 1);
    if (segment.empty()) continue;
    std::vector<const Json*> next;
    for (const Json* v : current) {
      if (const Json* m = member(*v, segment)) collect(*m, next);
    }
    current = std::move(next);
    if (current.empty()) break;
  }
  return current;
}

bool element_present(const Json& resource, std::string_view dotted_path) {
  while (true) {
    auto bar = dotted_path.find('|');
    std::string_view alternative = dotted_path.substr(0, bar);
    if (!alternative.empty()) {
      for (const Json* v : element_values(resource, alternative)) {
        if (has_value(*v)) return true;
      }
    }
    if (bar == std::string_view::npos) return false;
    dotted_path = dotted_path.substr(bar + 1);
  }
}

std::vector<Coding> codings(const Json& concept_or_coding) {
  std::vector<Coding> out;
  if (!concept_or_coding.is_object()) return out;
  auto add = [&out](const Json& c) {
    if (!c.is_object()) return;
    Coding coding{string_member(c, "system"), string_member(c, "code"),
                  string_member(c, "display")};
    if (!coding.code.empty() || !coding.display.empty()) out.push_back(std::move(coding));
  };
  if (member(concept_or_coding, "coding") != nullptr) {
    for (const auto& c : array_member(concept_or_coding, "coding")) add(c);
  } else if (member(concept_or_coding, "code") != nullptr) {
    add(concept_or_coding);
  }
  return out;
}

std::optional<Coding> first_coding(const Json& concept_or_coding) {
  auto all = codings(concept_or_coding);
  for (auto& c : all) {
    if (!c.code.empty()) return std::move(c);
  }
  if (!all.empty()) return std::move(all.front());
  return std::nullopt;
}

bool has_code(const Json& concept_or_coding, std::string_view system, std::string_view code) {
  for (const auto& c : codings(concept_or_coding)) {
    if (c.code == code && (system.empty() || c.system == system)) return true;
  }
  return false;
}

std::string concept_text(const Json& concept_or_coding) {
  std::string text = string_member(concept_or_coding, "text");
  if (!text.empty()) return text;
  auto all = codings(concept_or_coding);
  for (const auto& c : all) {
    if (!c.display.empty()) return c.display;
  }
  for (const auto& c : all) {
    if (!c.code.empty()) return c.code;
  }
  return {};
}

std::string resource_type(const Json& resource) { return string_member(resource, "resourceType"); }

std::string resource_id(const Json& resource) { return string_member(resource, "id"); }

std::string person_name(const Json& person) {
  const Json& names = array_member(person, "name");
  const Json* chosen = nullptr;
  for (const auto& n : names) {
    if (n.is_object() && string_member(n, "use") == "official") {
      chosen = &n;
      break;
    }
  }
  if (chosen == nullptr) {
    for (const auto& n : names) {
      if (n.is_object()) {
        chosen = &n;
        break;
      }
    }
  }
  if (chosen == nullptr) return {};
  std::string text = string_member(*chosen, "text");
  if (!text.empty()) return text;
  std::string out;
  for (const auto& g : array_member(*chosen, "given")) {
    if (!g.is_string()) continue;
    if (!out.empty()) out += ' ';
    out += g.get<std::string>();
  }
  std::string family = string_member(*chosen, "family");
  if (!family.empty()) {
    if (!out.empty()) out += ' ';
    out += family;
  }
  return out;
}

std::int64_t to_cents(double value) {
  if (!std::isfinite(value)) return 0;
  return static_cast<std::int64_t>(std::llround(value * 100.0));
}

std::string format_cents(std::int64_t cents) {
  const bool negative = cents < 0;
  const std::uint64_t magnitude =
      negative ? static_cast<std::uint64_t>(-(cents + 1)) + 1 : static_cast<std::uint64_t>(cents);
  return fmt::format("{}{}.{:02}", negative ? "-" : "", magnitude / 100, magnitude % 100);
}

}  // namespace chartflow::handlers::fhir
