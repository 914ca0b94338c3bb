// Test support: one S3 request signed with Signature V4 (host, x-amz-content-sha256,
// x-amz-date) as the AWS CLI signs it, for the cases and credentials the CLIs are not given.
#pragma once

#include <ctime>
#include <map>
#include <string>

#include "engine/util/hash.hpp"
#include "http/sigv4.hpp"
#include "tests/support/http_client.hpp"

namespace chartflow::testing {

inline HttpResponse s3_call(unsigned short port, const std::string& access_key,
                            const std::string& secret, const std::string& method,
                            const std::string& path, const std::string& body = "",
                            const std::string& payload_hash = "",
                            const std::string& content_type = "",
                            const std::map<std::string, std::string>& unsigned_headers = {}) {
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
  http::Request r;
  r.method = method;
  const auto q = path.find('?');
  r.path = http::url_decode(path.substr(0, q), false);
  if (q != std::string::npos) r.query = http::parse_query(path.substr(q + 1));
  const std::string hash =
      payload_hash.empty() ? util::to_hex(util::sha256_raw(body)) : payload_hash;
  r.headers = {{"host", "127.0.0.1:" + std::to_string(port)},
               {"x-amz-date", date},
               {"x-amz-content-sha256", hash}};
  http::SigV4Auth auth{access_key,
                       std::string(date, 8),
                       "us-east-1",
                       "s3",
                       {"host", "x-amz-content-sha256", "x-amz-date"},
                       ""};
  const std::string sig = http::sigv4_signature(
      secret, auth,
      http::sigv4_string_to_sign(date, auth.scope(),
                                 http::sigv4_canonical_request(r, auth.signed_headers, hash)));
  std::map<std::string, std::string> headers = {
      {"x-amz-date", date},
      {"x-amz-content-sha256", hash},
      {"authorization", "AWS4-HMAC-SHA256 Credential=" + access_key + "/" + auth.scope() +
                            ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                            "Signature=" +
                            sig}};
  if (!content_type.empty()) headers["content-type"] = content_type;
  headers.insert(unsigned_headers.begin(), unsigned_headers.end());
  return request(method, "127.0.0.1", port, path, body, headers);
}

}  // namespace chartflow::testing
