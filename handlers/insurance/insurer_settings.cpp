#include "handlers/insurance/insurer_settings.hpp"

#include <fmt/format.h>

#include <cctype>
#include <stdexcept>

#include "handlers/common/config_file.hpp"
#include "handlers/common/outbound_settings.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::insurance {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::optional<InsurerEndpoint> InsurerSettings::endpoint_for(const std::string& payor) const {
  if (auto it = payors.find(payor); it != payors.end()) return it->second;
  const std::string wanted = lower(payor);
  for (const auto& [name, endpoint] : payors) {
    if (lower(name) == wanted) return endpoint;
  }
  if (auto it = payors.find("default"); it != payors.end()) return it->second;
  return std::nullopt;
}

InsurerSettings InsurerSettings::from_json(const Json& settings) {
  InsurerSettings out;
  if (settings.is_null()) return out;
  if (!settings.is_object()) throw std::invalid_argument("insurer settings must be a mapping");
  out.timeout =
      duration_setting(fhir::member(settings, "timeout"), "timeout", kDefaultInsurerTimeout);
  const Json* payors = fhir::member(settings, "payors");
  if (payors == nullptr) return out;
  if (!payors->is_object())
    throw std::invalid_argument("insurer settings: 'payors' must be a mapping");
  for (const auto& [name, value] : payors->items()) {
    const std::string where = "payors." + name;
    InsurerEndpoint endpoint;
    const Json* options = nullptr;
    if (value.is_string()) {
      endpoint.url = expand_env(value.get<std::string>());
    } else if (value.is_object()) {
      for (const auto& [key, v] : value.items()) {
        if (key != "url" && key != "skip" && key != "allow_insecure" && key != "tls" &&
            key != "auth") {
          throw std::invalid_argument(fmt::format("{}.{}: unknown setting", where, key));
        }
      }
      endpoint.skip = fhir::bool_member(value, "skip", false);
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
