// Retention (issue #17 item 5; tables and functions in schema/engine/0019_retention.sql):
// finished runs moved into the month-partitioned archive, whole months and log days dropped when
// they expire, and the legal holds that keep a subject's runs. Functions over the caller's
// transaction (Sql); stateless and safe from any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::store {

// How long each class of rows is kept, and when a finished run leaves the hot tables.
struct RetentionPolicy {
  std::chrono::milliseconds runs{std::chrono::hours(24 * 400)};  // runs, steps, history, events
  std::chrono::milliseconds logs{std::chrono::hours(24 * 30)};
  std::chrono::milliseconds archive_after{std::chrono::hours(24 * 30)};
  Json to_json() const;  // {"runs": "400d", "logs": "30d", "archive_after": "30d"}
};

// Moves up to `batch` runs finished more than `after` ago into the archive; returns how many
// (0 also when another node is archiving).
int archive_runs(Sql& sql, std::chrono::milliseconds after, int batch);

// Drops (or, dry, lists) the archive months and log days past the policy: {"dry_run",
// "dropped": [{"class", "partition", "until", "bytes", "rows_estimate", "held_runs"}], "bytes"},
// with "busy": true (and nothing dropped) when another node is archiving or expiring.
Json expire_partitions(Sql& sql, const RetentionPolicy& policy, bool dry_run);

// Makes the log days ahead; returns how many partitions were made.
int ensure_log_partitions(Sql& sql, int days_ahead);

// {"partitions": [{"class", "table", "partition", "from", "to", "held", "bytes",
// "rows_estimate"}], "holds": [...list_holds]}
Json retention_status(Sql& sql);

// Legal holds on a subject (a chart id): its runs are kept past every expiry.
Json list_holds(Sql& sql);  // [{"subject", "reason", "held_by", "created_at"}]
// The hold made, or nullopt when the subject was held already.
std::optional<Json> add_hold(Sql& sql, const std::string& subject, const std::string& reason,
                             const std::string& by);
bool release_hold(Sql& sql, const std::string& subject);

// A reprocessed run starts from its source's event: an archived one comes back first.
void restore_event(Sql& sql, std::int64_t event_id);

}  // namespace chartflow::store
