#include "handlers/fhir_subscriptions/subscription_store.hpp"

#include <algorithm>

namespace chartflow::handlers::fhir_subscriptions {
namespace {

std::int64_t as_int(const Json& v) {
  if (v.is_string()) return std::stoll(v.get<std::string>());
  if (v.is_number_integer()) return v.get<std::int64_t>();
  return 0;
}

std::optional<std::string> text_or_null(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

}  // namespace

void record_status(Sql& sql, const std::string& name, const Notification& n) {
  std::int64_t highest = n.events_since_start.value_or(0);
  for (const auto& e : n.events) highest = std::max(highest, e.number);
  const std::int64_t start = n.type == "handshake" ? n.events_since_start.value_or(0) : 0;
  sql.query(
      "INSERT INTO fhir_subscription_state AS s (name, subscription_ref, topic, status, last_type, "
      "  last_seen_at, handshake_at, heartbeat_at, contiguous, announced) "
      "VALUES ($1, $2, $3, $4, $5, now(), CASE WHEN $5 = 'handshake' THEN now() END, "
      "  CASE WHEN $5 = 'heartbeat' THEN now() END, $6::bigint, $7::bigint) "
      "ON CONFLICT (name) DO UPDATE SET "
      "  subscription_ref = coalesce(EXCLUDED.subscription_ref, s.subscription_ref), "
      "  topic = coalesce(EXCLUDED.topic, s.topic), status = coalesce(EXCLUDED.status, s.status), "
      "  last_type = EXCLUDED.last_type, last_seen_at = now(), "
      "  handshake_at = coalesce(EXCLUDED.handshake_at, s.handshake_at), "
      "  heartbeat_at = coalesce(EXCLUDED.heartbeat_at, s.heartbeat_at), "
      "  contiguous = greatest(s.contiguous, EXCLUDED.contiguous), "
      "  announced = greatest(s.announced, EXCLUDED.announced)",
      {name, text_or_null(n.subscription), text_or_null(n.topic), text_or_null(n.status), n.type,
       std::to_string(start), std::to_string(highest)});
}

bool claim_event(Sql& sql, const std::string& name, std::int64_t number, const std::string& via) {
  // The state row exists for pushed events; one for events asked for is made here too.
  sql.query("INSERT INTO fhir_subscription_state (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            {name});
  const Json rows = sql.query(
      "INSERT INTO fhir_subscription_event (name, event_number, via) VALUES ($1, $2::bigint, $3) "
      "ON CONFLICT (name, event_number) DO NOTHING RETURNING event_number",
      {name, std::to_string(number), via});
  if (rows.empty()) return false;
  sql.query(
      "UPDATE fhir_subscription_state SET announced = greatest(announced, $2::bigint) "
      "WHERE name = $1",
      {name, std::to_string(number)});
  return true;
}

std::vector<Gap> gaps(Sql& sql, const std::string& name, bool advance, std::size_t limit) {
  const Json state =
      sql.query(std::string("SELECT contiguous, announced FROM fhir_subscription_state "
                            "WHERE name = $1") +
                    (advance ? " FOR UPDATE" : ""),
                {name});
  if (state.empty()) return {};
  std::int64_t contiguous = as_int(state[0].at("contiguous"));
  const std::int64_t announced = as_int(state[0].at("announced"));
  const Json received = sql.query(
      "SELECT event_number FROM fhir_subscription_event WHERE name = $1 "
      "AND event_number > $2::bigint ORDER BY event_number LIMIT 100000",
      {name, std::to_string(contiguous)});
  std::vector<std::int64_t> numbers;
  numbers.reserve(received.size());
  for (const auto& row : received) numbers.push_back(as_int(row.at("event_number")));
  std::size_t i = 0;
  while (i < numbers.size() && numbers[i] == contiguous + 1) {
    ++contiguous;
    ++i;
  }
  if (advance)
    sql.query("UPDATE fhir_subscription_state SET contiguous = $2::bigint WHERE name = $1",
              {name, std::to_string(contiguous)});
  std::vector<Gap> out;
  std::int64_t cursor = contiguous;
  for (; i < numbers.size() && out.size() < limit; ++i) {
    if (numbers[i] > cursor + 1) out.push_back({cursor + 1, numbers[i] - 1});
    cursor = std::max(cursor, numbers[i]);
  }
  if (announced > cursor && out.size() < limit) out.push_back({cursor + 1, announced});
  return out;
}

void record_recovery(Sql& sql, const std::string& name, const std::string& error) {
  sql.query(
      "UPDATE fhir_subscription_state SET recovery_at = now(), recovery_error = $2 "
      "WHERE name = $1",
      {name, error});
}

Json state_json(Sql& sql, const std::string& name) {
  const Json rows = sql.query(
      "SELECT subscription_ref, topic, status, last_type, last_seen_at, handshake_at, "
      "  heartbeat_at, contiguous, announced, recovery_at, recovery_error, "
      "  (SELECT count(*) FROM fhir_subscription_event e WHERE e.name = s.name) AS received "
      "FROM fhir_subscription_state s WHERE name = $1",
      {name});
  if (rows.empty()) return nullptr;
  Json out = rows[0];
  for (const char* key : {"contiguous", "announced", "received"}) out[key] = as_int(out.at(key));
  return out;
}

void store_fetched(Sql& sql, const std::string& name, std::int64_t number,
                   const std::string& reference, const std::string& url, const Json& content) {
  sql.query(
      "INSERT INTO fhir_fetched_resource (name, event_number, reference, url, content) "
      "VALUES ($1, $2::bigint, $3, $4, $5::jsonb) ON CONFLICT (name, event_number) DO UPDATE "
      "SET reference = EXCLUDED.reference, url = EXCLUDED.url, content = EXCLUDED.content, "
      "  fetched_at = now()",
      {name, std::to_string(number), reference, url, content.dump()});
}

}  // namespace chartflow::handlers::fhir_subscriptions
