// API tokens: created and revoked by `chartflow tokens` (and shown once), looked up by the server
// on every request carrying `Authorization: Bearer ...`. Only the SHA-256 of a token is stored.
// Every function takes the caller's transaction; stateless and safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::auth {

inline constexpr const char* kTokenPrefix = "cft_";

// uploader, reviewer, billing, operator, admin.
const std::vector<std::string>& role_names();
bool valid_role(const std::string& role);

// Who a credential acts for. `subject` is stable and names the credential ("token:7",
// "user:alice"); `assignee` is the practitioner a reviewer acts as.
struct Credential {
  std::string subject;
  std::string name;
  std::string role;
  std::optional<std::string> assignee;
};

struct TokenSpec {
  std::string name;
  std::string role;
  std::optional<std::string> assignee;
  std::optional<std::chrono::seconds> expires_in;
  std::string created_by;
};

struct CreatedToken {
  std::int64_t id = 0;
  std::string token;  // the only time it exists in clear text
};

// Throws std::invalid_argument naming the problem (unknown role, bad name, reviewer without an
// assignee, name already used by a live token).
CreatedToken create_token(Sql& sql, const TokenSpec& spec);
// Revokes the live token with this id or name, ending the sessions opened with it; returns its
// id, or nullopt when there is none.
std::optional<std::int64_t> revoke_token(Sql& sql, const std::string& id_or_name);
// [{id, name, role, assignee, created_by, created_at, expires_at, revoked_at, status}]
Json list_tokens(Sql& sql);
// The credential of a live (not revoked, not expired) token, or nullopt.
std::optional<Credential> find_token(Sql& sql, const std::string& token);

// "30d", "12h", "90m": whole seconds, at least one minute. Throws std::invalid_argument.
std::chrono::seconds parse_expiry(const std::string& text);

}  // namespace chartflow::auth
