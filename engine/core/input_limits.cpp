#include "core/input_limits.hpp"

namespace chartflow::core {
namespace {

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// One pass over the text tracking nesting depth and, for the top-level object's "entry" array,
// how many elements it has. Strings are skipped with their escapes so brackets inside them do
// not count.
class JsonShapeScan {
 public:
  explicit JsonShapeScan(const JsonLimits& limits) : limits_(limits) {}

  std::optional<JsonLimitBreach> run(std::string_view text) {
    for (char c : text) {
      if (in_string_) {
        scan_string_char(c);
        continue;
      }
      if (is_json_space(c)) continue;
      if (depth_ == entry_depth_ && c != ',' && c != ']' && !element_started_) {
        element_started_ = true;
        if (++entries_ > limits_.bundle_entries)
          return JsonLimitBreach{JsonLimitBreach::Kind::kBundleEntries, limits_.bundle_entries};
      }
      if (depth_ == 1 && c != '[') {
        // Only a value directly after `"entry":` is the entry array.
        if (c != ':') after_entry_colon_ = false;
      }
      switch (c) {
        case '"':
          in_string_ = true;
          key_.clear();
          key_escaped_ = false;
          break;
        case ':':
          // An escaped key may decode to "entry" (entr\u0079): count its array to be safe.
          if (depth_ == 1) after_entry_colon_ = key_ == "entry" || key_escaped_;
          break;
        case ',':
          if (depth_ == entry_depth_) element_started_ = false;
          key_.clear();
          break;
        case '{':
        case '[':
          if (c == '[' && depth_ == 1 && after_entry_colon_) {
            entry_depth_ = 2;
            entries_ = 0;
            element_started_ = false;
          }
          after_entry_colon_ = false;
          if (++depth_ > limits_.depth)
            return JsonLimitBreach{JsonLimitBreach::Kind::kDepth,
                                   static_cast<std::size_t>(limits_.depth < 0 ? 0 : limits_.depth)};
          break;
        case '}':
        case ']':
          if (depth_ == entry_depth_) entry_depth_ = -1;
          if (depth_ > 0) --depth_;
          break;
        default:
          break;
      }
    }
    return std::nullopt;
  }

 private:
  void scan_string_char(char c) {
    if (escaped_) {
      escaped_ = false;
      key_escaped_ = true;
    } else if (c == '\\') {
      escaped_ = true;
      return;
    } else if (c == '"') {
      in_string_ = false;
      return;
    }
    // Only whether a key is exactly "entry" matters; longer keys need not be kept whole.
    if (depth_ == 1 && key_.size() < 8) key_.push_back(c);
  }

  const JsonLimits& limits_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
  std::string key_;
  bool key_escaped_ = false;
  bool after_entry_colon_ = false;
  int entry_depth_ = -1;
  bool element_started_ = false;
  std::size_t entries_ = 0;
};

}  // namespace

std::string JsonLimitBreach::describe() const {
  if (kind == Kind::kDepth) return "JSON nested deeper than " + std::to_string(limit) + " levels";
  return "the Bundle has more than " + std::to_string(limit) + " entries";
}

std::optional<JsonLimitBreach> check_json_limits(std::string_view text, const JsonLimits& limits) {
  return JsonShapeScan(limits).run(text);
}

}  // namespace chartflow::core
