#include "http/request_intake.hpp"

#include <cctype>

namespace chartflow::http {
namespace {

bool has_control_character(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// One pass over the text tracking nesting depth and, for the top-level object's "entry" array,
// how many elements it has. Strings are skipped with their escapes so brackets inside them do
// not count.
class JsonShapeScan {
 public:
  explicit JsonShapeScan(const InputLimits& limits) : limits_(limits) {}

  std::optional<HttpError> run(std::string_view text) {
    for (char c : text) {
      if (in_string_) {
        scan_string_char(c);
        continue;
      }
      if (is_json_space(c)) continue;
      if (depth_ == entry_depth_ && c != ',' && c != ']' && !element_started_) {
        element_started_ = true;
        if (++entries_ > limits_.bundle_entries)
          return HttpError{413, "the Bundle has more than " +
                                    std::to_string(limits_.bundle_entries) +
                                    " entries, the limit for one upload"};
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
          if (++depth_ > limits_.json_depth)
            return HttpError{400, "JSON nested deeper than " + std::to_string(limits_.json_depth) +
                                      " levels, the limit for a request body"};
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

  const InputLimits& limits_;
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

std::size_t InputLimits::body_limit_for(std::string_view target) const {
  for (const auto& prefix : upload_prefixes)
    if (target.substr(0, prefix.size()) == prefix) return upload_body_bytes;
  return body_bytes;
}

HttpError body_too_large(std::size_t limit) {
  return HttpError{413, "request body exceeds the limit of " + std::to_string(limit) + " bytes"};
}

Request to_request(BeastRequest&& req, std::string remote) {
  Request r;
  r.method = std::string(req.method_string());
  const std::string_view target(req.target().data(), req.target().size());
  const auto qpos = target.find('?');
  r.path = url_decode(target.substr(0, qpos), false);
  if (has_control_character(r.path))
    throw HttpError{400, "the request path contains control characters"};
  if (qpos != std::string_view::npos) r.query = parse_query(target.substr(qpos + 1));
  for (const auto& [name, value] : r.query)
    if (has_control_character(name) || has_control_character(value))
      throw HttpError{400, "the query string contains control characters"};
  for (const auto& h : req) {
    std::string name(h.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(h.value());
  }
  r.body = std::move(req.body());
  r.remote = std::move(remote);
  return r;
}

std::optional<HttpError> check_json_limits(std::string_view body, const InputLimits& limits) {
  return JsonShapeScan(limits).run(body);
}

std::optional<HttpError> check_body(const Request& req, const InputLimits& limits) {
  if (req.body.empty()) return std::nullopt;
  auto ct = req.header("content-type");
  // Routes that take JSON treat a body without a content type as JSON too.
  if (ct && ct->find("json") == std::string::npos) return std::nullopt;
  return check_json_limits(req.body, limits);
}

}  // namespace chartflow::http
