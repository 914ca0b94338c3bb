#include "core/for_each.hpp"

#include <charconv>

namespace chartflow::core {

using nlohmann::json;

std::string element_key(std::string_view step, std::size_t index) {
  return std::string(step) + "[" + std::to_string(index) + "]";
}

std::optional<ElementKey> parse_element_key(std::string_view key) {
  const auto open = key.find('[');
  if (open == std::string_view::npos || open == 0 || key.size() < open + 3 || key.back() != ']')
    return std::nullopt;
  const std::string_view digits = key.substr(open + 1, key.size() - open - 2);
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;  // one key per index
  ElementKey out{std::string(key.substr(0, open)), 0};
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.index);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return out;
}

const Step* definition_of(const Workflow& wf, std::string_view key) {
  if (const Step* s = wf.find_step(std::string(key))) return s;
  const auto element = parse_element_key(key);
  const Step* s = element ? wf.find_step(element->step) : nullptr;
  return s != nullptr && s->for_each ? s : nullptr;
}

std::variant<json, std::string> for_each_list(const ForEach& fe, const json& event,
                                              const json& steps) {
  const std::string& p = fe.pointer;
  const bool in_event = p == "/event" || p.rfind("/event/", 0) == 0;
  if (!in_event && p.rfind("/steps/", 0) != 0)
    return "for_each " + p + " must start with /event or /steps";
  const json& root = in_event ? event : steps;
  try {
    // "/event/x" and "/steps/x" both lose their first six characters to the root they name.
    const json::json_pointer ptr(p.substr(6));
    if (!root.contains(ptr)) return "for_each " + p + " does not resolve to a value";
    const json& v = root.at(ptr);
    if (!v.is_array())
      return "for_each " + fe.pointer + " is " + std::string(v.type_name()) + ", not an array";
    return v;
  } catch (const json::exception&) {
    return "for_each " + fe.pointer + " is not a valid JSON pointer";
  }
}

json element_input(const json& input, const json& item, std::size_t index) {
  json out = input.is_object() ? input : json{{"input", input}};
  out["item"] = item;
  out["index"] = index;
  return out;
}

json collect_outputs(const json& outputs, std::string_view step, std::size_t count) {
  json out = json::array();
  for (std::size_t i = 0; i < count; ++i) {
    const auto it = outputs.find(element_key(step, i));
    out.push_back(it == outputs.end() ? json() : *it);
  }
  return out;
}

}  // namespace chartflow::core
