// Authentication for the HTTP API: Router::authenticate (bearer API tokens, dashboard session
// cookies with CSRF protection), sign-in and sign-out, and the audit trail's route,
// GET /v1/audit (admin).
#pragma once

#include <chrono>

#include "auth/sessions.hpp"
#include "http/client_address.hpp"
#include "http/router.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

inline constexpr const char* kSessionCookie = "cf_session";
inline constexpr const char* kCsrfHeader = "x-csrf-token";

struct AuthSettings {
  std::chrono::seconds session_ttl = auth::kDefaultSessionTtl;
  // A session unused this long is over (HIPAA's automatic log-off).
  std::chrono::seconds session_idle = auth::kDefaultSessionIdle;
  // Set under TLS: the browser then sends the cookie only over TLS. Behind a trusted proxy the
  // cookie is Secure as well when the proxy says the client used https (X-Forwarded-Proto).
  bool secure_cookie = false;
  // Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (--trusted-proxy).
  TrustedProxies trusted_proxies;
};

// `type` names the media type application/json (any parameters, any case), as the
// Content-Type header's value; "text/plain; charset=application/json" does not.
bool is_json_media_type(std::string_view type);

// Sets router.identify_client, router.authenticate and router.on_forbidden and adds the auth
// routes. Every server
// calls it; only router-level unit tests leave a router without it.
void add_auth(Router& router, runtime::Engine& engine, AuthSettings settings = {});

}  // namespace chartflow::http
