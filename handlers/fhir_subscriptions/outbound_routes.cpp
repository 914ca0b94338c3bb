#include "handlers/fhir_subscriptions/outbound_routes.hpp"

#include <fmt/format.h>

#include <cctype>

#include "engine/util/http_post.hpp"
#include "engine/util/sql_rows.hpp"
#include "handlers/fhir_subscriptions/outbound_bundle.hpp"
#include "handlers/fhir_subscriptions/outbound_delivery.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"
#include "handlers/fhir_subscriptions/subscriber_headers.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using http::Access;
using http::HttpError;
using http::Request;
using http::Response;
using http::Role;

constexpr const char* kBackport =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
constexpr std::size_t kMaxHeaders = 10;

constexpr const char* kInsert =
    "INSERT INTO fhir_out_subscription (topic, patient, endpoint, content, heartbeat_seconds, "
    "resource, created_by) VALUES ($1, $2, $3, $4, $5::integer, $6::jsonb, $7) RETURNING id";
constexpr const char* kSetSealed =
    "UPDATE fhir_out_subscription SET sealed_headers = $2 WHERE id = $1";
constexpr const char* kSelect =
    "SELECT s.id, s.topic, s.status AS sub_status, s.events, s.content, s.resource::text AS "
    "resource, coalesce(d.status, 'requested') AS delivery_status, d.last_error, "
    "coalesce(d.delivered_through, 0) AS delivered_through "
    "FROM fhir_out_subscription s LEFT JOIN fhir_out_delivery d ON d.subscription_id = s.id ";
constexpr const char* kOff =
    "UPDATE fhir_out_subscription SET status = 'off', updated_at = now() WHERE id = $1 "
    "AND status <> 'off' RETURNING id";

[[noreturn]] void bad(const std::string& message) { throw HttpError{400, message}; }

const Json* member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// The value of the backport extension `name` among `holder`'s extensions.
const Json* extension(const Json* holder, const std::string& name) {
  const Json* list = holder ? member(*holder, "extension") : nullptr;
  if (list == nullptr || !list->is_array()) return nullptr;
  for (const auto& e : *list)
    if (e.is_object() && e.value("url", "") == kBackport + name) return &e;
  return nullptr;
}

// "Task?patient=Patient/p-1" or "patient=Patient/p-1" -> "Patient/p-1".
std::string patient_filter(const std::string& criteria) {
  std::string query =
      criteria.substr(criteria.find('?') == std::string::npos ? 0 : criteria.find('?') + 1);
  if (query.rfind("patient=", 0) != 0 || query.find('&') != std::string::npos)
    bad("the filter criteria may only be patient=Patient/{id}");
  std::string value = query.substr(8);
  if (value.rfind("Patient/", 0) != 0) value = "Patient/" + value;
  const std::string id = value.substr(8);
  if (id.empty() || id.size() > 64) bad("the patient filter must name Patient/{id}");
  for (char c : id)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '.')
      bad("the patient filter must name Patient/{id}");
  return value;
}

bool header_line_ok(const std::string& line) {
  const auto colon = line.find(':');
  if (colon == std::string::npos || colon == 0 || line.size() > 4096) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    const char c = line[i];
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') return false;
  }
  for (char c : line)
    if (c == '\r' || c == '\n') return false;
  return true;
}

// The subscription as a client reads it: status from the deliverer, no channel.header.
Json shown(const Json& row) {
  Json r = Json::parse(util::column_text(row, "resource").value_or("{}"));
  r["id"] = util::column_text(row, "id").value_or("");
  const std::string sub_status = util::column_text(row, "sub_status").value_or("requested");
  r["status"] = sub_status == "off"
                    ? std::string("off")
                    : util::column_text(row, "delivery_status").value_or("requested");
  if (auto error = util::column_text(row, "last_error"); error && r["status"] == "error")
    r["error"] = Json::array({{{"text", *error}}});
  return r;
}

OutboundStatus status_of(const Json& row) {
  OutboundStatus s;
  s.subscription_id = util::column_text(row, "id").value_or("");
  s.topic_url = topic_url(util::column_text(row, "topic").value_or(""));
  s.status = shown(row).at("status").get<std::string>();
  s.type = "query-status";
  s.content = util::column_text(row, "content").value_or("id-only");
  s.events_since_start = util::column_int(row, "events").value_or(0);
  if (s.status == "error") s.error = util::column_text(row, "last_error").value_or("");
  return s;
}

Json find(EngineServices& engine, const std::string& id) {
  std::optional<Json> row;
  engine.read([&](Sql& sql) {
    row = util::query_one(sql, std::string(kSelect) + "WHERE s.id = $1", {id});
  });
  if (!row) throw HttpError{404, "no Subscription with that id"};
  return *row;
}

Response fhir(int status, const Json& body) {
  Response r = Response::json(status, body);
  r.content_type = "application/fhir+json";
  return r;
}

Response create(EngineServices& engine, Request& req, const util::SecretBox& secrets) {
  const Json stored = validate_subscription(http::parse_json_body(req));
  std::string id;
  EventInput ev;
  ev.type = kSubscriptionRequestedEvent;
  ev.source = "fhir";
  auto result = engine.ingest(std::move(ev), [&](Sql& sql, EventInput& e) {
    auto row = util::query_one(
        sql, kInsert,
        {stored.at("topic").get<std::string>(),
         stored.at("patient").is_null() ? std::nullopt
                                        : std::optional(stored.at("patient").get<std::string>()),
         stored.at("endpoint").get<std::string>(), stored.at("content").get<std::string>(),
         stored.at("heartbeat_seconds").is_null()
             ? std::nullopt
             : std::optional(std::to_string(stored.at("heartbeat_seconds").get<int>())),
         stored.at("resource").dump(), req.principal ? req.principal->id : std::string()});
    id = util::column_text(*row, "id").value_or("");
    // Sealed once the row has its id, which the seal is bound to.
    if (auto sealed = seal_header_lines(secrets, stored.at("headers"), id))
      sql.query(kSetSealed, {id, *sealed});
    e.dedup_key = "fhir-out-subscription:" + id;
    e.body = {{"subscription_id", id}};
    auto entry = http::audit_entry(req, "fhir.subscription.create", "fhir_out_subscription", id);
    entry.detail = {{"topic", stored.at("topic")},
                    {"content", stored.at("content")},
                    {"patient_filter", !stored.at("patient").is_null()}};
    engine.audit(sql, entry);
    return true;
  });
  engine.count_event(kSubscriptionRequestedEvent);
  Json body = shown(find(engine, id));
  Response r = fhir(201, body);
  r.headers.emplace_back("Location", "/fhir/Subscription/" + id);
  (void)result;
  return r;
}

}  // namespace

Json validate_subscription(const Json& body) {
  if (!body.is_object() || body.value("resourceType", "") != "Subscription")
    bad("the body must be a Subscription resource");
  const Json* criteria = member(body, "criteria");
  if (criteria == nullptr || !criteria->is_string())
    bad("Subscription.criteria must be a SubscriptionTopic canonical URL");
  const Topic* topic = find_topic(criteria->get<std::string>());
  if (topic == nullptr || criteria->get<std::string>() != topic_url(topic->code))
    bad("Subscription.criteria is not a chartflow SubscriptionTopic (GET /fhir/SubscriptionTopic)");
  Json patient = nullptr;
  if (const Json* filter = extension(member(body, "_criteria"), "backport-filter-criteria")) {
    const Json* v = member(*filter, "valueString");
    if (v == nullptr || !v->is_string()) bad("backport-filter-criteria needs a valueString");
    patient = patient_filter(v->get<std::string>());
  }
  const Json* channel = member(body, "channel");
  if (channel == nullptr || !channel->is_object()) bad("Subscription.channel is required");
  const Json* type = member(*channel, "type");
  if (type == nullptr || *type != "rest-hook")
    bad("Subscription.channel.type must be rest-hook (the only channel chartflow sends)");
  const Json* endpoint = member(*channel, "endpoint");
  if (endpoint == nullptr || !endpoint->is_string() || endpoint->get<std::string>().empty())
    bad("Subscription.channel.endpoint is required");
  if (!util::parse_http_url(endpoint->get<std::string>()))
    bad("Subscription.channel.endpoint is not an http(s) URL");
  if (std::string why = util::check_outbound_url(endpoint->get<std::string>(), false); !why.empty())
    bad("Subscription.channel.endpoint: " + why);
  Json headers = Json::array();
  if (const Json* h = member(*channel, "header")) {
    if (!h->is_array() || h->size() > kMaxHeaders)
      bad(fmt::format("Subscription.channel.header must be a list of at most {} lines",
                      kMaxHeaders));
    for (const auto& line : *h) {
      if (!line.is_string() || !header_line_ok(line.get<std::string>()))
        bad("Subscription.channel.header lines must read 'Name: value'");
      headers.push_back(line);
    }
  }
  if (const Json* payload = member(*channel, "payload");
      payload != nullptr && *payload != "application/fhir+json" && *payload != "application/json")
    bad("Subscription.channel.payload must be application/fhir+json");
  std::string content = "id-only";
  if (const Json* c = extension(member(*channel, "_payload"), "backport-payload-content")) {
    const Json* v = member(*c, "valueCode");
    if (v == nullptr || !v->is_string() ||
        (*v != "empty" && *v != "id-only" && *v != "full-resource"))
      bad("backport-payload-content must be empty, id-only or full-resource");
    content = v->get<std::string>();
  }
  Json heartbeat = nullptr;
  if (const Json* hb = extension(channel, "backport-heartbeat-period")) {
    const Json* v = member(*hb, "valueUnsignedInt");
    if (v == nullptr || !v->is_number_integer() || v->get<long long>() < 1 ||
        v->get<long long>() > 86400)
      bad("backport-heartbeat-period must be 1-86400 seconds");
    heartbeat = v->get<int>();
  }
  Json resource = body;
  resource.erase("id");
  resource.erase("meta");
  resource["channel"].erase("header");
  resource["status"] = "requested";
  return {{"topic", topic->code}, {"patient", patient}, {"endpoint", *endpoint},
          {"headers", headers},   {"content", content}, {"heartbeat_seconds", heartbeat},
          {"resource", resource}};
}

void add_outbound_routes(ModuleRegistry& module, const SecretsPtr& secrets) {
  const Access anyone =
      Access::of({Role::kUploader, Role::kReviewer, Role::kBilling, Role::kOperator});
  module.add_route(
      "GET", "/fhir/SubscriptionTopic", "fhir_topics", anyone, [](EngineServices&, Request&) {
        Json entries = Json::array();
        for (const auto& t : topics())
          entries.push_back({{"fullUrl", topic_url(t.code)}, {"resource", topic_resource(t)}});
        return fhir(200, {{"resourceType", "Bundle"},
                          {"type", "searchset"},
                          {"total", entries.size()},
                          {"entry", entries}});
      });
  module.add_route("GET", "/fhir/SubscriptionTopic/{id}", "fhir_topic", anyone,
                   [](EngineServices&, Request& req) {
                     const Topic* t = find_topic(req.param("id"));
                     if (t == nullptr) throw HttpError{404, "no SubscriptionTopic with that id"};
                     return fhir(200, topic_resource(*t));
                   });
  module.add_route(
      "POST", "/fhir/Subscription", "fhir_subscription_create", Access::of({}),
      [secrets](EngineServices& engine, Request& req) { return create(engine, req, *secrets); });
  module.add_route("GET", "/fhir/Subscription", "fhir_subscription_list",
                   Access::of({Role::kOperator}), [](EngineServices& engine, Request&) {
                     Json rows;
                     engine.read([&](Sql& sql) {
                       rows = util::query_rows(
                           sql, std::string(kSelect) + "ORDER BY s.created_at, s.id");
                     });
                     Json entries = Json::array();
                     for (const auto& row : rows) entries.push_back({{"resource", shown(row)}});
                     return fhir(200, {{"resourceType", "Bundle"},
                                       {"type", "searchset"},
                                       {"total", entries.size()},
                                       {"entry", entries}});
                   });
  module.add_route("GET", "/fhir/Subscription/{id}", "fhir_subscription_read",
                   Access::of({Role::kOperator}), [](EngineServices& engine, Request& req) {
                     return fhir(200, shown(find(engine, req.param("id"))));
                   });
  module.add_route("GET", "/fhir/Subscription/{id}/$status", "fhir_subscription_out_status",
                   Access::of({Role::kOperator}), [](EngineServices& engine, Request& req) {
                     return fhir(200, status_bundle(status_of(find(engine, req.param("id")))));
                   });
  module.add_route("DELETE", "/fhir/Subscription/{id}", "fhir_subscription_delete", Access::of({}),
                   [](EngineServices& engine, Request& req) {
                     const std::string id = req.param("id");
                     bool found = false;
                     engine.transaction([&](Sql& sql) {
                       found = util::query_one(sql, kOff, {id}).has_value();
                       if (found)
                         engine.audit(sql, http::audit_entry(req, "fhir.subscription.delete",
                                                             "fhir_out_subscription", id));
                     });
                     if (!found) throw HttpError{404, "no active Subscription with that id"};
                     return fhir(200, shown(find(engine, id)));
                   });
}

}  // namespace chartflow::handlers::fhir_subscriptions
