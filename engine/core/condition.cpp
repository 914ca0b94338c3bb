#include "core/condition.hpp"

#include <stdexcept>

namespace chartflow::core {
namespace {

using nlohmann::json;

const json* resolve(const json& doc, const std::string& path) {
  try {
    json::json_pointer ptr(path);
    if (!doc.contains(ptr)) return nullptr;
    return &doc.at(ptr);
  } catch (const json::exception&) {
    return nullptr;
  }
}

bool compare_numbers(const json* v, const json& want, Condition::Op op) {
  if (v == nullptr) return false;
  if (v->is_number() && want.is_number()) {
    double a = v->get<double>();
    double b = want.get<double>();
    switch (op) {
      case Condition::Op::kGreaterThan:
        return a > b;
      case Condition::Op::kGreaterOrEqual:
        return a >= b;
      case Condition::Op::kLessThan:
        return a < b;
      case Condition::Op::kLessOrEqual:
        return a <= b;
      default:
        return false;
    }
  }
  if (v->is_string() && want.is_string()) {
    // Strings compare lexically so RFC 3339 timestamps order correctly.
    int c = v->get_ref<const std::string&>().compare(want.get_ref<const std::string&>());
    switch (op) {
      case Condition::Op::kGreaterThan:
        return c > 0;
      case Condition::Op::kGreaterOrEqual:
        return c >= 0;
      case Condition::Op::kLessThan:
        return c < 0;
      case Condition::Op::kLessOrEqual:
        return c <= 0;
      default:
        return false;
    }
  }
  return false;
}

struct OpName {
  Condition::Op op;
  const char* name;
};
constexpr OpName kOps[] = {
    {Condition::Op::kEquals, "equals"},      {Condition::Op::kNotEquals, "not_equals"},
    {Condition::Op::kExists, "exists"},      {Condition::Op::kGreaterThan, "gt"},
    {Condition::Op::kGreaterOrEqual, "gte"}, {Condition::Op::kLessThan, "lt"},
    {Condition::Op::kLessOrEqual, "lte"},    {Condition::Op::kIn, "in"},
    {Condition::Op::kContains, "contains"},
};

}  // namespace

bool Condition::evaluate(const json& doc) const {
  switch (op) {
    case Op::kAll:
      for (const auto& c : children)
        if (!c.evaluate(doc)) return false;
      return true;
    case Op::kAny:
      for (const auto& c : children)
        if (c.evaluate(doc)) return true;
      return false;
    case Op::kNot:
      return !children.at(0).evaluate(doc);
    default:
      break;
  }
  const json* v = resolve(doc, path);
  switch (op) {
    case Op::kEquals:
      return v != nullptr && *v == value;
    case Op::kNotEquals:
      return v == nullptr || *v != value;
    case Op::kExists:
      return (v != nullptr && !v->is_null()) == value.get<bool>();
    case Op::kIn:
      if (v == nullptr) return false;
      for (const auto& candidate : value)
        if (candidate == *v) return true;
      return false;
    case Op::kContains:
      if (v == nullptr) return false;
      if (v->is_array()) {
        for (const auto& e : *v)
          if (e == value) return true;
        return false;
      }
      if (v->is_string() && value.is_string())
        return v->get_ref<const std::string&>().find(value.get_ref<const std::string&>()) !=
               std::string::npos;
      return false;
    default:
      return compare_numbers(v, value, op);
  }
}

json Condition::to_json() const {
  json out = json::object();
  switch (op) {
    case Op::kAll:
    case Op::kAny: {
      json arr = json::array();
      for (const auto& c : children) arr.push_back(c.to_json());
      out[op == Op::kAll ? "all" : "any"] = std::move(arr);
      return out;
    }
    case Op::kNot:
      out["not"] = children.at(0).to_json();
      return out;
    default:
      break;
  }
  out["path"] = path;
  for (const auto& o : kOps)
    if (o.op == op) out[o.name] = value;
  return out;
}

Condition Condition::from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("condition must be a mapping");
  Condition c;
  if (j.contains("all") || j.contains("any")) {
    const bool all = j.contains("all");
    const json& arr = j.at(all ? "all" : "any");
    if (!arr.is_array() || arr.empty())
      throw std::invalid_argument(std::string(all ? "all" : "any") +
                                  " must be a non-empty list of conditions");
    if (j.size() != 1) throw std::invalid_argument("all/any cannot be combined with other keys");
    c.op = all ? Op::kAll : Op::kAny;
    for (const auto& e : arr) c.children.push_back(from_json(e));
    return c;
  }
  if (j.contains("not")) {
    if (j.size() != 1) throw std::invalid_argument("not cannot be combined with other keys");
    c.op = Op::kNot;
    c.children.push_back(from_json(j.at("not")));
    return c;
  }
  if (!j.contains("path") || !j.at("path").is_string())
    throw std::invalid_argument("condition needs a 'path' (a JSON pointer such as /event/x)");
  c.path = j.at("path").get<std::string>();
  if (!c.path.empty() && c.path[0] != '/')
    throw std::invalid_argument("path '" + c.path + "' must be a JSON pointer starting with /");
  try {
    (void)json::json_pointer(c.path);
  } catch (const json::exception&) {
    throw std::invalid_argument("path '" + c.path + "' is not a valid JSON pointer");
  }
  int found = 0;
  for (const auto& [key, val] : j.items()) {
    if (key == "path") continue;
    bool known = false;
    for (const auto& o : kOps) {
      if (key == o.name) {
        c.op = o.op;
        c.value = val;
        known = true;
        ++found;
      }
    }
    if (!known)
      throw std::invalid_argument(
          "unknown condition key '" + key +
          "' (expected one of equals, not_equals, exists, gt, gte, lt, lte, in, contains, all, "
          "any, not)");
  }
  if (found != 1)
    throw std::invalid_argument("condition on '" + c.path + "' needs exactly one comparison");
  if (c.op == Op::kExists && !c.value.is_boolean())
    throw std::invalid_argument("exists takes true or false");
  if (c.op == Op::kIn && !c.value.is_array()) throw std::invalid_argument("in takes a list");
  // Ordering against anything else would silently evaluate to false on every event.
  const bool ordering = c.op == Op::kGreaterThan || c.op == Op::kGreaterOrEqual ||
                        c.op == Op::kLessThan || c.op == Op::kLessOrEqual;
  if (ordering && !c.value.is_number() && !c.value.is_string()) {
    for (const auto& o : kOps)
      if (o.op == c.op)
        throw std::invalid_argument(std::string(o.name) + " takes a number or a string");
  }
  return c;
}

}  // namespace chartflow::core
