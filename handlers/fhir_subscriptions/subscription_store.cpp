#include "handlers/fhir_subscriptions/subscription_store.hpp"

#include <fmt/format.h>

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

int record_status(Sql& sql, const std::string& name, const Notification& n) {
  std::int64_t highest = n.events_since_start.value_or(0);
  for (const auto& e : n.events) highest = std::max(highest, e.number);
  const std::int64_t start = n.type == "handshake" ? n.events_since_start.value_or(0) : 0;
  // A new epoch when the server names another Subscription than before, or a handshake says
  // the count starts below what was already announced: its numbers start again.
  const Json rows = sql.query(
      fmt::format(
          "INSERT INTO fhir_subscription_state AS s (name, subscription_ref, subscription_key, "
          "  topic, status, last_type, last_seen_at, handshake_at, heartbeat_at, contiguous, "
          "  announced) "
          "VALUES ($1, $2, $3, $4, $5, $6, now(), CASE WHEN $6 = 'handshake' THEN now() END, "
          "  CASE WHEN $6 = 'heartbeat' THEN now() END, $7::bigint, $8::bigint) "
          "ON CONFLICT (name) DO UPDATE SET "
          "  epoch = s.epoch + (CASE WHEN {0} THEN 1 ELSE 0 END), "
          "  subscription_ref = coalesce(EXCLUDED.subscription_ref, s.subscription_ref), "
          "  subscription_key = coalesce(EXCLUDED.subscription_key, s.subscription_key), "
          "  topic = coalesce(EXCLUDED.topic, s.topic), "
          "  status = coalesce(EXCLUDED.status, s.status), "
          "  last_type = EXCLUDED.last_type, last_seen_at = now(), "
          "  handshake_at = coalesce(EXCLUDED.handshake_at, s.handshake_at), "
          "  heartbeat_at = coalesce(EXCLUDED.heartbeat_at, s.heartbeat_at), "
          "  contiguous = CASE WHEN {0} THEN EXCLUDED.contiguous "
          "    ELSE greatest(s.contiguous, EXCLUDED.contiguous) END, "
          "  announced = CASE WHEN {0} THEN EXCLUDED.announced "
          "    ELSE greatest(s.announced, EXCLUDED.announced) END, "
          "  recovery_at = CASE WHEN {0} THEN NULL ELSE s.recovery_at END, "
          "  recovery_error = CASE WHEN {0} THEN NULL ELSE s.recovery_error END "
          "RETURNING s.epoch",
          "((s.subscription_key IS NOT NULL AND EXCLUDED.subscription_key IS NOT NULL AND "
          "s.subscription_key <> EXCLUDED.subscription_key) OR "
          "(EXCLUDED.last_type = 'handshake' AND EXCLUDED.contiguous < s.announced))"),
      {name, text_or_null(n.subscription), text_or_null(reference_key(n.subscription)),
       text_or_null(n.topic), text_or_null(n.status), n.type, std::to_string(start),
       std::to_string(highest)});
  return rows.empty() ? 1 : static_cast<int>(as_int(rows[0].at("epoch")));
}

bool claim_event(Sql& sql, const std::string& name, int epoch, std::int64_t number,
                 const std::string& via) {
  // The state row exists for pushed events; one for events asked for is made here too.
  sql.query("INSERT INTO fhir_subscription_state (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            {name});
  const Json rows = sql.query(
      "INSERT INTO fhir_subscription_event (name, epoch, event_number, via) "
      "VALUES ($1, $2::integer, $3::bigint, $4) "
      "ON CONFLICT (name, epoch, event_number) DO NOTHING RETURNING event_number",
      {name, std::to_string(epoch), std::to_string(number), via});
  if (rows.empty()) return false;
  sql.query(
      "UPDATE fhir_subscription_state SET announced = greatest(announced, $3::bigint) "
      "WHERE name = $1 AND epoch = $2::integer",
      {name, std::to_string(epoch), std::to_string(number)});
  return true;
}

// The current epoch's received numbers past the contiguous mark, as islands of consecutive
// numbers (n - row_number() is constant along one); the mark moves to the end of an island that
// starts right after it, and the gaps are what lies between the islands and up to `announced`.
// In the database, so a long run of received numbers is never read out.
constexpr const char* kGaps =
    "WITH st AS (SELECT epoch, contiguous, announced FROM fhir_subscription_state "
    "            WHERE name = $1 {}), "
    "got AS (SELECT e.event_number AS n FROM fhir_subscription_event e, st "
    "        WHERE e.name = $1 AND e.epoch = st.epoch AND e.event_number > st.contiguous), "
    "islands AS (SELECT min(n) AS lo, max(n) AS hi FROM "
    "            (SELECT n, n - row_number() OVER (ORDER BY n) AS g FROM got) x GROUP BY g), "
    "mark AS (SELECT st.epoch, coalesce((SELECT i.hi FROM islands i WHERE i.lo = st.contiguous + "
    "1), "
    "           st.contiguous) AS c, st.announced FROM st), "
    "later AS (SELECT lo, hi FROM islands, mark WHERE lo > mark.c + 1), "
    "found AS (SELECT coalesce(lag(hi) OVER (ORDER BY lo), (SELECT c FROM mark)) + 1 AS gap_from, "
    "                 lo - 1 AS gap_to FROM later "
    "          UNION ALL "
    "          SELECT coalesce((SELECT max(hi) FROM later), m.c) + 1, m.announced FROM mark m "
    "          WHERE m.announced > coalesce((SELECT max(hi) FROM later), m.c)) "
    "SELECT m.epoch, m.c, f.gap_from, f.gap_to FROM mark m "
    "LEFT JOIN (SELECT * FROM found ORDER BY gap_from LIMIT $2::bigint) f ON true "
    "ORDER BY f.gap_from";

std::vector<Gap> gaps(Sql& sql, const std::string& name, bool advance, std::size_t limit) {
  const Json rows =
      sql.query(fmt::format(kGaps, advance ? "FOR UPDATE" : ""), {name, std::to_string(limit)});
  if (rows.empty()) return {};
  if (advance)
    sql.query(
        "UPDATE fhir_subscription_state SET contiguous = $3::bigint "
        "WHERE name = $1 AND epoch = $2::integer",
        {name, rows[0].at("epoch").get<std::string>(), rows[0].at("c").get<std::string>()});
  std::vector<Gap> out;
  for (const auto& row : rows)
    if (!row.at("gap_from").is_null())
      out.push_back({as_int(row.at("gap_from")), as_int(row.at("gap_to"))});
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
      "  heartbeat_at, contiguous, announced, recovery_at, recovery_error, epoch, "
      "  (SELECT count(*) FROM fhir_subscription_event e WHERE e.name = s.name "
      "     AND e.epoch = s.epoch) AS received "
      "FROM fhir_subscription_state s WHERE name = $1",
      {name});
  if (rows.empty()) return nullptr;
  Json out = rows[0];
  for (const char* key : {"contiguous", "announced", "received", "epoch"})
    out[key] = as_int(out.at(key));
  return out;
}

void store_fetched(Sql& sql, const std::string& name, int epoch, std::int64_t number,
                   const std::string& reference, const std::string& url, const Json& content) {
  sql.query(
      "INSERT INTO fhir_fetched_resource (name, epoch, event_number, reference, url, content) "
      "VALUES ($1, $6::integer, $2::bigint, $3, $4, $5::jsonb) "
      "ON CONFLICT (name, epoch, event_number) DO UPDATE "
      "SET reference = EXCLUDED.reference, url = EXCLUDED.url, content = EXCLUDED.content, "
      "  fetched_at = now()",
      {name, std::to_string(number), reference, url, content.dump(), std::to_string(epoch)});
}

}  // namespace chartflow::handlers::fhir_subscriptions
