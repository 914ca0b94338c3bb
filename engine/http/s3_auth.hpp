// The request checks of the S3 API that need no database: Signature V4 authentication against
// the configured access keys and object-key validation. Kept apart from the routes so that the
// fuzz target (tests/fuzz/s3_sigv4_fuzz.cpp) reaches exactly the code the server runs.
#pragma once

#include <chrono>
#include <string>

#include "http/router.hpp"
#include "http/s3_config.hpp"

namespace chartflow::http {

// An S3 error as clients parse it (Code, Message). The functions below report every problem
// with a request as one of these and throw nothing else.
struct S3Error {
  int status;
  std::string code, message;
};

// Authenticates the request (Authorization header, x-amz-content-sha256 against the body, the
// signature with the key's secret, the time against `now`); sets req.principal and returns it.
Principal s3_authenticate(Request& req, const S3Config& s3,
                          std::chrono::system_clock::time_point now);

// Throws S3Error 400 for an empty or over-long key, control characters or '.'/'..' segments.
void check_s3_key(const std::string& key);

}  // namespace chartflow::http
