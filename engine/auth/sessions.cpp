#include "auth/sessions.hpp"

#include "auth/secret.hpp"
#include "store/auth_store.hpp"

namespace chartflow::auth {
namespace {

constexpr const char* kSessionPrefix = "cfs_";
constexpr const char* kCsrfPrefix = "cfx_";
constexpr const char* kCodePrefix = "cfc_";

}  // namespace

NewSession open_session(Sql& sql, const Credential& who, std::chrono::seconds ttl) {
  NewSession s;
  s.id = random_secret(kSessionPrefix);
  s.csrf_token = random_secret(kCsrfPrefix);
  s.expires_at = store::insert_session(sql, secret_hash(s.id), s.csrf_token, who.subject, who.name,
                                       who.role, who.assignee, ttl.count());
  // Expired sessions are of no use to anyone: sweep a few on the way.
  store::sweep_expired_sessions(sql);
  return s;
}

std::optional<Session> find_session(Sql& sql, const std::string& id, std::chrono::seconds idle) {
  if (!plausible_secret(id, kSessionPrefix)) return std::nullopt;
  auto row = store::find_live_session(sql, secret_hash(id), idle.count());
  if (!row) return std::nullopt;
  return Session{Credential{row->subject, row->name, row->role, row->assignee}, row->csrf_token,
                 row->expires_at};
}

void end_session(Sql& sql, const std::string& id) { store::end_session(sql, secret_hash(id)); }

std::optional<std::string> first_start_code(Sql& sql) {
  if (store::any_credential(sql)) return std::nullopt;
  store::expire_signin_codes(sql);
  const std::string code = random_secret(kCodePrefix);
  store::insert_signin_code(
      sql, secret_hash(code),
      std::chrono::duration_cast<std::chrono::seconds>(kSigninCodeTtl).count());
  return code;
}

std::optional<Credential> redeem_signin_code(Sql& sql, const std::string& code) {
  if (!plausible_secret(code, kCodePrefix)) return std::nullopt;
  auto row = store::redeem_signin_code(sql, secret_hash(code));
  if (!row) return std::nullopt;
  return Credential{"signin-code:" + row->id, "first-admin", row->role, std::nullopt};
}

}  // namespace chartflow::auth
