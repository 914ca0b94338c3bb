// Signature V4 against AWS's published vectors: the SigV4 test suite (service "service",
// AKIDEXAMPLE, 2015-08-30T12:36:00Z) and the S3 GET Object example of the S3 API reference.
#include "http/sigv4.hpp"

#include <gtest/gtest.h>

#include "engine/util/hash.hpp"
#include "http/hmac.hpp"

namespace chartflow::http {

using util::sha256_raw;
using util::to_hex;
namespace {

const std::string kSuiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const std::string kEmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Request suite_request(const std::string& method, const std::string& path,
                      std::map<std::string, std::string> query = {},
                      std::map<std::string, std::string> extra = {}) {
  Request r;
  r.method = method;
  r.path = path;
  r.query = std::move(query);
  r.headers = {{"host", "example.amazonaws.com"}, {"x-amz-date", "20150830T123600Z"}};
  for (auto& [k, v] : extra) r.headers[k] = v;
  return r;
}

std::string sign(const Request& r, const std::string& secret, const SigV4Auth& a,
                 const std::string& payload = kEmptyHash) {
  return sigv4_signature(
      secret, a,
      sigv4_string_to_sign(r.header("x-amz-date").value(), a.scope(),
                           sigv4_canonical_request(r, a.signed_headers, payload)));
}

SigV4Auth suite_auth(std::vector<std::string> headers = {"host", "x-amz-date"}) {
  SigV4Auth a{"AKIDEXAMPLE", "20150830", "us-east-1", "service", std::move(headers), ""};
  return a;
}

TEST(SigV4Test, AwsTestSuiteVectors) {
  EXPECT_EQ(sign(suite_request("GET", "/"), kSuiteSecret, suite_auth()),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");  // get-vanilla
  EXPECT_EQ(sign(suite_request("POST", "/"), kSuiteSecret, suite_auth()),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");  // post-vanilla
  EXPECT_EQ(sign(suite_request("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}),
                 kSuiteSecret, suite_auth()),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  EXPECT_EQ(sign(suite_request(
                     "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
                 kSuiteSecret, suite_auth()),
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");  // get-unreserved
  EXPECT_EQ(sign(suite_request("POST", "/", {}, {{"my-header1", "VALUE1"}}), kSuiteSecret,
                 suite_auth({"host", "my-header1", "x-amz-date"})),
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d");
  EXPECT_EQ(sign(suite_request("GET", "/", {},
                               {{"my-header1", " value1"}, {"my-header2", "\"a   b   c\""}}),
                 kSuiteSecret, suite_auth({"host", "my-header1", "my-header2", "x-amz-date"})),
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4Test, S3GetObjectExample) {
  Request r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"},
               {"range", "bytes=0-9"},
               {"x-amz-content-sha256", kEmptyHash},
               {"x-amz-date", "20130524T000000Z"}};
  const std::string header =
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
  std::string error;
  auto auth = parse_sigv4_authorization(header, &error);
  ASSERT_TRUE(auth) << error;
  EXPECT_EQ(auth->access_key, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(auth->scope(), "20130524/us-east-1/s3/aws4_request");
  const auto at = std::chrono::system_clock::from_time_t(1369353600);  // 2013-05-24T00:00:00Z
  EXPECT_EQ(sigv4_verify(r, *auth, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", kEmptyHash, at), "");
  // Wrong secret, changed header, a day later: refused, saying why.
  EXPECT_NE(sigv4_verify(r, *auth, "wrong", kEmptyHash, at).find("does not match"),
            std::string::npos);
  r.headers["range"] = "bytes=0-99";
  EXPECT_NE(sigv4_verify(r, *auth, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", kEmptyHash, at), "");
  r.headers["range"] = "bytes=0-9";
  EXPECT_NE(sigv4_verify(r, *auth, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", kEmptyHash,
                         at + std::chrono::hours(24))
                .find("15 minutes"),
            std::string::npos);
}

// Found by fuzzing (tests/fuzz/corpus/s3_sigv4/regression-far-amz-date): a year past 2262
// overflowed the clock's nanosecond count (undefined behaviour) instead of being refused.
TEST(SigV4Test, AmzDateOutOfRangeOrNotDigitsIsRefused) {
  const auto at = std::chrono::system_clock::from_time_t(1440938160);  // 2015-08-30T12:36:00Z
  for (const char* date :
       {"66807330T000000Z", "99991231T235959Z", "19691231T235959Z", "20151330T123600Z",
        "20150830T126000Z", "+0150830T123600Z", "2015083 T123600Z", "20150830T1236-0Z"}) {
    Request r = suite_request("GET", "/", {}, {{"x-amz-date", date}});
    EXPECT_NE(sigv4_verify(r, suite_auth(), kSuiteSecret, kEmptyHash, at).find("not a UTC time"),
              std::string::npos)
        << date;
  }
  // The suite's own time still verifies.
  Request r = suite_request("GET", "/");
  SigV4Auth a = suite_auth();
  a.signature = sign(r, kSuiteSecret, a);
  EXPECT_EQ(sigv4_verify(r, a, kSuiteSecret, kEmptyHash, at), "");
}

TEST(SigV4Test, MalformedHeadersAndEncoding) {
  std::string error;
  EXPECT_FALSE(parse_sigv4_authorization("AWS AKIA:abc", &error));
  EXPECT_NE(error.find("Signature Version 4"), std::string::npos);
  EXPECT_FALSE(parse_sigv4_authorization("AWS4-HMAC-SHA256 Credential=AK/x, Signature=00", &error));
  EXPECT_EQ(sigv4_uri_encode("a b/c+d~é", true), "a%20b/c%2Bd~%C3%A9");
  EXPECT_EQ(sigv4_uri_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(util::to_hex(util::sha256_raw("")), kEmptyHash);
}

}  // namespace
}  // namespace chartflow::http
