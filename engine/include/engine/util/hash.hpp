// SHA-256 through OpenSSL EVP, hex encoded. Thread-safe (one EVP context per call).
#pragma once

#include <string>
#include <string_view>

namespace chartflow::util {

// SHA-256 (OpenSSL EVP): the raw 32 bytes, or in lower-case hex.
std::string sha256_raw(std::string_view data);
std::string sha256_hex(std::string_view data);
std::string to_hex(std::string_view bytes);  // lower case
// Compares in time independent of where the first difference is (secrets and signatures
// must not leak a matching prefix).
bool constant_time_equal(std::string_view a, std::string_view b);
// A stable name-based UUID string (SHA-256 of `name`, version nibble 5 style) for resources we
// generate, so re-running a step produces byte-identical FHIR content.
std::string stable_uuid(std::string_view name);

}  // namespace chartflow::util
