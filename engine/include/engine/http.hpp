// The HTTP vocabulary shared by the engine's routes and a module's: who a request acts for
// (Role, Principal), who may call a route (Access), a Request in and a Response out. Socket
// handling, authentication and routing stay inside the engine; this is what a route sees.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/audit.hpp"
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

std::string url_decode(std::string_view in, bool plus_as_space);
std::map<std::string, std::string> parse_query(std::string_view q);
Json parse_json_body(const Request& req);     // throws HttpError 400/415 naming the problem
Json parse_json_text(std::string_view text);  // throws HttpError 400 naming the problem
std::int64_t parse_id(const std::string& text, const char* what);  // throws HttpError 400

// An audit record for `req` (actor, role, remote address filled in from its principal).
AuditEntry audit_entry(const Request& req, std::string action, std::string resource_type,
                       std::string resource_id, std::string outcome = "success");
// The practitioner a reviewer request is limited to, or nullopt for roles that see everything
// their route allows.
std::optional<std::string> reviewer_scope(const Request& req);

}  // namespace chartflow::http
