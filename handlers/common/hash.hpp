// SHA-256 through OpenSSL EVP, hex encoded. Thread-safe (one EVP context per call).
#pragma once

#include <string>
#include <string_view>

namespace chartflow::handlers {

std::string sha256_hex(std::string_view data);
// A stable name-based UUID string (SHA-256 of `name`, version nibble 5 style) for resources we
// generate, so re-running a step produces byte-identical FHIR content.
std::string stable_uuid(std::string_view name);

}  // namespace chartflow::handlers
