#include "http/operator_reason.hpp"

#include <string>

namespace chartflow::http {
namespace {

constexpr std::size_t kMaxReason = 1000;

std::string trimmed(const std::string& s) {
  auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

std::string operator_reason(const Request& req, bool required, const std::string& hint) {
  if (req.body.empty() && !required) return "";
  const Json body = parse_json_body(req);
  const Json* r = body.is_object() && body.contains("reason") ? &body.at("reason") : nullptr;
  if (r != nullptr && !r->is_string()) throw HttpError{400, "reason must be a string"};
  std::string reason = r != nullptr ? trimmed(r->get<std::string>()) : "";
  if (required && reason.empty()) throw HttpError{400, hint};
  if (reason.size() > kMaxReason)
    throw HttpError{400, "reason is longer than " + std::to_string(kMaxReason) + " bytes"};
  return reason;
}

}  // namespace chartflow::http
