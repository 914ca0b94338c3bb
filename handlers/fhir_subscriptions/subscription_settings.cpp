#include "handlers/fhir_subscriptions/subscription_settings.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "handlers/common/config_file.hpp"
#include "handlers/common/outbound_settings.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

[[noreturn]] void fail(const std::string& key, std::string_view message) {
  throw std::invalid_argument(fmt::format("{}: {}", key, message));
}

std::string text(const Json& obj, const std::string& where, const char* key) {
  const Json* v = fhir::member(obj, key);
  if (v == nullptr) return {};
  if (!v->is_string()) fail(where + "." + key, "must be a string");
  return expand_env(v->get<std::string>());
}

bool flag(const Json& obj, const std::string& where, const char* key, bool fallback) {
  const Json* v = fhir::member(obj, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(where + "." + key, "must be true or false");
  return v->get<bool>();
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') return false;
  return true;
}

bool valid_header(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-') return false;
  return true;
}

// The sender's secret: from secret_file (re-read per request, so a rotation needs no restart)
// or secret_env; never inline.
std::shared_ptr<util::AccessTokenSource> secret(const Json& sub, const std::string& where) {
  if (sub.contains("secret"))
    fail(where + ".secret",
         "secrets do not belong in settings files; use secret_file or secret_env");
  const std::string file = text(sub, where, "secret_file");
  const std::string env = text(sub, where, "secret_env");
  if (!file.empty() && !env.empty())
    fail(where + ".secret_file", "give secret_file or secret_env, not both");
  try {
    if (!file.empty()) return util::token_file(file);
  } catch (const std::invalid_argument& e) {
    std::string_view why = e.what();
    if (why.rfind("token_file: ", 0) == 0) why.remove_prefix(12);
    fail(where + ".secret_file", why);
  }
  if (env.empty()) fail(where + ".secret_file", "a subscription needs secret_file or secret_env");
  const char* value = std::getenv(env.c_str());
  if (value == nullptr || *value == '\0')
    fail(where + ".secret_env", fmt::format("the environment variable {} is not set", env));
  try {
    return util::static_token(value);
  } catch (const std::invalid_argument& e) {
    fail(where + ".secret_env", e.what());
  }
}

}  // namespace

const Subscription* SubscriptionSettings::find(const std::string& name) const {
  for (const auto& s : subscriptions)
    if (s.name == name) return &s;
  return nullptr;
}

SubscriptionSettings SubscriptionSettings::from_json(const Json& settings) {
  SubscriptionSettings out;
  if (settings.is_null()) return out;
  if (!settings.is_object())
    throw std::invalid_argument("fhir subscription settings must be a mapping");
  for (const auto& [key, _] : settings.items())
    if (key != "timeout" && key != "subscriptions") fail(key, "unknown setting");
  const auto timeout =
      duration_setting(fhir::member(settings, "timeout"), "timeout", kDefaultFhirTimeout);
  const Json* list = fhir::member(settings, "subscriptions");
  if (list == nullptr) return out;
  if (!list->is_array()) fail("subscriptions", "must be a list of subscriptions");
  std::set<std::string> names;
  int index = 0;
  for (const auto& item : *list) {
    if (!item.is_object()) fail(fmt::format("subscriptions[{}]", index), "must be a mapping");
    Subscription sub;
    sub.name = fhir::string_member(item, "name");
    if (!valid_name(sub.name))
      fail(fmt::format("subscriptions[{}].name", index),
           "must be 1-64 letters, digits, - or _ (it is the URL's last segment)");
    const std::string where = "subscriptions." + sub.name;
    if (!names.insert(sub.name).second) fail(where + ".name", "is given twice");
    static const std::set<std::string> kKeys = {
        "name",          "secret_file",      "secret_env",         "secret",         "header",
        "fhir_base_url", "events_operation", "patient_everything", "allow_insecure", "tls",
        "auth"};
    for (const auto& [key, _] : item.items())
      if (kKeys.count(key) == 0) fail(fmt::format("{}.{}", where, key), "unknown setting");
    sub.secret = secret(item, where);
    if (std::string header = text(item, where, "header"); !header.empty()) {
      if (!valid_header(header)) fail(where + ".header", "must be an HTTP header name");
      for (auto& c : header) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      sub.header = header;
    }
    sub.fhir_base_url = text(item, where, "fhir_base_url");
    while (!sub.fhir_base_url.empty() && sub.fhir_base_url.back() == '/')
      sub.fhir_base_url.pop_back();
    sub.events_operation = flag(item, where, "events_operation", false);
    sub.patient_everything = flag(item, where, "patient_everything", true);
    if (sub.fhir_base_url.empty()) {
      if (sub.events_operation)
        fail(where + ".events_operation", "asking for missed events needs fhir_base_url");
      for (const char* key : {"tls", "auth", "allow_insecure"})
        if (item.contains(key))
          fail(where + "." + key, "applies to fhir_base_url, which is not set");
    } else {
      const bool insecure = flag(item, where, "allow_insecure", false);
      if (std::string why = util::check_outbound_url(sub.fhir_base_url, insecure); !why.empty())
        fail(where + ".fhir_base_url", why);
      sub.http = outbound_options(&item, sub.fhir_base_url, where, timeout, out.warnings);
    }
    out.subscriptions.push_back(std::move(sub));
    ++index;
  }
  return out;
}

}  // namespace chartflow::handlers::fhir_subscriptions
