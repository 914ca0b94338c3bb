// The credential tables: api_token, app_user, web_session, signin_code, and the count of recent
// failed sign-ins that throttles guessing (read from audit_event). Secrets arrive here only as
// their hashes (auth/secret.hpp computes them). Every function runs in the caller's transaction,
// so an action and its audit record commit together. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::store {

// What a credential row says about who it acts for. `id` is the row's id as text (empty for
// app_user, whose key is its name).
struct CredentialRow {
  std::string id;
  std::string name;
  std::string role;
  std::optional<std::string> assignee;
};

// api_token ------------------------------------------------------------------------------------

bool live_token_named(Sql& sql, const std::string& name);
// Returns the new token's id (0 when the insert returned no row). `expires_in_seconds`: none
// for a token that never expires.
std::int64_t insert_token(Sql& sql, const std::string& name, const std::string& role,
                          const std::optional<std::string>& assignee, const std::string& token_hash,
                          const std::string& created_by,
                          const std::optional<std::string>& expires_in_seconds);
// Revokes the live token named `name` or with id `id`; returns its id, or nullopt.
std::optional<std::int64_t> revoke_token(Sql& sql, const std::string& name,
                                         const std::optional<std::string>& id);
// [{id, name, role, assignee, created_by, created_at, expires_at, revoked_at, status}], by id;
// values are column text.
Json list_tokens(Sql& sql);
// The names of the credentials `subjects` ("token:7", "user:alice") stand for, revoked and
// expired ones too (a record keeps naming who made it); subjects of no credential are left out.
std::map<std::string, std::string> credential_names(Sql& sql,
                                                    const std::vector<std::string>& subjects);
// The live (not revoked, not expired) token with this hash.
std::optional<CredentialRow> find_live_token(Sql& sql, const std::string& token_hash);

// app_user -------------------------------------------------------------------------------------

bool user_exists(Sql& sql, const std::string& name);
void insert_user(Sql& sql, const std::string& name, const std::string& role,
                 const std::optional<std::string>& assignee, const std::string& password_hash);
struct UserRow {
  std::string role;
  std::optional<std::string> assignee;
  std::optional<std::string> password_hash;  // Argon2id encoded
};
// The user with this name unless disabled.
std::optional<UserRow> find_enabled_user(Sql& sql, const std::string& name);
// Disables (disabled_at = now()) or enables the user; false when there is no such user or it
// already was.
bool set_user_disabled(Sql& sql, const std::string& name, bool disabled);

// web_session ----------------------------------------------------------------------------------

struct SessionRow {
  std::string subject, name, role;
  std::optional<std::string> assignee;
  std::string csrf_token;
  std::string expires_at;  // RFC 3339
};
// Stores a session expiring `ttl_seconds` from now; returns its expiry (RFC 3339; empty when the
// insert returned no row).
std::string insert_session(Sql& sql, const std::string& id_hash, const std::string& csrf_token,
                           const std::string& subject, const std::string& name,
                           const std::string& role, const std::optional<std::string>& assignee,
                           std::int64_t ttl_seconds);
// Deletes up to 100 sessions that expired more than a day ago.
void sweep_expired_sessions(Sql& sql);
// The session with this id hash that is neither ended nor expired nor idle for
// `idle_seconds` or longer, and whose credential still works (its token live, its user
// enabled); notes that it was used (last_seen_at, at most every few seconds).
std::optional<SessionRow> find_live_session(Sql& sql, const std::string& id_hash,
                                            std::int64_t idle_seconds);
void end_session(Sql& sql, const std::string& id_hash);
// Ends every open session opened with the credential `subject` ("token:7", "user:alice");
// returns how many.
int end_sessions_of(Sql& sql, const std::string& subject);

// signin_code ----------------------------------------------------------------------------------

// True when anything can sign in: a token, a user, or a sign-in code that was redeemed.
bool any_credential(Sql& sql);
// Makes every unexpired sign-in code expire now.
void expire_signin_codes(Sql& sql);
// Stores an admin sign-in code expiring `ttl_seconds` from now.
void insert_signin_code(Sql& sql, const std::string& code_hash, std::int64_t ttl_seconds);
// Marks the unused, unexpired code with this hash used and returns it (`name` empty), unless an
// admin credential was ever made (an admin token, revoked or not; an admin user, disabled or
// not): then nullopt, as for an unknown code.
std::optional<CredentialRow> redeem_signin_code(Sql& sql, const std::string& code_hash);

// sign-in throttling (signin_failure) ----------------------------------------------------------

// Failed sign-ins within the last `window_seconds` (each pair's count runs until that long after
// its last failure).
struct SignInFailures {
  int pair = 0;           // of this (name, remote) pair
  double pair_age = 0;    // seconds since the pair's last failure
  int remote = 0;         // from this address, every name
  double remote_age = 0;  // seconds since the address's last failure
};
SignInFailures sign_in_failures(Sql& sql, const std::string& name, const std::string& remote,
                                int window_seconds);
// Counts one more failure of the pair (starting again at 1 after a quiet window), and forgets a
// few pairs quiet for a day.
void record_sign_in_failure(Sql& sql, const std::string& name, const std::string& remote,
                            int window_seconds);
// A successful sign-in: the pair starts afresh.
void clear_sign_in_failures(Sql& sql, const std::string& name, const std::string& remote);

}  // namespace chartflow::store
