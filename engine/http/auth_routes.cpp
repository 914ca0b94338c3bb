#include "http/auth_routes.hpp"

#include <cctype>

#include "auth/secret.hpp"
#include "auth/sessions.hpp"
#include "auth/signin_throttle.hpp"
#include "auth/tokens.hpp"
#include "auth/users.hpp"
#include "engine/util/hash.hpp"
#include "http/api_routes.hpp"
#include "http/audit_context.hpp"
#include "runtime/log.hpp"

namespace chartflow::http {
namespace {

// Every role: routes any signed-in principal may use.
const Access kAnyRole =
    Access::of({Role::kUploader, Role::kReviewer, Role::kBilling, Role::kOperator});

std::optional<Principal> to_principal(const auth::Credential& c, bool via_session) {
  auto role = parse_role(c.role);
  if (!role) return std::nullopt;
  return Principal{c.subject, c.name, *role, c.assignee, via_session};
}

std::optional<std::string> bearer_token(const Request& req) {
  auto h = req.header("authorization");
  if (!h) return std::nullopt;
  constexpr std::string_view kScheme = "Bearer ";
  if (h->size() <= kScheme.size() || h->compare(0, kScheme.size(), kScheme) != 0)
    return std::string();  // present but not a bearer credential: never valid
  return h->substr(kScheme.size());
}

std::optional<std::string> cookie(const Request& req, std::string_view name) {
  auto h = req.header("cookie");
  if (!h) return std::nullopt;
  std::string_view rest = *h;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    std::string_view part = rest.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=')
      return std::string(part.substr(name.size() + 1));
    if (semi == std::string_view::npos) break;
    rest.remove_prefix(semi + 1);
  }
  return std::nullopt;
}

// `one_statement`: the lookup is a single read, sent without BEGIN and COMMIT around it.
template <typename Fn>
auto in_transaction(runtime::Engine& engine, Fn&& fn, bool one_statement = false) {
  decltype(fn(std::declval<Sql&>())) out{};
  auto body = [&](Sql& sql) { out = fn(sql); };
  one_statement ? engine.read(body) : engine.transaction(body);
  return out;
}

bool changes_state(const Request& req) { return req.method != "GET" && req.method != "HEAD"; }

std::optional<Principal> from_session(runtime::Engine& engine, const AuthSettings& settings,
                                      const Request& req, const std::string& id) {
  auto session = in_transaction(
      engine, [&](Sql& sql) { return auth::find_session(sql, id, settings.session_idle); }, true);
  if (!session) return std::nullopt;
  // A cookie rides along with any request the browser makes, a forged cross-site form
  // included; only our page knows the CSRF token.
  if (changes_state(req)) {
    auto sent = req.header(kCsrfHeader);
    if (!sent || !util::constant_time_equal(*sent, session->csrf_token)) {
      auto entry = audit_entry(req, "auth.csrf", "", "", "denied");
      entry.actor = session->who.subject;
      entry.actor_name = session->who.name;
      entry.role = session->who.role;
      entry.detail = {{"method", req.method}, {"path", req.path}};
      audit_now(engine, entry);
      throw HttpError{403, "missing or wrong X-CSRF-Token header"};
    }
  }
  return to_principal(session->who, true);
}

std::optional<Principal> authenticate(runtime::Engine& engine, const AuthSettings& settings,
                                      const Request& req) {
  auto token = bearer_token(req);
  if (!token) {
    if (auto id = cookie(req, kSessionCookie)) return from_session(engine, settings, req, *id);
    return std::nullopt;
  }
  std::optional<auth::Credential> found;
  if (!token->empty())
    found = in_transaction(
        engine, [&](Sql& sql) { return auth::find_token(sql, *token); }, true);
  if (found) return to_principal(*found, false);
  auto entry = audit_entry(req, "auth.token", "", "", "failure");
  entry.detail = {{"reason", "unknown, revoked or expired token"}, {"path", req.path}};
  count_refusal_now(engine, entry);
  return std::nullopt;
}

std::string session_cookie(const std::string& value, std::int64_t max_age, bool secure) {
  return std::string(kSessionCookie) + "=" + value +
         "; Path=/; Max-Age=" + std::to_string(max_age) + "; HttpOnly; SameSite=Strict" +
         (secure ? "; Secure" : "");
}

Json who_json(const Principal& p) {
  return Json{{"name", p.name},
              {"role", role_name(p.role)},
              {"assignee", p.assignee ? Json(*p.assignee) : Json()}};
}

bool secure_request(const AuthSettings& settings, const Request& req) {
  return settings.secure_cookie || forwarded_proto(req) == "https";
}

// POST /v1/auth/signin {"token"} | {"username", "password"} | {"code"}: opens a session.
Response sign_in(runtime::Engine& engine, const AuthSettings& settings, Request& req) {
  // A cross-site form cannot send JSON without the browser asking first: no sign-in CSRF.
  auto ct = req.header("content-type");
  if (!ct || !is_json_media_type(*ct))
    throw HttpError{415, "content type must be application/json"};
  const Json body = parse_json_body(req);
  auto text = [&](const char* key) -> std::optional<std::string> {
    if (!body.is_object() || !body.contains(key)) return std::nullopt;
    if (!body.at(key).is_string() || body.at(key).get<std::string>().size() > 1000)
      throw HttpError{400, std::string(key) + " must be a string of at most 1000 characters"};
    return body.at(key).get<std::string>();
  };
  const auto token = text("token");
  const auto username = text("username");
  const auto password = text("password");
  const auto code = text("code");
  std::string method;
  if (token) method = "token";
  if (username || password) method = "password";
  if (code) method = "code";
  if (method.empty() || (method == "password" && (!username || !password)))
    throw HttpError{400,
                    "body must be {\"token\": ...}, {\"username\": ..., \"password\": ...} or "
                    "{\"code\": ...}"};

  auth::NewSession session;
  std::optional<Principal> who;
  auto entry = audit_entry(req, "auth.signin", "", "");
  entry.detail = {{"method", method}};
  // Guessing is slowed by Argon2id and by growing delays per (user name, client address) pair
  // (auth/signin_throttle.hpp): a correct password is not even checked while its pair waits.
  std::optional<std::string> name;
  if (method == "password") name = auth::clip(*username, 100);
  const std::string pair_name = name.value_or("");
  const auto verdict = in_transaction(
      engine, [&](Sql& sql) { return auth::check_sign_in(sql, pair_name, req.remote); });
  if (!verdict.allowed) {
    entry.outcome = "denied";
    entry.actor_name = name;
    entry.detail["reason"] = "too many failed sign-ins";
    count_refusal_now(engine, entry);
    const auto wait = std::to_string(verdict.retry_after.count());
    Response r = Response::error(429,
                                 "too many failed sign-ins for this user from this address; try "
                                 "again in " +
                                     wait + " seconds");
    r.headers.emplace_back("Retry-After", wait);
    return r;
  }
  in_transaction(engine, [&](Sql& sql) {
    std::optional<auth::Credential> cred;
    if (method == "token") cred = auth::find_token(sql, *token);
    if (method == "password") cred = auth::check_password(sql, *username, *password);
    if (method == "code") cred = auth::redeem_signin_code(sql, *code);
    if (cred) who = to_principal(*cred, true);
    if (!who) {
      auth::sign_in_failed(sql, pair_name, req.remote);
      entry.outcome = "failure";
      entry.actor_name = name;
      entry.detail["reason"] = "unknown or wrong credential";
      auth::count_refusal(sql, entry);
      return 0;
    }
    auth::sign_in_succeeded(sql, pair_name, req.remote);
    entry.actor = who->id;
    entry.actor_name = who->name;
    entry.role = role_name(who->role);
    auth::record(sql, entry);
    session = auth::open_session(sql, *cred, settings.session_ttl);
    return 0;
  });
  if (!who) throw HttpError{401, "sign-in failed: unknown or wrong credential"};
  Json out = who_json(*who);
  out["csrf_token"] = session.csrf_token;
  out["expires_at"] = session.expires_at;
  Response r = Response::json(200, out);
  r.headers.emplace_back("Set-Cookie", session_cookie(session.id, settings.session_ttl.count(),
                                                      secure_request(settings, req)));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

void add_session_routes(Router& router, runtime::Engine& engine, const AuthSettings& settings) {
  router.add("POST", "/v1/auth/signin", "signin", Access::open(),
             [&engine, settings](Request& req) { return sign_in(engine, settings, req); });

  router.add("POST", "/v1/auth/signout", "signout", kAnyRole, [&engine, settings](Request& req) {
    auto id = cookie(req, kSessionCookie);
    in_transaction(engine, [&](Sql& sql) {
      if (id) auth::end_session(sql, *id);
      auth::record(sql, audit_entry(req, "auth.signout", "", ""));
      return 0;
    });
    Response r = Response::json(200, Json{{"signed_out", true}});
    r.headers.emplace_back("Set-Cookie", session_cookie("", 0, secure_request(settings, req)));
    return r;
  });

  // Who the dashboard is signed in as, and (after a reload) the session's CSRF token.
  router.add("GET", "/v1/auth/session", "session", kAnyRole, [&engine, settings](Request& req) {
    Json out = who_json(*req.principal);
    out["via_session"] = req.principal->via_session;
    if (auto id = cookie(req, kSessionCookie); id && req.principal->via_session) {
      auto s = in_transaction(
          engine, [&](Sql& sql) { return auth::find_session(sql, *id, settings.session_idle); });
      if (s) {
        out["csrf_token"] = s->csrf_token;
        out["expires_at"] = s->expires_at;
        out["idle_timeout_seconds"] = settings.session_idle.count();
      }
    }
    Response r = Response::json(200, out);
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  });
}

void add_audit_route(Router& router, runtime::Engine& engine) {
  router.add("GET", "/v1/audit", "audit", Access::of({}), [&engine](Request& req) {
    auth::AuditFilter f;
    f.since = parse_time_param(req, "since");
    f.until = parse_time_param(req, "until");
    f.actor = req.q("actor");
    f.action = req.q("action");
    if (auto after = req.q("after")) f.after = parse_id(*after, "after");
    if (auto limit = req.q("limit")) {
      const auto n = parse_id(*limit, "limit");
      if (n > 1000) throw HttpError{400, "limit must be an integer from 1 to 1000"};
      f.limit = static_cast<int>(n);
    }
    const auto format = req.q("format").value_or("json");
    if (format != "json" && format != "fhir") throw HttpError{400, "format must be json or fhir"};
    Json out = in_transaction(engine, [&](Sql& sql) {
      auth::record(sql, audit_entry(req, "audit.read", "audit_event", ""));
      return auth::query_audit(sql, f);
    });
    if (format == "json") return Response::json(200, out);
    Response r = Response::json(200, auth::to_fhir_bundle(out.at("events")));
    r.content_type = "application/fhir+json";
    return r;
  });
}

}  // namespace

bool is_json_media_type(std::string_view type) {
  // type "/" subtype, then optional ";" parameters (RFC 9110 8.3.1), case-insensitive.
  type = type.substr(0, type.find(';'));
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  constexpr std::string_view kJson = "application/json";
  if (type.size() != kJson.size()) return false;
  for (std::size_t i = 0; i < kJson.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(type[i])) != kJson[i]) return false;
  return true;
}

void add_auth(Router& router, runtime::Engine& engine, AuthSettings settings) {
  router.identify_client = [proxies = settings.trusted_proxies](Request& req) {
    proxies.apply(req);
  };
  router.authenticate = [&engine, settings](const Request& req) {
    return authenticate(engine, settings, req);
  };
  router.on_forbidden = [&engine](const Request& req, const std::string& route) {
    auto entry = audit_entry(req, "access.denied", "route", route, "denied");
    entry.detail = {{"method", req.method}, {"path", req.path}};
    audit_now(engine, entry);
  };
  add_session_routes(router, engine, settings);
  add_audit_route(router, engine);
}

}  // namespace chartflow::http
