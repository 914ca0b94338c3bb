// Authentication for the HTTP API: Router::authenticate (bearer API tokens, dashboard session
// cookies with CSRF protection), sign-in and sign-out, and the audit trail's route,
// GET /v1/audit (admin).
#pragma once

#include <chrono>

#include "auth/sessions.hpp"
#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

inline constexpr const char* kSessionCookie = "cf_session";
inline constexpr const char* kCsrfHeader = "x-csrf-token";

struct AuthSettings {
  std::chrono::seconds session_ttl = auth::kDefaultSessionTtl;
  bool secure_cookie = false;  // set under TLS: the browser then sends the cookie only over TLS
};

// Sets router.authenticate and router.on_forbidden and adds the auth routes. Every server
// calls it; only router-level unit tests leave a router without it.
void add_auth(Router& router, runtime::Engine& engine, AuthSettings settings = {});

}  // namespace chartflow::http
