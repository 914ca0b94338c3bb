#include "http/s3_auth.hpp"

#include <algorithm>

#include "engine/util/hash.hpp"
#include "http/hmac.hpp"
#include "http/sigv4.hpp"

namespace chartflow::http {

using util::sha256_raw;
using util::to_hex;
namespace {

constexpr std::size_t kMaxKeyBytes = 1024;

}  // namespace

Principal s3_authenticate(Request& req, const S3Config& s3,
                          std::chrono::system_clock::time_point now) {
  const auto header = req.header("authorization");
  if (!header)
    throw S3Error{403, "AccessDenied",
                  "requests must be signed with AWS Signature Version 4 (anonymous access is "
                  "off)"};
  std::string problem;
  auto auth = parse_sigv4_authorization(*header, &problem);
  if (!auth) throw S3Error{403, "AuthorizationHeaderMalformed", problem};
  const S3AccessKey* key = s3.key(auth->access_key);
  if (key == nullptr)
    throw S3Error{403, "InvalidAccessKeyId",
                  "the access key id you provided does not exist in our records"};
  if (auth->service != "s3")
    throw S3Error{403, "AuthorizationHeaderMalformed", "the credential scope's service must be s3"};
  std::string payload_hash = req.header("x-amz-content-sha256").value_or("");
  if (payload_hash.rfind("STREAMING-", 0) == 0)
    throw S3Error{501, "NotImplemented",
                  "streaming (aws-chunked) payloads are not supported: send the payload in one "
                  "piece (its SHA-256 or UNSIGNED-PAYLOAD in x-amz-content-sha256)"};
  const std::string body_hash = util::to_hex(util::sha256_raw(req.body));
  if (payload_hash.empty()) {
    payload_hash = body_hash;
  } else if (payload_hash != kUnsignedPayload && payload_hash != body_hash) {
    throw S3Error{400, "XAmzContentSHA256Mismatch",
                  "the x-amz-content-sha256 header does not match the body's SHA-256"};
  }
  problem = sigv4_verify(req, *auth, key->secret, payload_hash, now);
  if (!problem.empty()) throw S3Error{403, "SignatureDoesNotMatch", problem};
  Principal p{"s3:" + auth->access_key, "s3 " + auth->access_key, key->role, key->assignee, false};
  req.principal = p;
  return p;
}

void check_s3_key(const std::string& key) {
  if (key.empty()) throw S3Error{400, "InvalidArgument", "the object key is empty"};
  if (key.size() > kMaxKeyBytes)
    throw S3Error{400, "KeyTooLongError", "object keys are at most 1024 bytes"};
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f)
      throw S3Error{400, "InvalidArgument", "object keys may not contain control characters"};
  // Keys name archive paths and appear in events: no traversal segments.
  std::size_t start = 0;
  while (start <= key.size()) {
    const auto end = std::min(key.find('/', start), key.size());
    const std::string seg = key.substr(start, end - start);
    if (seg == "." || seg == "..")
      throw S3Error{400, "InvalidArgument", "object keys may not contain '.' or '..' segments"};
    start = end + 1;
  }
}

}  // namespace chartflow::http
