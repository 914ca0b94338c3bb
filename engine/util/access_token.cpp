#include "engine/util/access_token.hpp"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "engine/util/hash.hpp"

namespace chartflow::util {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kDefaultTokenLifetime{300};
constexpr std::chrono::seconds kRefreshMargin{30};
constexpr std::chrono::seconds kAssertionLifetime{300};  // SMART: at most five minutes

std::string trim(std::string s) {
  auto blank = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), blank));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), blank).base(), s.end());
  return s;
}

bool header_safe(std::string_view token) {
  if (token.empty()) return false;
  return std::all_of(token.begin(), token.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

// "" when the file reads, else why not (no content).
std::string read_file(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("cannot read {}", path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return {};
}

std::string base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  return out;
}

std::string base64url(std::string_view raw) {
  std::string out = base64(raw);
  for (auto& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

// application/x-www-form-urlencoded (RFC 6749 appendix B).
std::string form_encode(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

using Pkey = std::shared_ptr<EVP_PKEY>;

Pkey load_private_key(const std::filesystem::path& path, const std::string& algorithm) {
  std::string pem;
  if (std::string err = read_file(path, pem); !err.empty()) {
    throw std::invalid_argument("private_key_file: " + err);
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  OPENSSL_cleanse(pem.data(), pem.size());
  if (raw == nullptr) {
    ERR_clear_error();
    throw std::invalid_argument(
        fmt::format("private_key_file: {} holds no PEM private key", path.string()));
  }
  Pkey key(raw, &EVP_PKEY_free);
  if (algorithm == "RS384") {
    if (EVP_PKEY_get_base_id(raw) != EVP_PKEY_RSA || EVP_PKEY_get_bits(raw) < 2048) {
      throw std::invalid_argument(
          fmt::format("private_key_file: {} is not an RSA key of 2048 bits or more, as RS384 needs",
                      path.string()));
    }
  } else {
    char group[64] = {0};
    std::size_t len = 0;
    if (EVP_PKEY_get_base_id(raw) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(raw, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &len) != 1 ||
        std::string_view(group, len) != "secp384r1") {
      ERR_clear_error();
      throw std::invalid_argument(fmt::format(
          "private_key_file: {} is not an EC P-384 key, as ES384 needs", path.string()));
    }
  }
  return key;
}

// The JWS signature of `input` (RFC 7518: RS384 PKCS#1 v1.5; ES384 the raw R||S, 2 x 48 bytes).
std::string sign(EVP_PKEY* key, const std::string& algorithm, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    throw std::runtime_error("sign: " + openssl_error());
  }
  std::string der(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    throw std::runtime_error("sign: " + openssl_error());
  }
  der.resize(length);
  if (algorithm == "RS384") return der;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), &ECDSA_SIG_free);
  if (!sig) throw std::runtime_error("sign: " + openssl_error());
  std::string raw(96, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, 48) != 48 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + 48, 48) != 48) {
    throw std::runtime_error("sign: ECDSA signature does not fit P-384");
  }
  return raw;
}

std::string random_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) throw std::runtime_error("RAND_bytes failed");
  return to_hex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

class StaticToken final : public AccessTokenSource {
 public:
  explicit StaticToken(std::string token) : token_(std::move(token)) {}
  AccessToken get() override { return {token_, {}}; }

 private:
  const std::string token_;
};

class TokenFile final : public AccessTokenSource {
 public:
  explicit TokenFile(std::filesystem::path path) : path_(std::move(path)) {}
  AccessToken get() override {
    std::string content;
    if (std::string err = read_file(path_, content); !err.empty())
      return {{}, "token_file: " + err};
    std::string token = trim(std::move(content));
    if (!header_safe(token)) {
      return {{}, fmt::format("token_file: {} is empty or not one line", path_.string())};
    }
    return {token, {}};
  }

 private:
  const std::filesystem::path path_;
};

class ClientCredentialsGrant final : public AccessTokenSource {
 public:
  ClientCredentialsGrant(ClientCredentials settings, Pkey key)
      : settings_(std::move(settings)), key_(std::move(key)) {
    settings_.http.auth.reset();
  }

  AccessToken get() override {
    std::lock_guard lock(mutex_);
    if (!token_.empty() && Clock::now() < usable_until_) return {token_, {}};
    token_.clear();
    return fetch();
  }
  void invalidate() override {
    std::lock_guard lock(mutex_);
    token_.clear();
  }

 private:
  std::string client_assertion() const {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    nlohmann::json header = {{"alg", settings_.algorithm}, {"typ", "JWT"}};
    if (!settings_.key_id.empty()) header["kid"] = settings_.key_id;
    const nlohmann::json claims = {{"iss", settings_.client_id},
                                   {"sub", settings_.client_id},
                                   {"aud", settings_.token_url},
                                   {"iat", now},
                                   {"exp", now + kAssertionLifetime.count()},
                                   {"jti", random_id()}};
    const std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
    return input + "." + base64url(sign(key_.get(), settings_.algorithm, input));
  }

  AccessToken fetch() {
    std::string form = "grant_type=client_credentials";
    if (!settings_.scope.empty()) form += "&scope=" + form_encode(settings_.scope);
    HttpHeaders headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                           {"Accept", "application/json"}};
    if (key_) {
      try {
        form += "&client_assertion_type=" +
                form_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
                "&client_assertion=" + client_assertion();
      } catch (const std::exception& e) {
        return {{}, fmt::format("client assertion: {}", e.what())};
      }
    } else {
      headers.emplace_back("Authorization",
                           "Basic " + base64(form_encode(settings_.client_id) + ":" +
                                             form_encode(settings_.client_secret)));
    }
    const auto asked = Clock::now();
    HttpResult result = http_post(settings_.token_url, form, headers, settings_.http);
    if (!result.error.empty()) return {{}, "token endpoint: " + result.error};
    nlohmann::json answer = nlohmann::json::parse(result.body, nullptr, false);
    if (!result.ok()) {
      std::string code;
      if (answer.is_object() && answer.contains("error") && answer["error"].is_string()) {
        code = answer["error"].get<std::string>();
        if (!header_safe(code) || code.size() > 64) code.clear();
      }
      return {{},
              code.empty()
                  ? fmt::format("token endpoint: HTTP status {}", result.status)
                  : fmt::format("token endpoint: HTTP status {} ({})", result.status, code)};
    }
    if (!answer.is_object() || !answer.contains("access_token") ||
        !answer["access_token"].is_string() ||
        !header_safe(answer["access_token"].get<std::string>())) {
      return {{}, "token endpoint: the answer has no usable access_token"};
    }
    if (answer.contains("token_type") &&
        (!answer["token_type"].is_string() ||
         lower(answer["token_type"].get<std::string>()) != "bearer")) {
      return {{}, "token endpoint: token_type is not bearer"};
    }
    std::chrono::seconds lifetime = kDefaultTokenLifetime;
    if (answer.contains("expires_in") && answer["expires_in"].is_number()) {
      lifetime = std::chrono::seconds(
          std::max<std::int64_t>(0, static_cast<std::int64_t>(answer["expires_in"].get<double>())));
    }
    // Renewed a little before it expires: 30 s early, or halfway for a short-lived token.
    const auto early = std::min<Clock::duration>(kRefreshMargin, lifetime / 2);
    usable_until_ = asked + lifetime - early;
    token_ = answer["access_token"].get<std::string>();
    return {token_, {}};
  }

  static std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  ClientCredentials settings_;
  const Pkey key_;  // null: client secret
  std::mutex mutex_;
  std::string token_;
  Clock::time_point usable_until_{};
};

}  // namespace

std::shared_ptr<AccessTokenSource> static_token(std::string token) {
  token = trim(std::move(token));
  if (!header_safe(token)) throw std::invalid_argument("the token is empty or not one line");
  return std::make_shared<StaticToken>(std::move(token));
}

std::shared_ptr<AccessTokenSource> token_file(const std::filesystem::path& path) {
  auto source = std::make_shared<TokenFile>(path);
  if (AccessToken first = source->get(); !first.error.empty()) {
    throw std::invalid_argument(first.error);
  }
  return source;
}

std::shared_ptr<AccessTokenSource> oauth2_client_credentials(ClientCredentials settings) {
  if (settings.token_url.empty()) throw std::invalid_argument("token_url: missing");
  if (std::string why = check_outbound_url(settings.token_url, settings.http.tls.allow_insecure);
      !why.empty()) {
    throw std::invalid_argument("token_url: " + why);
  }
  if (settings.client_id.empty()) throw std::invalid_argument("client_id: missing");
  const bool with_key = !settings.private_key_file.empty();
  if (with_key == !settings.client_secret.empty()) {
    throw std::invalid_argument(
        "give either a client secret or private_key_file (SMART Backend Services), not both");
  }
  Pkey key;
  if (with_key) {
    if (settings.algorithm != "RS384" && settings.algorithm != "ES384") {
      throw std::invalid_argument("algorithm: must be RS384 or ES384");
    }
    if (settings.key_id.empty()) {
      throw std::invalid_argument("key_id: missing (the JWT's kid, as registered with the server)");
    }
    key = load_private_key(settings.private_key_file, settings.algorithm);
  }
  return std::make_shared<ClientCredentialsGrant>(std::move(settings), std::move(key));
}

}  // namespace chartflow::util
