// Retention's part of the dispatcher (issue #17 item 5): finished runs leave the hot tables in
// batches, and what the policy no longer keeps is dropped a partition at a time. The SQL is in
// store/retention_store.cpp; the design in schema/engine/0019_retention.sql.
#include "runtime/engine.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {
namespace {

// A batch is one transaction: this many runs keep it well under a second with ten steps and
// their history each, and the dispatcher spends at most kMaxBatches of them a minute (about
// 720,000 runs a day), so a backlog after an upgrade drains without holding up the dispatcher.
constexpr int kArchiveBatch = 500;
constexpr int kMaxBatches = 10;
// Log days made ahead: a week without a running node still finds its day's partition.
constexpr int kLogDaysAhead = 7;

}  // namespace

void Engine::archive_finished_batches(store::Store& store, int max_batches, int* moved) const {
  for (int i = 0; i < max_batches; ++i) {
    int n = 0;
    store.with_sql([&](Sql& sql) {
      n = store::archive_runs(sql, settings_.retention.archive_after, kArchiveBatch);
    });
    *moved += n;
    if (n < kArchiveBatch) break;
  }
}

// A failed batch or expiry is logged and tried again at its next turn: it must not take the
// dispatcher's round (and its connection) with it.
void Engine::archive_finished(store::Store& store) {
  int moved = 0;
  try {
    archive_finished_batches(store, kMaxBatches, &moved);
  } catch (const std::exception& e) {
    Log::warn("archive_failed", {{"error", e.what()}, {"archived", moved}});
  }
  if (moved > 0) Log::info("runs_archived", {{"count", moved}});
}

void Engine::ensure_log_days(store::Store& store) {
  try {
    store.with_sql([&](Sql& sql) { store::ensure_log_partitions(sql, kLogDaysAhead); });
  } catch (const std::exception& e) {
    Log::warn("log_partitions_failed", {{"error", e.what()}});
  }
}

void Engine::write_logs(store::Store& store, const std::vector<store::LogRecord>& logs) {
  try {
    store.write_logs(logs);
  } catch (const store::TransientError&) {
    throw;  // the connection is gone: the dispatcher reconnects
  } catch (const std::exception& e) {
    Log::write(LogLevel::kError, "log_write_failed",
               {{"error", e.what()}, {"records", logs.size()}}, false);
  }
}

Json Engine::expire_now(bool dry_run) {
  Json out;
  transaction([&](Sql& sql) {
    if (!dry_run) store::ensure_log_partitions(sql, kLogDaysAhead);  // a dry run makes nothing
    out = store::expire_partitions(sql, settings_.retention, dry_run);
  });
  return out;
}

void Engine::expire_retention(store::Store& store) const {
  Json out;
  try {
    store.with_sql([&](Sql& sql) {
      if (const int made = store::ensure_log_partitions(sql, kLogDaysAhead); made > 0)
        Log::info("log_partitions_made", {{"count", made}});
      out = store::expire_partitions(sql, settings_.retention, false);
    });
  } catch (const std::exception& e) {
    Log::warn("expiry_failed", {{"error", e.what()}});
    return;
  }
  if (!out["dropped"].empty())
    Log::info("partitions_expired", {{"count", out["dropped"].size()}, {"bytes", out["bytes"]}});
}

}  // namespace chartflow::runtime
