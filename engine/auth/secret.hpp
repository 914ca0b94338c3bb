// Random secrets (API tokens, session ids, sign-in codes) and the hashes they are stored as.
// Only the hash of a secret ever reaches the database or a log. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace chartflow::auth {

// `prefix` followed by 32 random bytes (OpenSSL RAND_bytes) in hex; throws std::runtime_error
// when the random generator fails.
std::string random_secret(std::string_view prefix);
// Hex SHA-256: what a secret is stored and looked up as.
std::string secret_hash(std::string_view secret);
// Whether a secret presented to us is worth looking up (by its hash): it starts with `prefix`
// and is not implausibly long.
bool plausible_secret(std::string_view secret, std::string_view prefix);

}  // namespace chartflow::auth
