// AWS Signature Version 4 verification (header form, as the AWS CLI and s3cmd send it):
// canonical request, string to sign, signing key and signature, per
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html. Pure functions;
// thread-safe. Paths are canonicalised as S3 does: each segment URI-encoded once, no
// normalisation.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "http/router.hpp"

namespace chartflow::http {

inline constexpr const char* kSigV4Algorithm = "AWS4-HMAC-SHA256";
inline constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";
// Requests older or newer than this are refused, as S3 does.
inline constexpr std::chrono::minutes kSigV4MaxSkew{15};

// The parts of an Authorization header:
// AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/s3/aws4_request, SignedHeaders=a;b,
// Signature=hex
struct SigV4Auth {
  std::string access_key, date, region, service;
  std::vector<std::string> signed_headers;
  std::string signature;
  std::string scope() const { return date + "/" + region + "/" + service + "/aws4_request"; }
};

// nullopt (with *error naming the problem) when the header is not a well-formed SigV4 header.
std::optional<SigV4Auth> parse_sigv4_authorization(const std::string& header, std::string* error);

// RFC 3986 encoding as SigV4 specifies: all but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash).
std::string sigv4_uri_encode(const std::string& in, bool keep_slash);

std::string sigv4_canonical_request(const Request& req,
                                    const std::vector<std::string>& signed_headers,
                                    const std::string& payload_hash);
std::string sigv4_string_to_sign(const std::string& amz_date, const std::string& scope,
                                 const std::string& canonical_request);
// Hex signature of `string_to_sign` with the key derived from `secret` for the auth's scope.
std::string sigv4_signature(const std::string& secret, const SigV4Auth& auth,
                            const std::string& string_to_sign);

// The whole check for one request whose credential `auth` names a key with `secret`: the
// request time (x-amz-date) within kSigV4MaxSkew of `now`, the host and x-amz-date headers
// signed, and the signature matching. Returns "" when valid, else what is wrong.
std::string sigv4_verify(const Request& req, const SigV4Auth& auth, const std::string& secret,
                         const std::string& payload_hash,
                         std::chrono::system_clock::time_point now);

}  // namespace chartflow::http
