// HMAC-SHA256 through OpenSSL, for the request signature checks (webhooks, S3 SigV4); SHA-256,
// hex and constant-time comparison are handlers/common/hash.hpp's. Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace chartflow::http {

// Raw 32-byte MAC.
std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace chartflow::http
