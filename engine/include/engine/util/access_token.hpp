// Credentials the outbound HTTP client (http_post.hpp) presents to the receiving side, as
// "Authorization: Bearer <token>": a fixed token (from the environment), a token file re-read at
// each call (so a rotated secret is picked up), or an OAuth2 client-credentials grant against a
// token endpoint, authenticated with a client secret (HTTP Basic, RFC 6749 2.3.1) or with a JWT
// client assertion signed by the client's private key (RFC 7523, "private_key_jwt": what SMART
// Backend Services and the Da Vinci payer APIs ask for; RS384 or ES384, with a `kid`). A granted
// token is cached until shortly before it expires. Thread-safe. Error texts name no secret.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/util/http_post.hpp"

namespace chartflow::util {

struct AccessToken {
  std::string value;  // the bearer token, "" on error
  std::string error;  // why there is none (no secret in it)
};

class AccessTokenSource {
 public:
  virtual ~AccessTokenSource() = default;
  virtual AccessToken get() = 0;
  // Forgets a cached token (the receiver answered 401), so the next get() asks again.
  virtual void invalidate() {}
};

// A fixed token. Throws std::invalid_argument when it is empty or not a header-safe string.
std::shared_ptr<AccessTokenSource> static_token(std::string token);
// The trimmed content of `path`, read at each get(). Throws std::invalid_argument when the file
// cannot be read now or is empty.
std::shared_ptr<AccessTokenSource> token_file(const std::filesystem::path& path);

struct ClientCredentials {
  std::string token_url;  // checked like any outbound URL (https, or loopback/allow_insecure)
  std::string client_id;
  std::string scope;  // "" = not sent
  // Exactly one of: a client secret, or a private key for a signed client assertion.
  std::string client_secret;
  std::filesystem::path private_key_file;  // PEM; RSA (2048+ bits) for RS384, P-384 for ES384
  std::string algorithm;                   // "RS384" or "ES384"
  std::string key_id;                      // the JWT header's kid (required with a key)
  HttpPostOptions http;                    // timeout and TLS for the token endpoint; no auth
};

// Throws std::invalid_argument (naming the setting, e.g. "private_key_file: ...") for missing or
// inconsistent settings and for a key that cannot be read or does not fit the algorithm.
std::shared_ptr<AccessTokenSource> oauth2_client_credentials(ClientCredentials settings);

}  // namespace chartflow::util
