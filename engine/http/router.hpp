// HTTP routing independent of the socket layer: a Request in, a Response out. Router::handle is
// the one place every request passes, where authentication, authorization, metrics and error
// mapping happen. Routes are registered at start-up; handle() is thread-safe afterwards.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/http.hpp"

namespace chartflow::http {

class Router {
 public:
  // pattern like "/v1/runs/{id}/signal/{name}"; "{*rest}" as last segment matches the remainder.
  void add(std::string method, const std::string& pattern, std::string route_name, Access access,
           RouteHandler h);
  // `admitted`: admit() already authenticated req (its principal is kept, not looked up again).
  Response handle(Request& req, bool admitted = false) const;
  // The checks that need only a request's headers, for the server to run before it reads (or
  // queues for) a body: the route's 404/405, and for a kRoles route its 401/403 (req.principal is
  // then set, for handle(req, true)). Routes that check their own credential against the body
  // (kSelf: S3 signatures, webhook HMACs) and public ones pass. nullopt: admitted.
  std::optional<Response> admit(Request& req) const;
  // The role check handle() applies to kRoles routes, for kSelf routes that accept either their
  // own credential or a role (a webhook type without a secret). Throws HttpError 401/403.
  void require(Request& req, const Access& access, const std::string& route = "") const;

  // Marks a GET route with a fixed path (a health check) to be answered on the server's io
  // thread, never queued behind handlers waiting on the database. Its handler must answer
  // within a short, bounded time.
  void answer_at_once(const std::string& path);
  // True for a GET or HEAD of a path marked with answer_at_once.
  bool answers_at_once(const Request& req) const;

  struct RouteInfo {
    std::string method, pattern, name;
    Access access;
  };
  std::vector<RouteInfo> routes() const;

  // Set by the server: runs first on every request, to settle who the client is (behind a
  // trusted proxy, req.remote becomes the forwarded client address; see client_address.hpp).
  std::function<void(Request&)> identify_client;

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
  struct Route;
  const Route* find(Request& req, bool* path_matched) const;
  // The route's handler; a GET or HEAD that met a lost database connection runs once more.
  Response run_handler(const Route& route, Request& req) const;
  void observe(const std::string& route, const Request& req, int status,
               std::chrono::steady_clock::time_point t0) const;
  struct Route {
    std::string method, pattern, name;
    Access access;
    std::vector<std::string> segments;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
  std::vector<std::string> at_once_paths_;
};

}  // namespace chartflow::http
