#include "http/alertmanager.hpp"

#include "engine/util/hash.hpp"

namespace chartflow::http {

using util::sha256_raw;
using util::to_hex;
namespace {

std::string string_field(const Json& o, const char* key, const std::string& where) {
  if (!o.contains(key) || !o.at(key).is_string())
    throw HttpError{400, where + key + " is required (a string)"};
  return o.at(key).get<std::string>();
}

Json string_map(const Json& o, const char* key, const std::string& where) {
  if (!o.contains(key) || o.at(key).is_null()) return Json::object();
  const Json& m = o.at(key);
  if (!m.is_object()) throw HttpError{400, where + key + " must be an object of strings"};
  for (const auto& [k, v] : m.items())
    if (!v.is_string()) throw HttpError{400, where + key + "." + k + " must be a string"};
  return m;
}

}  // namespace

std::vector<store::EventInput> alertmanager_events(const Json& payload) {
  if (!payload.is_object() || !payload.contains("alerts") || !payload.at("alerts").is_array())
    throw HttpError{400, "not an Alertmanager webhook payload: no \"alerts\" list"};
  if (payload.contains("version") && payload.at("version") != "4")
    throw HttpError{
        400, "Alertmanager webhook version must be \"4\", got " + payload.at("version").dump()};
  std::vector<store::EventInput> out;
  const auto& alerts = payload.at("alerts");
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    const Json& a = alerts[i];
    const std::string where = "alerts[" + std::to_string(i) + "]: ";
    if (!a.is_object()) throw HttpError{400, where + "must be an object"};
    const std::string status = string_field(a, "status", where);
    if (status != "firing" && status != "resolved")
      throw HttpError{400, where + "status must be firing or resolved, not " + status};
    const Json labels = string_map(a, "labels", where);
    const std::string starts_at = string_field(a, "startsAt", where);
    // Alertmanager sends a fingerprint; without one the sorted labels identify the alert.
    std::string fingerprint = a.value("fingerprint", "");
    if (fingerprint.empty())
      fingerprint = util::to_hex(util::sha256_raw(labels.dump())).substr(0, 16);
    store::EventInput ev;
    ev.type = status == "firing" ? kAlertFiringEvent : kAlertResolvedEvent;
    ev.source = "alertmanager";
    ev.dedup_key = fingerprint + "/" + starts_at + "/" + status;
    ev.body = {{"status", status},
               {"alertname", labels.value("alertname", "")},
               {"labels", labels},
               {"annotations", string_map(a, "annotations", where)},
               {"startsAt", starts_at},
               {"endsAt", a.value("endsAt", "")},
               {"generatorURL", a.value("generatorURL", "")},
               {"fingerprint", fingerprint},
               {"receiver", payload.value("receiver", "")},
               {"groupKey", payload.value("groupKey", "")},
               {"externalURL", payload.value("externalURL", "")}};
    out.push_back(std::move(ev));
  }
  return out;
}

}  // namespace chartflow::http
