#include "handlers/fhir_subscriptions/fhir_fetch.hpp"

#include <fmt/format.h>

#include <cctype>

#include "handlers/fhir/fhir_json.hpp"
#include "handlers/fhir_subscriptions/notification.hpp"
#include "handlers/fhir_subscriptions/subscription_store.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

bool fhir_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '.') return false;
  return true;
}

bool fhir_type(const std::string& type) {
  if (type.empty() || type.size() > 64 || std::isupper(static_cast<unsigned char>(type[0])) == 0)
    return false;
  for (char c : type)
    if (std::isalpha(static_cast<unsigned char>(c)) == 0) return false;
  return true;
}

}  // namespace

std::string fetch_url(const Subscription& sub, const std::string& focus, bool everything,
                      std::string* why) {
  if (sub.fhir_base_url.empty()) {
    *why = "subscription " + sub.name + " has no fhir_base_url to fetch from";
    return {};
  }
  const bool absolute = focus.find("://") != std::string::npos;
  if (absolute && focus.rfind(sub.fhir_base_url + "/", 0) != 0) {
    *why = "the focus is not on the subscription's fhir_base_url";
    return {};
  }
  const std::string key = reference_key(focus);
  const auto slash = key.find('/');
  if (key.empty() || !fhir_type(key.substr(0, slash)) || !fhir_id(key.substr(slash + 1))) {
    *why = "the focus is not a Type/id reference";
    return {};
  }
  std::string url = sub.fhir_base_url + "/" + key;
  if (everything && key.rfind("Patient/", 0) == 0) url += "/$everything";
  return url;
}

StepOutcome FhirFetchHandler::run(StepContext& ctx) {
  if (ctx.event_type() != "fhir.notification")
    return Fail{"fhir_fetch runs on fhir.notification events, not " + ctx.event_type(), true};
  const Json& ev = ctx.event();
  const std::string name = fhir::string_member(ev, "subscription");
  const Subscription* sub = settings_->find(name);
  if (sub == nullptr) return Fail{"FHIR subscription " + name + " is not configured", true};
  const std::string content = fhir::string_member(ev, "content");
  if (content != "id-only")
    return Completed{
        Json{{"fetched", false}, {"reason", "the notification's content is " + content}}};
  const Json* number = fhir::member(ev, "event_number");
  if (number == nullptr || !number->is_number_integer())
    return Fail{"the event has no event_number", true};

  bool everything = sub->patient_everything;
  if (const Json* e = fhir::member(ctx.input(), "everything"); e != nullptr && e->is_boolean())
    everything = e->get<bool>();
  std::string why;
  const std::string focus = fhir::string_member(ev, "focus");
  const std::string url = fetch_url(*sub, focus, everything, &why);
  if (url.empty()) return Fail{why, true};

  util::HttpPostOptions http = sub->http;
  http.max_response_bytes = kMaxFetchedBytes;
  const auto answer = util::http_get(url, {{"Accept", "application/fhir+json"}}, http);
  if (!answer.error.empty()) return Retry{"FHIR server: " + answer.error, std::nullopt};
  if (answer.status == 404 || answer.status == 410)
    return Completed{Json{{"fetched", false}, {"status", answer.status}}};
  if (answer.status == 429 || answer.status >= 500)
    return Retry{fmt::format("FHIR server answered {}", answer.status), std::nullopt};
  if (!answer.ok()) return Fail{fmt::format("FHIR server answered {}", answer.status), false};
  if (answer.truncated)
    return Fail{fmt::format("the FHIR server's answer is larger than {} bytes", kMaxFetchedBytes),
                true};
  Json resource = Json::parse(answer.body, nullptr, false);
  if (resource.is_discarded() || !resource.is_object() || fhir::resource_type(resource).empty())
    return Fail{"the FHIR server's answer is not a FHIR resource", false};

  const std::string reference = reference_key(focus);
  // Events stored before epochs existed carry none: they are epoch 1.
  int epoch = 1;
  if (const Json* e = fhir::member(ev, "epoch"); e != nullptr && e->is_number_integer())
    epoch = e->get<int>();
  store_fetched(ctx.sql(), name, epoch, number->get<std::int64_t>(), reference, url, resource);
  Json out = {{"fetched", true},
              {"reference", reference},
              {"resource_type", fhir::resource_type(resource)}};
  if (fhir::resource_type(resource) == "Bundle")
    out["entries"] = fhir::array_member(resource, "entry").size();
  return Completed{out};
}

}  // namespace chartflow::handlers::fhir_subscriptions
