#include "handlers/common/outbound_settings.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string_view>

#include "engine/util/access_token.hpp"
#include "handlers/common/config_file.hpp"

namespace chartflow::handlers {
namespace {

[[noreturn]] void fail(const std::string& key, std::string_view message) {
  throw std::invalid_argument(fmt::format("{}: {}", key, message));
}

void only_keys(const Json& obj, const std::string& where,
               std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (auto a : allowed) known = known || key == a;
    if (!known) fail(where + "." + key, "unknown setting");
  }
}

const Json* mapping(const Json& parent, const std::string& where, const char* key) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return nullptr;
  if (!it->is_object()) fail(where + "." + key, "must be a mapping");
  return &*it;
}

// A string setting, ${VAR}-expanded; "" when absent.
std::string text(const Json& obj, const std::string& where, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_string()) fail(where + "." + key, "must be a string");
  return expand_env(it->get<std::string>());
}

bool flag(const Json& obj, const std::string& where, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return false;
  if (!it->is_boolean()) fail(where + "." + key, "must be true or false");
  return it->get<bool>();
}

std::string readable_file(const Json& obj, const std::string& where, const char* key) {
  std::string path = text(obj, where, key);
  if (path.empty()) return path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(where + "." + key, "no file " + path);
  return path;
}

// A secret from `<name>_file` or `<name>_env` (exactly one); "" when neither is given.
std::string secret(const Json& auth, const std::string& where, const std::string& name,
                   std::shared_ptr<util::AccessTokenSource>* file_source = nullptr) {
  const std::string file_key = name + "_file";
  const std::string env_key = name + "_env";
  const std::string file = text(auth, where, file_key.c_str());
  const std::string env = text(auth, where, env_key.c_str());
  if (!file.empty() && !env.empty()) {
    fail(where + "." + file_key, fmt::format("give {} or {}, not both", file_key, env_key));
  }
  if (auth.contains(name)) {
    fail(where + "." + name,
         fmt::format("secrets do not belong in settings files; use {} or {}", file_key, env_key));
  }
  if (!file.empty()) {
    try {
      auto source = util::token_file(file);
      if (file_source != nullptr) *file_source = source;
      return source->get().value;
    } catch (const std::invalid_argument& e) {
      std::string_view why = e.what();
      if (why.rfind("token_file: ", 0) == 0) why.remove_prefix(12);
      fail(where + "." + file_key, why);
    }
  }
  if (!env.empty()) {
    const char* value = std::getenv(env.c_str());
    if (value == nullptr || *value == '\0') {
      fail(where + "." + env_key, fmt::format("the environment variable {} is not set", env));
    }
    return value;
  }
  return {};
}

std::shared_ptr<util::AccessTokenSource> auth_source(const Json& auth, const std::string& where,
                                                     const util::HttpPostOptions& http) {
  const std::string type = text(auth, where, "type");
  if (type.empty() || type == "none") {
    only_keys(auth, where, {"type"});
    return nullptr;
  }
  if (type == "bearer") {
    only_keys(auth, where, {"type", "token_file", "token_env", "token"});  // token: refused below
    std::shared_ptr<util::AccessTokenSource> from_file;
    const std::string token = secret(auth, where, "token", &from_file);
    if (token.empty()) fail(where + ".token_file", "bearer auth needs token_file or token_env");
    if (from_file) return from_file;  // re-read at each call: a rotated token is picked up
    try {
      return util::static_token(token);
    } catch (const std::invalid_argument& e) {
      fail(where + ".token_env", e.what());
    }
  }
  if (type == "oauth2_client_credentials") {
    only_keys(auth, where,
              {"type", "token_url", "client_id", "scope", "client_secret_file", "client_secret_env",
               "client_secret", "private_key_file", "algorithm", "key_id"});
    util::ClientCredentials c;
    c.token_url = text(auth, where, "token_url");
    c.client_id = text(auth, where, "client_id");
    c.scope = text(auth, where, "scope");
    c.client_secret = secret(auth, where, "client_secret");
    c.private_key_file = readable_file(auth, where, "private_key_file");
    c.algorithm = text(auth, where, "algorithm");
    c.key_id = text(auth, where, "key_id");
    c.http = http;
    if (c.private_key_file.empty() && c.client_secret.empty()) {
      fail(where + ".private_key_file",
           "oauth2_client_credentials needs private_key_file (SMART Backend Services) or "
           "client_secret_file / client_secret_env");
    }
    if (!c.private_key_file.empty() && c.algorithm.empty()) c.algorithm = "RS384";
    try {
      return util::oauth2_client_credentials(std::move(c));
    } catch (const std::invalid_argument& e) {
      // The util's messages start with the setting's name ("key_id: missing").
      throw std::invalid_argument(fmt::format("{}.{}", where, e.what()));
    }
  }
  fail(where + ".type", "must be none, bearer or oauth2_client_credentials");
}

}  // namespace

util::HttpPostOptions outbound_options(const Json* endpoint, const std::string& url,
                                       const std::string& where, std::chrono::milliseconds timeout,
                                       std::vector<std::string>& warnings) {
  static const Json kEmpty = Json::object();
  const Json& e = endpoint != nullptr && endpoint->is_object() ? *endpoint : kEmpty;
  util::HttpPostOptions out;
  out.timeout = timeout;
  out.tls.allow_insecure = flag(e, where, "allow_insecure");
  if (std::string why = util::check_outbound_url(url, out.tls.allow_insecure); !why.empty()) {
    fail(where + ".url", why);
  }
  const auto parsed = util::parse_http_url(url);
  if (parsed->scheme == "http" && !util::is_loopback_host(parsed->host)) {
    warnings.push_back(
        fmt::format("{}: allow_insecure: true sends patient data in cleartext over plain http:// "
                    "to {}",
                    where, parsed->host));
  }
  if (const Json* tls = mapping(e, where, "tls")) {
    const std::string w = where + ".tls";
    only_keys(*tls, w, {"ca_file", "client_cert", "client_key"});
    out.tls.ca_file = readable_file(*tls, w, "ca_file");
    out.tls.client_cert = readable_file(*tls, w, "client_cert");
    out.tls.client_key = readable_file(*tls, w, "client_key");
    if (!out.tls.client_key.empty() && out.tls.client_cert.empty()) {
      fail(w + ".client_cert", "client_key is given without client_cert");
    }
  }
  if (const Json* auth = mapping(e, where, "auth")) {
    out.auth = auth_source(*auth, where + ".auth", out);
  }
  return out;
}

}  // namespace chartflow::handlers
