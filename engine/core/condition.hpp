// A structured condition over a JSON document, in the spirit of Step Functions Choice rules:
// no embedded code, only comparisons on JSON pointers combined with all/any/not.
// Immutable after construction; safe to share between threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace chartflow::core {

struct Condition {
  enum class Op {
    kEquals,
    kNotEquals,
    kExists,
    kGreaterThan,
    kGreaterOrEqual,
    kLessThan,
    kLessOrEqual,
    kIn,
    kContains,
    kAll,
    kAny,
    kNot,
  };
  Op op = Op::kEquals;
  std::string path;                 // JSON pointer; empty for kAll/kAny/kNot
  nlohmann::json value;             // comparand (kExists: bool)
  std::vector<Condition> children;  // kAll/kAny: many; kNot: one

  // Evaluates against `doc` (for step conditions: {"event": ..., "steps": {name: output}}).
  // A path that does not resolve compares as missing: equals -> false, not_equals -> true.
  bool evaluate(const nlohmann::json& doc) const;

  nlohmann::json to_json() const;
  // Inverse of to_json; throws std::invalid_argument with a message naming the problem.
  static Condition from_json(const nlohmann::json& j);
};

}  // namespace chartflow::core
