#include "http/request_intake.hpp"

#include <cctype>

#include "core/input_limits.hpp"

namespace chartflow::http {
namespace {

bool has_control_character(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

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
  // The same check every other door applies (core/input_limits.hpp), with the HTTP status.
  const auto breach =
      core::check_json_limits(body, core::JsonLimits{limits.json_depth, limits.bundle_entries});
  if (!breach) return std::nullopt;
  if (breach->kind == core::JsonLimitBreach::Kind::kDepth)
    return HttpError{400, breach->describe() + ", the limit for a request body"};
  return HttpError{413, breach->describe() + ", the limit for one upload"};
}

std::optional<HttpError> check_body(const Request& req, const InputLimits& limits) {
  if (req.body.empty()) return std::nullopt;
  for (const auto& prefix : limits.raw_body_prefixes)
    if (req.path.rfind(prefix, 0) == 0) return std::nullopt;
  auto ct = req.header("content-type");
  // Routes that take JSON treat a body without a content type as JSON too.
  if (ct && ct->find("json") == std::string::npos) return std::nullopt;
  return check_json_limits(req.body, limits);
}

}  // namespace chartflow::http
