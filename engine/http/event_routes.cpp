#include "http/event_routes.hpp"

#include <regex>

#include "auth/audit.hpp"
#include "http/alertmanager.hpp"
#include "http/audit_context.hpp"

namespace chartflow::http {
namespace {

const std::regex kEventType("^[A-Za-z0-9._-]{1,200}$");
constexpr std::size_t kMaxIdempotencyKey = 200;

void check_type(const std::string& type, const std::string& where) {
  if (!std::regex_match(type, kEventType))
    throw HttpError{400, where + "event type must be 1-200 characters of letters, digits, . _ -"};
}

void check_key(const std::optional<std::string>& key, const std::string& where) {
  if (key && (key->empty() || key->size() > kMaxIdempotencyKey))
    throw HttpError{400, where + "idempotency key must be 1-200 characters"};
}

// Types chartflow emits itself never come from a request (see core/event_policy.hpp); checked
// here for a clear 400 before anything is stored, and again by Engine::ingest_external.
void refuse_reserved(const runtime::Engine& engine, const std::string& type,
                     const std::string& where) {
  if (auto why = engine.reserved_event_types().refusal(type)) throw HttpError{400, where + *why};
}

Json result_json(const store::IngestResult& r) {
  Json out{{"event_id", r.event_id}, {"runs", r.run_ids}, {"duplicate", r.duplicate}};
  // Workflows that will start one run later for this event and others of its key.
  if (!r.debounced.empty()) out["debounced"] = r.debounced;
  return out;
}

// A signed type authenticates by its signature (whose hex is then the dedup fallback, so a
// replay inside the skew window starts nothing); any other type needs the operator role.
std::optional<std::string> authenticate_type(const Router& router, Request& req,
                                             const std::string& type,
                                             const WebhookSecrets* secrets) {
  const WebhookSecret* secret = secrets ? secrets->find(type) : nullptr;
  if (secret == nullptr) {
    router.require(req, Access::of({Role::kOperator}), "events");
    return std::nullopt;
  }
  auto sig = verify_webhook(req, type, *secret, std::chrono::system_clock::now());
  req.principal = Principal{"webhook:" + type, "webhook " + type, Role::kUploader, {}, false};
  return sig;
}

// A batch with invalid events: the message and one {index, error} per bad event.
struct BatchError {
  std::string message;
  Json errors;
};

// Parses a batch body: {"events": [{"type", "body", "idempotency_key"}...]} or the bare list.
// Every problem is named by index; one bad event rejects the batch.
std::vector<store::EventInput> parse_batch(const Json& doc) {
  const Json* list = &doc;
  if (doc.is_object()) {
    if (!doc.contains("events")) throw HttpError{400, "body must have an \"events\" list"};
    list = &doc.at("events");
  }
  if (!list->is_array() || list->empty())
    throw HttpError{400, "events must be a non-empty list of {type, body, idempotency_key}"};
  if (list->size() > kMaxBatchEvents)
    throw HttpError{413, "at most " + std::to_string(kMaxBatchEvents) + " events per batch, got " +
                             std::to_string(list->size())};
  std::vector<store::EventInput> out;
  Json errors = Json::array();
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& e = (*list)[i];
    try {
      if (!e.is_object()) throw HttpError{400, "must be an object {type, body}"};
      for (const auto& [k, v] : e.items())
        if (k != "type" && k != "body" && k != "idempotency_key")
          throw HttpError{400, "unknown key '" + k + "'"};
      if (!e.contains("type") || !e.at("type").is_string())
        throw HttpError{400, "type is required (a string)"};
      store::EventInput ev;
      ev.type = e.at("type").get<std::string>();
      check_type(ev.type, "");
      ev.source = "api";
      if (e.contains("body")) {
        if (!e.at("body").is_object()) throw HttpError{400, "body must be an object"};
        ev.body = e.at("body");
      }
      if (e.contains("idempotency_key")) {
        if (!e.at("idempotency_key").is_string())
          throw HttpError{400, "idempotency_key must be a string"};
        ev.dedup_key = e.at("idempotency_key").get<std::string>();
        check_key(ev.dedup_key, "");
      }
      out.push_back(std::move(ev));
    } catch (const HttpError& err) {
      errors.push_back({{"index", i}, {"error", err.message}});
    }
  }
  if (!errors.empty())
    throw BatchError{std::to_string(errors.size()) + " of " + std::to_string(list->size()) +
                         " events are invalid; none was stored",
                     std::move(errors)};
  return out;
}

}  // namespace

void add_event_routes(Router& router, runtime::Engine& engine, metrics::Metrics& metrics,
                      std::shared_ptr<const WebhookSecrets> secrets) {
  auto count = [&engine, &metrics](const store::EventInput& ev) {
    // Only types some workflow listens to become label values: clients cannot grow the series.
    metrics.event_received(engine.matching(ev.type, ev.body).empty() ? "unmatched" : ev.type);
  };

  router.add("POST", "/v1/events/{type}", "events", Access::self(),
             [&router, &engine, secrets, count](Request& req) {
               const std::string& type = req.param("type");
               check_type(type, "");
               auto signature = authenticate_type(router, req, type, secrets.get());
               refuse_reserved(engine, type, "");
               store::EventInput ev;
               ev.type = type;
               ev.body = parse_json_body(req);
               ev.dedup_key = req.header("idempotency-key");
               if (ev.dedup_key && ev.dedup_key->size() > kMaxIdempotencyKey)
                 throw HttpError{400, "Idempotency-Key is longer than 200 characters"};
               if (!ev.dedup_key && signature) ev.dedup_key = "sig:" + *signature;
               ev.source = signature ? "webhook" : "api";
               count(ev);
               auto result =
                   engine.ingest_external(std::move(ev), [&](Sql& sql, store::EventInput&) {
                     auth::record(sql, audit_entry(req, "event.create", "event_type", type));
                     return true;
                   });
               return Response::json(result.duplicate ? 200 : 202, result_json(result));
             });

  router.add("POST", "/v1/events", "events_batch", Access::self(),
             [&router, &engine, secrets, count](Request& req) {
               // Unsigned requests are checked before their body is read: a caller without a
               // credential learns nothing about what a valid batch looks like.
               if (!req.header(kSignatureHeader))
                 router.require(req, Access::of({Role::kOperator}), "events_batch");
               const Json doc = parse_json_body(req);
               std::vector<store::EventInput> events;
               try {
                 events = parse_batch(doc);
               } catch (const BatchError& e) {
                 return Response::json(400, Json{{"error", e.message}, {"errors", e.errors}});
               }
               // One credential for the whole batch: either all types are unsigned (operator role)
               // or all are the one signed type whose signature the request carries.
               const std::string& first = events.front().type;
               const bool is_signed = secrets && secrets->find(first) != nullptr;
               Json mixed = Json::array();
               for (std::size_t i = 0; i < events.size(); ++i) {
                 const bool s = secrets && secrets->find(events[i].type) != nullptr;
                 if (s != is_signed || (is_signed && events[i].type != first))
                   mixed.push_back({{"index", i},
                                    {"error",
                                     "a batch holds either unsigned event types or events of "
                                     "one signed type (" +
                                         first + " here), not " + events[i].type}});
               }
               if (!mixed.empty())
                 return Response::json(
                     400, Json{{"error",
                                "the batch mixes signed and unsigned event types; none was "
                                "stored"},
                               {"errors", mixed}});
               auto signature = authenticate_type(router, req, first, secrets.get());
               for (std::size_t i = 0; i < events.size(); ++i)
                 refuse_reserved(engine, events[i].type, "events[" + std::to_string(i) + "]: ");
               for (std::size_t i = 0; i < events.size(); ++i) {
                 auto& ev = events[i];
                 if (!ev.dedup_key && signature)
                   ev.dedup_key = "sig:" + *signature + "#" + std::to_string(i);
                 if (signature) ev.source = "webhook";
                 count(ev);
               }
               // One transaction: every event is stored, or (on any failure) none.
               auto results = engine.ingest_batch_external(events);
               Json out = Json::array();
               bool any_new = false;
               for (const auto& r : results) {
                 out.push_back(result_json(r));
                 any_new = any_new || !r.duplicate;
               }
               return Response::json(any_new ? 202 : 200, Json{{"events", out}});
             });

  router.add("POST", "/v1/alertmanager", "alertmanager", Access::of({Role::kOperator}),
             [&engine, count](Request& req) {
               auto events = alertmanager_events(parse_json_body(req));
               for (const auto& ev : events) count(ev);
               auto results = engine.ingest_batch(events);
               Json out = Json::array();
               for (const auto& r : results) out.push_back(result_json(r));
               return Response::json(202, Json{{"events", out}});
             });
}

}  // namespace chartflow::http
