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

struct Request {
  std::string method;  // upper case
  std::string path;    // decoded path without query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote;
  std::map<std::string, std::string> params;  // filled from the route pattern

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
  void add(std::string method, std::string pattern, std::string route_name, RouteHandler h);
  Response handle(Request& req) const;
  std::vector<std::pair<std::string, std::string>> routes() const;  // (method, pattern)

  // Observers set by the server: metrics per route name and status.
  std::function<void(const std::string& route, const std::string& method, int status,
                     double seconds)>
      on_response;

 private:
  struct Route {
    std::string method, pattern, name;
    std::vector<std::string> segments;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
};

std::string url_decode(std::string_view in, bool plus_as_space);
std::map<std::string, std::string> parse_query(std::string_view q);
Json parse_json_body(const Request& req);  // throws HttpError 400/415 naming the problem
std::int64_t parse_id(const std::string& text, const char* what);  // throws HttpError 400

}  // namespace chartflow::http
