// Dashboard users with passwords (Argon2id, from libargon2) and the sign-in paths that open a
// session: a password, an API token, or a one-time sign-in code. Stateless; safe from any
// thread.
#pragma once

#include <optional>
#include <string>

#include "auth/tokens.hpp"

namespace chartflow::auth {

// Argon2id encoded hash ($argon2id$v=19$m=19456,t=2,p=1$...): OWASP's minimum parameters, with
// a salt of 16 random bytes. Hashes made with any other salt (the 16 hex digits of earlier
// versions) still verify: the salt is part of the encoded hash.
std::string hash_password(const std::string& password);
bool verify_password(const std::string& encoded, const std::string& password);

// Throws std::invalid_argument naming the problem (role, name, reviewer without assignee,
// password shorter than 12 characters, name taken).
void create_user(Sql& sql, const std::string& name, const std::string& role,
                 const std::optional<std::string>& assignee, const std::string& password);
// Disables the user (no more sign-ins; its open sessions end) or enables it again (old sessions
// stay ended). Returns false when there is no such user or it already was in that state.
bool set_user_enabled(Sql& sql, const std::string& name, bool enabled);
// The user's credential when the password matches (subject "user:<name>"). Takes as long for an
// unknown name as for a wrong password.
std::optional<Credential> check_password(Sql& sql, const std::string& name,
                                         const std::string& password);

}  // namespace chartflow::auth
