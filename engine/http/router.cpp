#include "http/router.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>

#include "runtime/incoming_trace.hpp"
#include "runtime/log.hpp"
#include "store/errors.hpp"

namespace chartflow::http {
namespace {

// Retry-After of a 503 for a database outage: a failover takes seconds.
constexpr int kOutageRetryAfterSeconds = 5;

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t j = i;
    while (j < path.size() && path[j] != '/') ++j;
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

bool match_segments(const std::vector<std::string>& pattern, const std::vector<std::string>& segs,
                    std::map<std::string, std::string>& params) {
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const std::string& seg = pattern[i];
    if (seg.rfind("{*", 0) == 0) {
      std::string rest;
      for (std::size_t k = i; k < segs.size(); ++k) rest += (k > i ? "/" : "") + segs[k];
      params[seg.substr(2, seg.size() - 3)] = rest;
      return true;
    }
    if (i >= segs.size()) return false;
    if (seg.front() == '{')
      params[seg.substr(1, seg.size() - 2)] = segs[i];
    else if (seg != segs[i])
      return false;
  }
  return segs.size() == pattern.size();
}

}  // namespace

const char* role_name(Role r) {
  switch (r) {
    case Role::kUploader:
      return "uploader";
    case Role::kReviewer:
      return "reviewer";
    case Role::kBilling:
      return "billing";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role r : {Role::kUploader, Role::kReviewer, Role::kBilling, Role::kOperator, Role::kAdmin})
    if (name == role_name(r)) return r;
  return std::nullopt;
}

bool Access::allows(Role r) const {
  if (kind != Kind::kRoles) return true;
  if (r == Role::kAdmin) return true;
  for (Role allowed : roles)
    if (allowed == r) return true;
  return false;
}

std::optional<std::string> Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Request::q(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

Response Response::json(int status, const Json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

Response Response::error(int status, const std::string& message) {
  return json(status, Json{{"error", message}});
}

std::string url_decode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    // Exactly two hex digits: from_chars alone would also take a sign ("%-1").
    auto hex = [](char h) { return std::isxdigit(static_cast<unsigned char>(h)) != 0; };
    if (c == '%' && i + 2 < in.size() && hex(in[i + 1]) && hex(in[i + 2])) {
      int v = 0;
      std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
      out += static_cast<char>(v);
      i += 2;
      continue;
    }
    out += (plus_as_space && c == '+') ? ' ' : c;
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i <= q.size()) {
    std::size_t amp = q.find('&', i);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view part = q.substr(i, amp - i);
    if (!part.empty()) {
      std::size_t eq = part.find('=');
      if (eq == std::string_view::npos)
        out[url_decode(part, true)] = "";
      else
        out[url_decode(part.substr(0, eq), true)] = url_decode(part.substr(eq + 1), true);
    }
    i = amp + 1;
  }
  return out;
}

Json parse_json_text(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw HttpError{400, "body is not valid JSON: byte " + std::to_string(e.byte)};
  } catch (const Json::exception&) {
    // A number too large for a double (1e999) is well-formed JSON nlohmann cannot hold (found by
    // fuzzing: it escaped as a 500).
    throw HttpError{400, "body is not valid JSON: a number is out of range"};
  }
}

Json parse_json_body(const Request& req) {
  auto ct = req.header("content-type");
  if (ct && ct->find("json") == std::string::npos)
    throw HttpError{415, "content type must be application/json, got " + ct->substr(0, 100)};
  if (req.body.empty()) return Json::object();
  return parse_json_text(req.body);
}

std::int64_t parse_id(const std::string& text, const char* what) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0)
    throw HttpError{400, std::string(what) + " must be a positive integer"};
  return v;
}

void Router::add(std::string method, const std::string& pattern, std::string route_name,
                 Access access, RouteHandler h) {
  Route r{std::move(method),   pattern,     std::move(route_name), std::move(access),
          split_path(pattern), std::move(h)};
  routes_.push_back(std::move(r));
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back({r.method, r.pattern, r.name, r.access});
  return out;
}

void Router::require(Request& req, const Access& access, const std::string& route) const {
  if (access.kind != Access::Kind::kRoles || !authenticate) return;
  try {
    req.principal = authenticate(req);
  } catch (const store::TransientError&) {
    // The lookup is a read and the pool has dropped its dead sessions: once more, on a fresh one.
    req.principal = authenticate(req);
  }
  if (!req.principal) throw HttpError{401, "authentication required"};
  if (!access.allows(req.principal->role)) {
    if (on_forbidden) on_forbidden(req, route);
    throw HttpError{
        403, std::string("role ") + role_name(req.principal->role) + " may not use this route"};
  }
}

const Router::Route* Router::find(Request& req, bool* path_matched) const {
  const auto segments = split_path(req.path);
  *path_matched = false;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!match_segments(r.segments, segments, params)) continue;
    *path_matched = true;
    if (r.method != req.method && !(req.method == "HEAD" && r.method == "GET")) continue;
    req.params = std::move(params);
    return &r;
  }
  return nullptr;
}

void Router::observe(const std::string& route, const Request& req, int status,
                     std::chrono::steady_clock::time_point t0) const {
  if (on_response)
    on_response(route, req.method, status,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void Router::answer_at_once(const std::string& path) { at_once_paths_.push_back(path); }

bool Router::answers_at_once(const Request& req) const {
  return (req.method == "GET" || req.method == "HEAD") &&
         std::find(at_once_paths_.begin(), at_once_paths_.end(), req.path) != at_once_paths_.end();
}

std::optional<Response> Router::admit(Request& req) const {
  const auto t0 = std::chrono::steady_clock::now();
  if (identify_client) identify_client(req);
  bool path_matched = false;
  const Route* match = find(req, &path_matched);
  std::optional<Response> refusal;
  std::string route_name = "unmatched";
  if (match == nullptr) {
    refusal = path_matched ? Response::error(405, "method " + req.method + " not allowed here")
                           : Response::error(404, "no such route");
  } else {
    route_name = match->name;
    req.principal.reset();
    try {
      if (match->access.kind == Access::Kind::kRoles) require(req, match->access, route_name);
    } catch (const HttpError& e) {
      refusal = Response::error(e.status, e.message);
    } catch (const std::exception& e) {
      runtime::Log::error("http_error", {{"route", route_name}, {"error", e.what()}});
      refusal = Response::error(503, "the credential could not be checked; try again");
      refusal->headers.emplace_back("Retry-After", std::to_string(kOutageRetryAfterSeconds));
    }
  }
  if (refusal) observe(route_name, req, refusal->status, t0);
  return refusal;
}

Response Router::run_handler(const Route& route, Request& req) const {
  // What the handler stores joins the caller's trace (runtime/incoming_trace.hpp). An S3 client
  // can set object metadata but rarely a header of its own, so x-amz-meta-traceparent counts too.
  auto traceparent = req.header("traceparent");
  if (!traceparent) traceparent = req.header("x-amz-meta-traceparent");
  runtime::IncomingTrace trace(traceparent ? std::optional<std::string_view>(*traceparent)
                                           : std::nullopt);
  if (req.method != "GET" && req.method != "HEAD") return route.handler(req);
  try {
    return route.handler(req);
  } catch (const store::TransientError& e) {
    // A read is safe to repeat, and the pool has dropped the broken session and its idle
    // siblings: one more try on a fresh connection hides a failover from the client.
    runtime::Log::info("http_read_retried", {{"route", route.name}, {"error", e.what()}});
    return route.handler(req);
  }
}

Response Router::handle(Request& req, bool admitted) const {
  const auto t0 = std::chrono::steady_clock::now();
  if (identify_client) identify_client(req);
  bool path_matched = false;
  const Route* match = find(req, &path_matched);
  Response resp;
  std::string route_name = "unmatched";
  if (match == nullptr) {
    resp = path_matched ? Response::error(405, "method " + req.method + " not allowed here")
                        : Response::error(404, "no such route");
  } else {
    route_name = match->name;
    try {
      if (!admitted) {
        req.principal.reset();
        if (match->access.kind == Access::Kind::kRoles) require(req, match->access, route_name);
      }
      resp = run_handler(*match, req);
    } catch (const HttpError& e) {
      resp = Response::error(e.status, e.message);
    } catch (const store::TransientError& e) {
      // A lost or frozen database, or a commit whose outcome is unknown: an outage, not a bug.
      // Nothing the client sent was wrong, and sending the same request again is safe (uploads
      // and events are deduplicated by content and key).
      runtime::Log::warn("http_database_unavailable", {{"route", route_name}, {"error", e.what()}});
      resp = Response::error(503, "database unavailable; retry the same request later");
      resp.headers.emplace_back("Retry-After", std::to_string(kOutageRetryAfterSeconds));
    } catch (const std::exception& e) {
      runtime::Log::error("http_error", {{"route", route_name}, {"error", e.what()}});
      resp = Response::error(500, "internal error");
    }
  }
  observe(route_name, req, resp.status, t0);
  return resp;
}

}  // namespace chartflow::http
