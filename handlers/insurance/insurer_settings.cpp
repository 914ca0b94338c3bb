#include "handlers/insurance/insurer_settings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "engine/util/duration.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/common/outbound_settings.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::insurance {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const InsurerEndpoint* find_endpoint(const std::map<std::string, InsurerEndpoint>& payors,
                                     const std::string& payor) {
  if (auto it = payors.find(payor); it != payors.end()) return &it->second;
  const std::string wanted = lower(payor);
  for (const auto& [name, endpoint] : payors) {
    if (lower(name) == wanted) return &endpoint;
  }
  if (auto it = payors.find("default"); it != payors.end()) return &it->second;
  return nullptr;
}

std::chrono::milliseconds retry_duration(const Json& value, const std::string& where) {
  std::optional<std::chrono::milliseconds> d;
  if (value.is_string()) d = core::parse_duration(value.get<std::string>());
  if (!d || d->count() <= 0)
    throw std::invalid_argument(fmt::format(
        R"({}: must be a duration such as "30s" or "10m", not {})", where, value.dump()));
  return *d;
}

// `retry: {initial, max, multiplier, jitter}` over `base`: the keys it leaves out keep theirs.
util::Backoff parse_retry(const Json& value, const std::string& where, util::Backoff base) {
  if (!value.is_object())
    throw std::invalid_argument(
        fmt::format("{}: must be a mapping of initial, max, multiplier and jitter", where));
  for (const auto& [key, v] : value.items()) {
    std::string at = where;
    at += ".";
    at += key;
    if (key == "initial") {
      base.initial = retry_duration(v, at);
    } else if (key == "max") {
      base.max = retry_duration(v, at);
    } else if (key == "multiplier") {
      if (!v.is_number() || v.get<double>() < 1.0 || v.get<double>() > 100.0)
        throw std::invalid_argument(at + ": must be a number from 1 to 100");
      base.multiplier = v.get<double>();
    } else if (key == "jitter") {
      if (!v.is_number() || v.get<double>() < 0.0 || v.get<double>() > 1.0)
        throw std::invalid_argument(at + ": must be a number from 0 to 1");
      base.jitter = v.get<double>();
    } else {
      throw std::invalid_argument(at + ": unknown setting");
    }
  }
  if (base.initial > base.max)
    throw std::invalid_argument(fmt::format("{}: initial ({}) must not exceed max ({})", where,
                                            core::format_duration(base.initial),
                                            core::format_duration(base.max)));
  return base;
}

}  // namespace

std::optional<InsurerEndpoint> InsurerSettings::endpoint_for(const std::string& payor) const {
  if (const InsurerEndpoint* e = find_endpoint(payors, payor)) return *e;
  return std::nullopt;
}

const util::Backoff& InsurerSettings::retry_for(const std::string& payor) const {
  const InsurerEndpoint* e = find_endpoint(payors, payor);
  return e != nullptr ? e->retry : retry;
}

std::chrono::milliseconds InsurerSettings::retry_delay(const std::vector<std::string>& failed,
                                                       int attempt, double unit_random) const {
  if (failed.empty()) return retry.after_failure(attempt, unit_random);
  std::chrono::milliseconds longest{0};
  for (const auto& payor : failed)
    longest = std::max(longest, retry_for(payor).after_failure(attempt, unit_random));
  return longest;
}

InsurerSettings InsurerSettings::from_json(const Json& settings) {
  InsurerSettings out;
  if (settings.is_null()) return out;
  if (!settings.is_object()) throw std::invalid_argument("insurer settings must be a mapping");
  out.timeout =
      duration_setting(fhir::member(settings, "timeout"), "timeout", kDefaultInsurerTimeout);
  if (const Json* retry = fhir::member(settings, "retry"))
    out.retry = parse_retry(*retry, "retry", out.retry);
  const Json* payors = fhir::member(settings, "payors");
  if (payors == nullptr) return out;
  if (!payors->is_object())
    throw std::invalid_argument("insurer settings: 'payors' must be a mapping");
  for (const auto& [name, value] : payors->items()) {
    const std::string where = "payors." + name;
    InsurerEndpoint endpoint;
    endpoint.retry = out.retry;
    const Json* options = nullptr;
    if (value.is_string()) {
      endpoint.url = expand_env(value.get<std::string>());
    } else if (value.is_object()) {
      for (const auto& [key, v] : value.items()) {
        if (key != "url" && key != "skip" && key != "allow_insecure" && key != "tls" &&
            key != "auth" && key != "retry") {
          throw std::invalid_argument(fmt::format("{}.{}: unknown setting", where, key));
        }
      }
      endpoint.skip = fhir::bool_member(value, "skip", false);
      if (const Json* retry = fhir::member(value, "retry"))
        endpoint.retry = parse_retry(*retry, where + ".retry", out.retry);
      if (const Json* url = fhir::member(value, "url")) {
        if (!url->is_string()) {
          throw std::invalid_argument(fmt::format("{}.url: must be a string", where));
        }
        endpoint.url = expand_env(url->get<std::string>());
      }
      options = &value;
    } else if (!value.is_null()) {
      throw std::invalid_argument(fmt::format("{}: must be a mapping with 'url'", where));
    }
    if (!endpoint.url.empty() && !endpoint.skip) {
      endpoint.http = outbound_options(options, endpoint.url, where, out.timeout, out.warnings);
    }
    out.payors[name] = std::move(endpoint);
  }
  return out;
}

}  // namespace chartflow::handlers::insurance
