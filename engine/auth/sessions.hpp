// Dashboard sessions (an HttpOnly cookie holding a random id) and one-time sign-in codes, both
// stored only as SHA-256 hashes. A session's CSRF token is stored as is: it is worth nothing
// without the session cookie, and the dashboard fetches it again after a reload.
// Stateless; safe from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "auth/tokens.hpp"

namespace chartflow::auth {

inline constexpr std::chrono::hours kDefaultSessionTtl{8};
inline constexpr std::chrono::hours kSigninCodeTtl{24};
// HIPAA's automatic log-off: a session unused for this long is over.
inline constexpr std::chrono::minutes kDefaultSessionIdle{15};

struct NewSession {
  std::string id;          // goes into the cookie, nowhere else
  std::string csrf_token;  // the dashboard sends it back as X-CSRF-Token on every change
  std::string expires_at;  // RFC 3339
};
NewSession open_session(Sql& sql, const Credential& who, std::chrono::seconds ttl);

struct Session {
  Credential who;
  std::string csrf_token;
  std::string expires_at;
};
// A session that is neither ended, expired, nor unused for `idle` or longer, and whose
// credential still works (token live, user enabled); using it resets its idle time.
std::optional<Session> find_session(Sql& sql, const std::string& id, std::chrono::seconds idle);
void end_session(Sql& sql, const std::string& id);

// First start: when nothing can sign in yet (no token, no user, no sign-in code ever redeemed),
// returns a fresh admin sign-in code (older unredeemed ones stop working); else nullopt.
std::optional<std::string> first_start_code(Sql& sql);
// Redeems a code once: the admin credential it stands for ("signin-code:<id>"), or nullopt (also
// once an admin token or admin user was ever made: the code is for the first start only).
std::optional<Credential> redeem_signin_code(Sql& sql, const std::string& code);

}  // namespace chartflow::auth
