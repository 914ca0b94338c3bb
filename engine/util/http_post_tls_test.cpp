// The outbound client against real local HTTPS servers whose certificates a test CA issued
// (tests/support/tls_test_server.hpp): the configured CA is trusted and nothing else, mTLS, and
// the receiving side's credentials (a bearer token file; OAuth2 client credentials with a client
// secret or a SMART Backend Services RS384/ES384 client assertion, verified here with the public
// key, and the granted token cached).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "engine/util/access_token.hpp"
#include "engine/util/http_post.hpp"
#include "tests/support/tls_test_server.hpp"

namespace chartflow::util {
namespace {

using chartflow::testing::SeenRequest;
using chartflow::testing::TestPki;
using chartflow::testing::TlsServerOptions;
using chartflow::testing::TlsTestServer;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Answer = TlsTestServer::Answer;

// What a chart's notification could carry: it must never reach an error or a log.
constexpr const char* kPhi = R"({"patient":"Patient/Zyxwvut Quorra-Phimarker","dob":"1941-07-04"})";

TestPki& pki() {
  static TestPki instance;  // openssl key generation is slow: once per test binary
  return instance;
}

TlsServerOptions server_of(const std::string& name, const std::string& client_ca = {}) {
  return {pki().p(name + ".pem"), pki().p(name + ".key"),
          client_ca.empty() ? std::string() : pki().p(client_ca)};
}

HttpPostOptions trusting_test_ca() {
  HttpPostOptions o;
  o.timeout = std::chrono::seconds(10);
  o.tls.ca_file = pki().p("ca.pem");
  return o;
}

TEST(OutboundHttpsTest, GoodCaDelivers) {
  TlsTestServer server(server_of("server"), [](const SeenRequest&, int) { return Answer{201}; });
  HttpResult r =
      http_post(server.url("/claims"), kPhi, {{"Idempotency-Key", "k-1"}}, trusting_test_ca());
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "{}");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/claims");
  EXPECT_EQ(seen[0].body, kPhi);
  EXPECT_EQ(seen[0].header("idempotency-key"), "k-1");
  EXPECT_EQ(seen[0].header("content-type"), "application/json");
  EXPECT_EQ(seen[0].header("authorization"), "");
  EXPECT_EQ(seen[0].client_cn, "");
}

TEST(OutboundHttpsTest, CertificateFromAnotherCaFailsWithTlsError) {
  TlsTestServer server(server_of("other-server"),
                       [](const SeenRequest&, int) { return Answer{200}; });
  HttpResult r = http_post(server.url("/claims"), kPhi, {}, trusting_test_ca());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.error, StartsWith("TLS: certificate verify failed")) << r.error;
  EXPECT_THAT(r.error, Not(HasSubstr("Phimarker")));
  // Nor does the system store know the test's CAs.
  HttpPostOptions system_store;
  HttpResult r2 = http_post(server.url("/claims"), kPhi, {}, system_store);
  EXPECT_THAT(r2.error, StartsWith("TLS: certificate verify failed")) << r2.error;
  // The configured CA is the only one trusted: the other CA's own file accepts its server.
  HttpPostOptions other = trusting_test_ca();
  other.tls.ca_file = pki().p("other-ca.pem");
  EXPECT_TRUE(http_post(server.url("/claims"), "{}", {}, other).ok());
  EXPECT_EQ(server.requests().size(), 1U) << "a request went out over an unverified connection";
}

TEST(OutboundHttpsTest, MutualTlsWithAndWithoutAClientCertificate) {
  TlsTestServer server(server_of("server", "ca.pem"),
                       [](const SeenRequest&, int) { return Answer{200}; });
  HttpPostOptions with_cert = trusting_test_ca();
  with_cert.tls.client_cert = pki().p("client.pem");
  with_cert.tls.client_key = pki().p("client.key");
  HttpResult ok = http_post(server.url("/claims"), kPhi, {}, with_cert);
  EXPECT_TRUE(ok.ok()) << ok.error;
  ASSERT_EQ(server.requests().size(), 1U);
  EXPECT_EQ(server.requests()[0].client_cn, "chartflow-client");

  HttpResult refused = http_post(server.url("/claims"), kPhi, {}, trusting_test_ca());
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.status, 0);
  EXPECT_THAT(refused.error, StartsWith("TLS: ")) << refused.error;
  EXPECT_THAT(refused.error, Not(HasSubstr("Phimarker")));
  EXPECT_EQ(server.requests().size(), 1U);
  EXPECT_GE(server.handshake_failures_within(std::chrono::seconds(10)), 1);
}

TEST(OutboundHttpsTest, AServerOfferingOnlyTls11IsRefused) {
  TlsServerOptions old_server = server_of("server");
  old_server.max_version = TLS1_1_VERSION;
  TlsTestServer server(old_server, [](const SeenRequest&, int) { return Answer{200}; });
  HttpResult r = http_post(server.url("/claims"), kPhi, {}, trusting_test_ca());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.error, StartsWith("TLS: ")) << r.error;
  EXPECT_TRUE(server.requests().empty());
}

TEST(OutboundHttpsTest, PlainHttpOnlyToLoopbackOrWhenAllowed) {
  EXPECT_EQ(check_outbound_url("https://payer.example/claims", false), "");
  EXPECT_EQ(check_outbound_url("http://127.0.0.1:9/x", false), "");
  EXPECT_EQ(check_outbound_url("http://127.8.9.10/x", false), "");
  EXPECT_EQ(check_outbound_url("http://[::1]:9/x", false), "");
  EXPECT_EQ(check_outbound_url("http://LOCALHOST:9/x", false), "");
  EXPECT_THAT(check_outbound_url("http://payer.example/claims", false),
              HasSubstr("allow_insecure"));
  EXPECT_THAT(check_outbound_url("http://10.0.0.5/claims", false), HasSubstr("allow_insecure"));
  EXPECT_THAT(check_outbound_url("http://128.0.0.1/claims", false), HasSubstr("allow_insecure"));
  EXPECT_EQ(check_outbound_url("http://payer.example/claims", true), "");
  EXPECT_NE(check_outbound_url("ftp://payer.example/claims", true), "");
  // The client itself refuses too, before any connection.
  HttpResult r = http_post("http://payer.example/claims", kPhi, {});
  EXPECT_THAT(r.error, StartsWith("refused: ")) << r.error;
}

TEST(OutboundAuthTest, BearerTokenFromFileIsSentAndReReadAfterRotation) {
  TlsTestServer server(server_of("server"), [](const SeenRequest&, int) { return Answer{200}; });
  const std::string file = pki().p("insurer-token");
  pki().write("insurer-token", "first-token\n");
  HttpPostOptions o = trusting_test_ca();
  o.auth = token_file(file);
  EXPECT_TRUE(http_post(server.url("/claims"), "{}", {}, o).ok());
  pki().write("insurer-token", "second-token");
  EXPECT_TRUE(http_post(server.url("/claims"), "{}", {}, o).ok());
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].header("authorization"), "Bearer first-token");
  EXPECT_EQ(seen[1].header("authorization"), "Bearer second-token");
  EXPECT_THROW(token_file(pki().p("no-such-token")), std::invalid_argument);
  pki().write("empty-token", "\n");
  EXPECT_THROW(token_file(pki().p("empty-token")), std::invalid_argument);
}

// --- OAuth2 client credentials -------------------------------------------------------------

std::map<std::string, std::string> parse_form(const std::string& body) {
  auto decode = [](std::string s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  };
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos <= body.size()) {
    auto amp = body.find('&', pos);
    std::string pair = body.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    auto eq = pair.find('=');
    out[decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : decode(pair.substr(eq + 1));
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

std::string base64url_decode(std::string s) {
  for (auto& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (s.size() % 4 != 0) s += '=';
  std::string out(s.size(), '\0');
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return {};
  std::size_t pad = 0;
  while (pad < 2 && s.size() > pad && s[s.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// Verifies a compact JWS with the PEM public key in `pub_file`; true when the signature holds.
bool verify_jws(const std::string& jwt, const std::string& alg, const std::string& pub_file) {
  const auto dot2 = jwt.rfind('.');
  const std::string input = jwt.substr(0, dot2);
  std::string sig = base64url_decode(jwt.substr(dot2 + 1));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(pub_file.c_str(), "r"), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) return false;
  if (alg == "ES384") {  // JWS carries R||S; OpenSSL verifies DER
    if (sig.size() != 96) return false;
    ECDSA_SIG* s = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 48, nullptr);
    BIGNUM* ss = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 48, 48, nullptr);
    ECDSA_SIG_set0(s, r, ss);
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(s, &der);
    sig.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

// A token endpoint (/token) and a resource (/claims) on one HTTPS server: /token grants
// "tok-<n>" for `expires_in` seconds, /claims accepts any bearer token /token granted.
struct OAuthServer {
  explicit OAuthServer(int expires_in = 300)
      : server(server_of("server"), [expires_in](const SeenRequest& r, int) {
          if (r.target == "/token") {
            static std::atomic<int> granted{0};
            return Answer{200, nlohmann::json{{"access_token", "tok-" + std::to_string(++granted)},
                                              {"token_type", "Bearer"},
                                              {"expires_in", expires_in}}
                                   .dump()};
          }
          return Answer{r.header("authorization").rfind("Bearer tok-", 0) == 0 ? 200 : 401};
        }) {}
  std::vector<SeenRequest> at(const std::string& target) const {
    std::vector<SeenRequest> out;
    for (auto& r : server.requests()) {
      if (r.target == target) out.push_back(r);
    }
    return out;
  }
  TlsTestServer server;
};

void expect_signed_assertion_flow(const std::string& alg, const std::string& key,
                                  const std::string& pub) {
  OAuthServer oauth;
  ClientCredentials c;
  c.token_url = oauth.server.url("/token");
  c.client_id = "chartflow-client-1";
  c.scope = "system/Claim.write system/Coverage.read";
  c.private_key_file = pki().p(key);
  c.algorithm = alg;
  c.key_id = "kid-2024";
  c.http = trusting_test_ca();
  HttpPostOptions o = trusting_test_ca();
  o.auth = oauth2_client_credentials(c);

  ASSERT_TRUE(http_post(oauth.server.url("/claims"), kPhi, {}, o).ok());
  ASSERT_TRUE(http_post(oauth.server.url("/claims"), kPhi, {}, o).ok());

  auto token_requests = oauth.at("/token");
  ASSERT_EQ(token_requests.size(), 1U) << "the token was not cached";
  const SeenRequest& t = token_requests[0];
  EXPECT_EQ(t.method, "POST");
  EXPECT_EQ(t.header("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(t.header("authorization"), "");
  EXPECT_THAT(t.body, Not(HasSubstr("Phimarker")));
  auto form = parse_form(t.body);
  EXPECT_EQ(form["grant_type"], "client_credentials");
  EXPECT_EQ(form["scope"], "system/Claim.write system/Coverage.read");
  EXPECT_EQ(form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  const std::string jwt = form["client_assertion"];
  ASSERT_EQ(std::count(jwt.begin(), jwt.end(), '.'), 2) << jwt;
  auto header = nlohmann::json::parse(base64url_decode(jwt.substr(0, jwt.find('.'))));
  EXPECT_EQ(header["alg"], alg);
  EXPECT_EQ(header["kid"], "kid-2024");
  EXPECT_EQ(header["typ"], "JWT");
  const auto dot1 = jwt.find('.');
  auto claims =
      nlohmann::json::parse(base64url_decode(jwt.substr(dot1 + 1, jwt.rfind('.') - dot1 - 1)));
  EXPECT_EQ(claims["iss"], "chartflow-client-1");
  EXPECT_EQ(claims["sub"], "chartflow-client-1");
  EXPECT_EQ(claims["aud"], c.token_url);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_GT(claims["exp"].get<std::int64_t>(), now);
  EXPECT_LE(claims["exp"].get<std::int64_t>(), now + 300);
  EXPECT_FALSE(claims["jti"].get<std::string>().empty());
  EXPECT_TRUE(verify_jws(jwt, alg, pki().p(pub))) << "signature does not verify: " << jwt;
  // Signed by this key only: the other algorithm's public key does not verify it.
  EXPECT_FALSE(verify_jws(jwt, alg, pki().p(pub == "rsa.pub" ? "ec384.pub" : "rsa.pub")));

  auto claims_requests = oauth.at("/claims");
  ASSERT_EQ(claims_requests.size(), 2U);
  const std::string granted = claims_requests[0].header("authorization");
  EXPECT_THAT(granted, StartsWith("Bearer tok-"));
  EXPECT_EQ(claims_requests[1].header("authorization"), granted);
}

TEST(OutboundAuthTest, SmartBackendServicesRs384AssertionIsValidAndTheTokenCached) {
  expect_signed_assertion_flow("RS384", "rsa.key", "rsa.pub");
}

TEST(OutboundAuthTest, SmartBackendServicesEs384AssertionIsValidAndTheTokenCached) {
  expect_signed_assertion_flow("ES384", "ec384.key", "ec384.pub");
}

TEST(OutboundAuthTest, ClientSecretGoesAsHttpBasicAndAnExpiredTokenIsRenewed) {
  OAuthServer oauth(/*expires_in=*/1);
  ClientCredentials c;
  c.token_url = oauth.server.url("/token");
  c.client_id = "chartflow";
  c.client_secret = "s3cr:t";
  c.http = trusting_test_ca();
  HttpPostOptions o = trusting_test_ca();
  o.auth = oauth2_client_credentials(c);
  ASSERT_TRUE(http_post(oauth.server.url("/claims"), "{}", {}, o).ok());
  auto tokens = oauth.at("/token");
  ASSERT_EQ(tokens.size(), 1U);
  // base64("chartflow:s3cr%3At"): id and secret form-encoded first (RFC 6749 2.3.1).
  EXPECT_EQ(tokens[0].header("authorization"), "Basic Y2hhcnRmbG93OnMzY3IlM0F0");
  auto form = parse_form(tokens[0].body);
  EXPECT_EQ(form["grant_type"], "client_credentials");
  EXPECT_EQ(form.count("client_assertion"), 0U);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past expires_in
  ASSERT_TRUE(http_post(oauth.server.url("/claims"), "{}", {}, o).ok());
  EXPECT_EQ(oauth.at("/token").size(), 2U) << "an expired token was reused";
  auto claims = oauth.at("/claims");
  ASSERT_EQ(claims.size(), 2U);
  EXPECT_NE(claims[0].header("authorization"), claims[1].header("authorization"));
}

TEST(OutboundAuthTest, A401ForgetsTheTokenAndTokenEndpointErrorsAreReported) {
  int rejected = 0;
  TlsTestServer server(server_of("server"), [&rejected](const SeenRequest& r, int) {
    if (r.target == "/token") {
      if (r.header("authorization") != "Basic Y2hhcnRmbG93OnJpZ2h0") {
        return Answer{401, R"({"error":"invalid_client","error_description":"nope"})"};
      }
      return Answer{200, R"({"access_token":"t","token_type":"bearer","expires_in":3600})"};
    }
    return Answer{rejected++ == 0 ? 401 : 200};
  });
  ClientCredentials c;
  c.token_url = server.url("/token");
  c.client_id = "chartflow";
  c.client_secret = "right";
  c.http = trusting_test_ca();
  HttpPostOptions o = trusting_test_ca();
  o.auth = oauth2_client_credentials(c);
  EXPECT_EQ(http_post(server.url("/claims"), "{}", {}, o).status, 401);
  EXPECT_TRUE(http_post(server.url("/claims"), "{}", {}, o).ok());
  int token_requests = 0;
  for (auto& r : server.requests()) token_requests += r.target == "/token" ? 1 : 0;
  EXPECT_EQ(token_requests, 2) << "the token refused with 401 was kept";

  c.client_secret = "wrong";
  o.auth = oauth2_client_credentials(c);
  HttpResult r = http_post(server.url("/claims"), kPhi, {}, o);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, "auth: token endpoint: HTTP status 401 (invalid_client)");
}

TEST(OutboundAuthTest, BadClientCredentialSettingsAreRefused) {
  ClientCredentials c;
  c.token_url = "https://payer.example/token";
  c.client_id = "chartflow";
  c.private_key_file = pki().p("rsa.key");
  c.algorithm = "ES384";  // an RSA key cannot sign ES384
  c.key_id = "k";
  try {
    oauth2_client_credentials(c);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), StartsWith("private_key_file: "));
  }
  c.algorithm = "HS256";
  EXPECT_THROW(oauth2_client_credentials(c), std::invalid_argument);
  c.algorithm = "RS384";
  c.key_id.clear();
  EXPECT_THROW(oauth2_client_credentials(c), std::invalid_argument);
  c.key_id = "k";
  c.token_url = "http://payer.example/token";
  try {
    oauth2_client_credentials(c);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), StartsWith("token_url: "));
  }
}

}  // namespace
}  // namespace chartflow::util
