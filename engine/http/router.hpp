// HTTP routing independent of the socket layer: a Request in, a Response out. Router::handle is
// the one place every request passes, where authentication, authorization, metrics and error
// mapping happen. Routes are registered at start-up; handle() is thread-safe afterwards.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::http {

// Who a request acts for, once authenticated. The role decides what it may reach (issue #6).
enum class Role { kUploader, kReviewer, kBilling, kOperator, kAdmin };
const char* role_name(Role r);
std::optional<Role> parse_role(std::string_view name);

struct Principal {
  std::string id;    // stable id of the credential (token id, user name, S3 access key)
  std::string name;  // human-readable, for the audit trail
  Role role = Role::kOperator;
  std::optional<std::string> assignee;  // a reviewer's practitioner (review.assignee)
  bool via_session = false;             // cookie session: state changes need the CSRF header
};

// Who may call a route. Every route states it when registered, so none can ship without a rule.
//  kRoles:  an authenticated principal whose role is listed (admin may call every kRoles route).
//  kPublic: no credential needed (health, readiness, the sign-in page and its assets).
//  kSelf:   the route authenticates the request itself (S3 SigV4, HMAC-signed webhooks) and sets
//           Request::principal or throws HttpError 401/403.
struct Access {
  enum class Kind { kRoles, kPublic, kSelf };
  Kind kind = Kind::kRoles;
  std::vector<Role> roles;

  static Access of(std::initializer_list<Role> allowed) { return {Kind::kRoles, allowed}; }
  static Access open() { return {Kind::kPublic, {}}; }
  static Access self() { return {Kind::kSelf, {}}; }
  bool allows(Role r) const;
};

struct Request {
  std::string method;  // upper case
  std::string path;    // decoded path without query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote;
  std::map<std::string, std::string> params;  // filled from the route pattern
  std::optional<Principal> principal;         // set by Router::handle (or a kSelf route)

  std::optional<std::string> header(const std::string& lower_name) const;
  std::optional<std::string> q(const std::string& name) const;
  const std::string& param(const std::string& name) const { return params.at(name); }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response json(int status, const Json& body);
  static Response error(int status, const std::string& message);
};

// Thrown by handlers for a clean 4xx; anything else becomes a 500 with no internals leaked.
struct HttpError {
  int status;
  std::string message;
};

using RouteHandler = std::function<Response(Request&)>;

class Router {
 public:
  // pattern like "/v1/runs/{id}/signal/{name}"; "{*rest}" as last segment matches the remainder.
  void add(std::string method, std::string pattern, std::string route_name, Access access,
           RouteHandler h);
  Response handle(Request& req) const;
  // The role check handle() applies to kRoles routes, for kSelf routes that accept either their
  // own credential or a role (a webhook type without a secret). Throws HttpError 401/403.
  void require(Request& req, const Access& access, const std::string& route = "") const;

  struct RouteInfo {
    std::string method, pattern, name;
    Access access;
  };
  std::vector<RouteInfo> routes() const;

  // Set by the server: resolves the request's credential (bearer token, session cookie) to a
  // principal, or nullopt when there is none or it is not valid. While unset, kRoles routes are
  // reachable without credentials: only tests that exercise routing alone leave it unset.
  std::function<std::optional<Principal>(const Request&)> authenticate;

  // Set by the server: records a refused request (a principal without the route's role) in the
  // audit trail.
  std::function<void(const Request&, const std::string& route)> on_forbidden;

  // Observers set by the server: metrics per route name and status.
  std::function<void(const std::string& route, const std::string& method, int status,
                     double seconds)>
      on_response;

 private:
  struct Route {
    std::string method, pattern, name;
    Access access;
    std::vector<std::string> segments;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
};

std::string url_decode(std::string_view in, bool plus_as_space);
std::map<std::string, std::string> parse_query(std::string_view q);
Json parse_json_body(const Request& req);     // throws HttpError 400/415 naming the problem
Json parse_json_text(std::string_view text);  // throws HttpError 400 naming the problem
std::int64_t parse_id(const std::string& text, const char* what);  // throws HttpError 400

}  // namespace chartflow::http
