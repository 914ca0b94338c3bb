#include "handlers/fhir_subscriptions/outbound_delivery.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "engine/audit.hpp"
#include "engine/util/http_post.hpp"
#include "engine/util/sql_rows.hpp"
#include "engine/util/time.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/common/journal.hpp"
#include "handlers/fhir_subscriptions/outbound_bundle.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using std::chrono::milliseconds;

constexpr const char* kSubscription =
    "SELECT id, topic, endpoint, headers::text AS headers, sealed_headers, content, "
    "heartbeat_seconds, status, "
    "events FROM fhir_out_subscription WHERE id = $1";

constexpr const char* kState =
    "SELECT status, handshake_at IS NOT NULL AS handshaken, delivered_through, failures, "
    "extract(epoch FROM next_attempt_at)::float8 AS next_epoch, "
    "extract(epoch FROM last_sent_at)::float8 AS last_epoch "
    "FROM fhir_out_delivery WHERE subscription_id = $1";

constexpr const char* kPendingEvents =
    "SELECT event_number, focus, coalesce(patient, '') AS patient, resource::text AS resource, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at "
    "FROM fhir_out_notification WHERE subscription_id = $1 AND event_number > $2 "
    "ORDER BY event_number LIMIT $3";

// Journal statements (fhir_out_delivery and fhir_out_disclosure are written by nothing else).
// Records this run as the subscription's deliverer (publishers wake it); a row back means it
// was not recorded yet.
constexpr const char* kEnsureState =
    "INSERT INTO fhir_out_delivery (subscription_id, run_id) VALUES ($1, $2) "
    "ON CONFLICT (subscription_id) DO UPDATE SET run_id = EXCLUDED.run_id "
    "WHERE fhir_out_delivery.run_id IS DISTINCT FROM EXCLUDED.run_id RETURNING run_id";
// Before each call: the delivery row becomes this attempt's ($2) for the call's lease ($3 ms),
// unless another attempt's lease is live (its call may still be in flight: a step timeout
// retried the step under it). Comes back with what was delivered meanwhile, read after the
// lease is taken, so a later attempt never sends what an earlier one's call delivered.
constexpr const char* kClaim =
    "WITH c AS (UPDATE fhir_out_delivery SET claimed_by = $2, "
    "claimed_until = now() + $3::bigint * interval '1 millisecond' WHERE subscription_id = $1 "
    "AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $2) "
    "RETURNING delivered_through, handshake_at IS NOT NULL AS handshaken) "
    "SELECT (SELECT count(*) FROM c) AS taken, (SELECT delivered_through FROM c) AS delivered, "
    "(SELECT handshaken FROM c) AS handshaken, "
    "extract(epoch FROM claimed_until)::float8 AS until_epoch "
    "FROM fhir_out_delivery WHERE subscription_id = $1";
constexpr const char* kRelease =
    "UPDATE fhir_out_delivery SET claimed_by = NULL, claimed_until = NULL "
    "WHERE subscription_id = $1 AND claimed_by = $2";
constexpr const char* kDisclose =
    "INSERT INTO fhir_out_disclosure (subscription_id, kind, event_number, focus, patient, "
    "content, run_id) VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), $6, $7) RETURNING id";
constexpr const char* kSucceeded =
    "WITH d AS (UPDATE fhir_out_disclosure SET answered_at = now(), status_code = $3 "
    "WHERE id = $2) "
    "UPDATE fhir_out_delivery SET status = 'active', failures = 0, last_error = NULL, "
    "next_attempt_at = NULL, last_sent_at = now(), handshake_at = coalesce(handshake_at, now()), "
    "delivered_through = GREATEST(delivered_through, $4), updated_at = now(), "
    "claimed_until = CASE WHEN claimed_by = $5 THEN NULL ELSE claimed_until END, "
    "claimed_by = CASE WHEN claimed_by = $5 THEN NULL ELSE claimed_by END "
    "WHERE subscription_id = $1";
constexpr const char* kFailed =
    "WITH d AS (UPDATE fhir_out_disclosure SET answered_at = now(), status_code = $3, error = $4 "
    "WHERE id = $2) "
    "UPDATE fhir_out_delivery SET failures = failures + 1, last_error = $4, "
    "next_attempt_at = now() + $5::bigint * interval '1 millisecond', "
    "status = CASE WHEN failures + 1 >= $6 THEN 'error' ELSE status END, updated_at = now(), "
    "claimed_until = CASE WHEN claimed_by = $7 THEN NULL ELSE claimed_until END, "
    "claimed_by = CASE WHEN claimed_by = $7 THEN NULL ELSE claimed_by END "
    "WHERE subscription_id = $1 RETURNING failures, status";

struct Options {
  milliseconds poll{10 * 1000};
  milliseconds retry_initial{1000};
  milliseconds retry_max{5 * 60 * 1000};
  int error_after = 5;
  milliseconds timeout{10'000};
  int batch = 50;
};

int int_setting(const Json& settings, const char* key, int fallback, int max) {
  if (!settings.contains(key)) return fallback;
  const Json& v = settings.at(key);
  if (!v.is_number_integer() || v.get<int>() < 1 || v.get<int>() > max)
    throw std::invalid_argument(fmt::format("setting '{}' must be a whole number 1-{}", key, max));
  return v.get<int>();
}

Options options_of(const Json& s) {
  auto at = [&](const char* key) { return s.contains(key) ? &s.at(key) : nullptr; };
  Options o;
  o.poll = duration_setting(at("poll"), "poll", o.poll);
  o.retry_initial = duration_setting(at("retry_initial"), "retry_initial", o.retry_initial);
  o.retry_max = duration_setting(at("retry_max"), "retry_max", o.retry_max);
  o.timeout = duration_setting(at("timeout"), "timeout", o.timeout);
  o.error_after = int_setting(s, "error_after", o.error_after, 1000);
  o.batch = int_setting(s, "batch", o.batch, 1000);
  return o;
}

milliseconds backoff(const Options& o, std::int64_t failures_before) {
  milliseconds d = o.retry_initial;
  for (std::int64_t i = 0; i < failures_before && d < o.retry_max; ++i) d *= 2;
  return std::min(d, o.retry_max);
}

// "Name: value" lines of channel.header.
util::HttpHeaders headers_of(const std::string& stored, const std::string& traceparent) {
  util::HttpHeaders out = {{"Content-Type", "application/fhir+json"}};
  for (const auto& line : Json::parse(stored)) {
    const std::string text = line.get<std::string>();
    const auto colon = text.find(':');
    if (colon == std::string::npos) continue;
    std::string value = text.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    out.emplace_back(text.substr(0, colon), value);
  }
  if (!traceparent.empty()) out.emplace_back("traceparent", traceparent);
  return out;
}

struct Delivery {
  StepContext& ctx;
  EngineServices& engine;
  const Options& options;
  Json sub;  // its row
  std::string id;
  std::string status;  // the delivery state's
  std::int64_t failures = 0;
  // This attempt's name on the lease: another attempt of the same step is another owner.
  std::string owner = fmt::format("{}#{}", ctx.idempotency_key(), ctx.attempt());
  bool sent = false;              // something was delivered in this attempt
  std::string header_lines = {};  // channel.header (JSON array text), opened for this attempt

  OutboundStatus status_of(const std::string& type, std::int64_t since) const {
    OutboundStatus s;
    s.subscription_id = id;
    s.topic_url = topic_url(util::column_text(sub, "topic").value_or(""));
    s.status = status == "requested" ? "requested" : "active";
    s.type = type;
    s.content = util::column_text(sub, "content").value_or("id-only");
    s.events_since_start = since;
    return s;
  }

  // Sends one Bundle; records it before and after. Returns nothing once it was delivered, else
  // what the step returns: a wait for the retry, for another attempt's call in flight, or for a
  // fresh look when another attempt delivered it meanwhile.
  std::optional<StepOutcome> send(const std::string& kind, const Json& bundle, std::int64_t number,
                                  const std::string& focus, const std::string& patient) {
    auto claim = journal_one(ctx, kClaim, {id, owner, lease_millis(options.timeout)});
    if (!claim) return WaitUntil{Clock::now()};  // the row is gone: look again
    if (util::column_int(*claim, "taken").value_or(0) == 0) {
      // Looks again within retry_initial: the lease ends early when that call is answered.
      TimePoint at = Clock::now() + options.retry_initial;
      if (auto until = util::column_double(*claim, "until_epoch"))
        at = std::min(at, util::from_epoch_seconds(*until));
      return WaitUntil{at};
    }
    const bool done =
        kind == "handshake"
            ? util::column_bool(*claim, "handshaken")
            : number > 0 && util::column_int(*claim, "delivered").value_or(0) >= number;
    if (done) {  // an earlier attempt's call delivered it: nothing to send
      journal_one(ctx, kRelease, {id, owner});
      return std::nullopt;
    }
    const std::string content = util::column_text(sub, "content").value_or("id-only");
    std::optional<Json> row;
    ctx.journal([&](Sql& j) {
      row = util::query_one(
          j, kDisclose,
          {id, kind, number > 0 ? std::optional(std::to_string(number)) : std::nullopt, focus,
           patient, content, std::to_string(ctx.run_id())});
      // An event's notification discloses PHI: in the audit trail with its record, ids only.
      if (row && kind == "event-notification")
        engine.audit(j, disclosure_audit(*row, number, focus));
    });
    const std::string disclosure = row ? util::column_text(*row, "id").value_or("0") : "0";
    util::HttpPostOptions http;
    http.timeout = options.timeout;
    const auto result =
        util::http_post(util::column_text(sub, "endpoint").value_or(""), bundle.dump(),
                        headers_of(header_lines, ctx.traceparent()), http);
    std::optional<std::string> code;
    if (result.status != 0) code = std::to_string(result.status);
    if (result.ok()) {
      journal_one(ctx, kSucceeded, {id, disclosure, code, std::to_string(number), owner});
      status = "active";
      failures = 0;
      sent = true;
      ctx.log(LogLevel::kInfo, "event=fhir_subscription_notified",
              {{"subscription", id}, {"kind", kind}, {"event_number", number}});
      return std::nullopt;
    }
    std::string error =
        !result.error.empty() ? result.error : fmt::format("HTTP status {}", result.status);
    const auto wait = backoff(options, failures);
    auto state = journal_one(ctx, kFailed,
                             {id, disclosure, code, error, std::to_string(wait.count()),
                              std::to_string(options.error_after), owner});
    ctx.log(LogLevel::kWarning, "event=fhir_subscription_notify_failed",
            {{"subscription", id},
             {"kind", kind},
             {"event_number", number},
             {"error", error},
             {"status", state ? util::column_text(*state, "status").value_or("") : ""}});
    return WaitUntil{Clock::now() + wait};
  }

  AuditEntry disclosure_audit(const Json& row, std::int64_t number, const std::string& focus) {
    AuditEntry a;
    a.actor = "fhir-deliverer:run-" + std::to_string(ctx.run_id());
    a.action = "fhir.subscription.notify";
    a.resource_type = "fhir_subscription";
    a.resource_id = id;
    a.detail = {{"disclosure_id", util::column_int(row, "id").value_or(0)},
                {"event_number", number},
                {"focus", focus},
                {"content", util::column_text(sub, "content").value_or("id-only")},
                {"run_id", ctx.run_id()}};
    return a;
  }
};

}  // namespace

void OutboundDeliveryHandler::validate(const Json& config) const { options_of(config); }

StepOutcome OutboundDeliveryHandler::run(StepContext& ctx) {
  Options options;
  try {
    options = options_of(merged_settings(ctx));
  } catch (const std::invalid_argument& e) {
    return Fail{e.what(), true};
  }
  const Json& event = ctx.event();
  if (!event.is_object() || !event.contains("subscription_id") ||
      !event.at("subscription_id").is_string())
    return Fail{"event body lacks subscription_id", true};
  const std::string id = event.at("subscription_id").get<std::string>();
  EngineServices* engine = services_ ? services_->get() : nullptr;
  if (engine == nullptr) return Retry{"the engine's services are not bound yet", std::nullopt};
  Sql& sql = ctx.sql();
  auto sub = util::query_one(sql, kSubscription, {id});
  if (!sub || util::column_text(*sub, "status").value_or("off") == "off")
    return Completed{{{"subscription_id", id}, {"status", "off"}}};

  // Just recorded as the deliverer: a publisher that looked for it a moment before did not wake
  // it, so the first idle wait is short.
  const bool first_look =
      journal_one(ctx, kEnsureState, {id, std::to_string(ctx.run_id())}).has_value();
  auto state = util::query_one(sql, kState, {id});
  if (!state) return Retry{"delivery state not readable yet", std::nullopt};
  const TimePoint now = Clock::now();
  if (auto next = util::column_double(*state, "next_epoch")) {
    const TimePoint at = util::from_epoch_seconds(*next);
    if (at > now) return WaitUntil{at};
  }
  Delivery d{ctx,
             *engine,
             options,
             *sub,
             id,
             util::column_text(*state, "status").value_or("requested"),
             util::column_int(*state, "failures").value_or(0)};
  try {
    d.header_lines = open_header_lines(sql, *secrets_, *sub);
  } catch (const util::SecretBoxError& e) {
    // The row is fine; this process lacks the key that sealed it (a node given another
    // --secrets-key-file): retried, so restoring the file resumes delivery.
    return Fail{"subscription " + id + ": cannot open its channel.header: " + e.what(), false};
  }
  std::int64_t delivered = util::column_int(*state, "delivered_through").value_or(0);

  if (!util::column_bool(*state, "handshaken")) {
    const auto s = d.status_of("handshake", delivered);
    if (auto wait = d.send("handshake", notification_bundle(s, {}), 0, "", "")) return *wait;
  }

  const Json pending = util::query_rows(
      sql, kPendingEvents, {id, std::to_string(delivered), std::to_string(options.batch)});
  for (const auto& row : pending) {
    OutboundEvent e;
    e.number = util::column_int(row, "event_number").value_or(0);
    e.focus = util::column_text(row, "focus").value_or("");
    e.timestamp = util::column_text(row, "at").value_or("");
    e.resource = util::column_json(row, "resource");
    const auto s = d.status_of("event-notification", e.number);
    if (auto wait = d.send("event-notification", notification_bundle(s, {e}), e.number, e.focus,
                           util::column_text(row, "patient").value_or("")))
      return *wait;
    delivered = e.number;
  }
  // A full batch: more may be waiting; come back at once.
  if (static_cast<int>(pending.size()) == options.batch) return WaitUntil{Clock::now()};

  // Idle: a publish wakes it (kDeliverSignal, sent in the publishing transaction); the poll is
  // only a fallback.
  TimePoint wake =
      Clock::now() + (first_look ? std::min(options.poll, milliseconds(1000)) : options.poll);
  if (auto heartbeat = util::column_int(*sub, "heartbeat_seconds")) {
    auto last = util::column_double(*state, "last_epoch");
    TimePoint last_sent = last ? util::from_epoch_seconds(*last) : now;
    if (d.sent) last_sent = Clock::now();
    const TimePoint due = last_sent + std::chrono::seconds(*heartbeat);
    if (due <= Clock::now()) {
      const auto s = d.status_of("heartbeat", delivered);
      if (auto wait = d.send("heartbeat", notification_bundle(s, {}), 0, "", "")) return *wait;
      return WaitForSignal{kDeliverSignal,
                           std::min(wake, Clock::now() + std::chrono::seconds(*heartbeat))};
    }
    wake = std::min(wake, due);
  }
  return WaitForSignal{kDeliverSignal, wake};
}

}  // namespace chartflow::handlers::fhir_subscriptions
