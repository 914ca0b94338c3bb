// HMAC-SHA256 and SHA-256 through OpenSSL, and the hex and comparison helpers the request
// signature checks (webhooks, S3 SigV4) share. Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace chartflow::http {

// Raw 32-byte MAC.
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string sha256_raw(std::string_view data);
std::string to_hex(std::string_view bytes);  // lower case
// Compares in time independent of where the strings differ (signatures must not leak a prefix).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace chartflow::http
