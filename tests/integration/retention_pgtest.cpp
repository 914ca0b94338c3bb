// Retention that frees disk (issue #17 item 5, schema/engine/0019_retention.sql): finished runs
// move into the month-partitioned archive and read as before; an expiry drops a month whole,
// except the runs of held charts, which move into the held partition with their steps, history
// and events; runs not finished, and the events they start from, never leave the hot tables;
// log days are dropped whole; a reprocess of an archived run brings its event back.
#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>

#include "store/retention_store.hpp"
#include "store/store.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using namespace std::chrono_literals;

class RetentionTest : public PgTest {
 protected:
  // A run of workflow `w` for `subject`, finished `days_ago` (a NULL finish: still running),
  // with two steps, their history and a signal; returns its id.
  std::int64_t run(const std::string& subject, const std::string& days_ago,
                   const std::string& status = "succeeded") {
    if (scalar("SELECT count(*) FROM workflow_version WHERE name = 'w'") == "0")
      scalar(
          "INSERT INTO workflow_version (name, version, content_hash, definition) VALUES ('w', "
          "1, 'h', '{}') RETURNING id");
    const std::string finished =
        days_ago == "NULL" ? "NULL" : "now() - interval '" + days_ago + " days'";
    const auto event =
        scalar(R"(INSERT INTO event (type, body) VALUES ('chart.uploaded', '{"chart_id": ")" +
               subject + R"("}') RETURNING id)");
    const auto id = scalar(
        "INSERT INTO workflow_run (workflow_version_id, workflow, event_id, status, "
        "remaining_steps, subject, created_at, finished_at) SELECT id, 'w', " +
        event + ", '" + status + "', 0, '" + subject + "', coalesce(" + finished +
        ", now()) - interval '1 hour', " + finished +
        " FROM workflow_version WHERE name = 'w' RETURNING id");
    scalar(
        "INSERT INTO step_run (run_id, step_key, handler, status, pending_needs, max_attempts, "
        "timeout_ms, output) SELECT " +
        id +
        ", k, 'h', 'succeeded', 0, 3, 1000, '{\"ok\": true}' FROM unnest(ARRAY['a', 'b']) "
        "k RETURNING 1");
    scalar("INSERT INTO run_history (run_id, type, step) VALUES (" + id + ", 'started', 'a'), (" +
           id + ", 'succeeded', 'a') RETURNING 1");
    scalar("INSERT INTO run_signal (run_id, name) VALUES (" + id + ", 'decision') RETURNING 1");
    return std::stoll(id);
  }
  int archive(std::chrono::hours after) {
    store::Store s(dsn());
    int n = 0;
    s.with_sql([&](Sql& sql) { n = store::archive_runs(sql, after, 100); });
    return n;
  }
  Json expire(const store::RetentionPolicy& p, bool dry) {
    store::Store s(dsn());
    Json out;
    s.with_sql([&](Sql& sql) { out = store::expire_partitions(sql, p, dry); });
    return out;
  }
  std::string hot(std::int64_t id) {
    return scalar("SELECT count(*) FROM workflow_run WHERE id = " + std::to_string(id)) + "," +
           scalar("SELECT count(*) FROM step_run WHERE run_id = " + std::to_string(id));
  }
};

TEST_F(RetentionTest, ArchivedRunsReadAsBeforeAndExpiryDropsTheirMonthButKeepsHeldCharts) {
  const auto old_run = run("chart-old", "200");
  const auto held_run = run("chart-held", "200");
  const auto recent = run("chart-recent", "2");
  const auto waiting = run("chart-waiting", "NULL", "waiting");
  scalar("UPDATE workflow_run SET created_at = now() - interval '300 days' WHERE id = " +
         std::to_string(waiting) + " RETURNING 1");
  store::Store s(dsn());
  const auto before = s.get_run(old_run);
  ASSERT_TRUE(before);

  EXPECT_EQ(archive(24h * 30), 2);
  EXPECT_EQ(hot(old_run), "0,0");
  EXPECT_EQ(hot(held_run), "0,0");
  EXPECT_EQ(hot(recent), "1,2") << "finished two days ago: not yet archived";
  EXPECT_EQ(hot(waiting), "1,2") << "an unfinished run never leaves";
  EXPECT_EQ(scalar("SELECT count(*) FROM event e JOIN workflow_run r ON r.event_id = e.id"), "2");

  // The archived run reads as it did, steps, history, event and all.
  auto after = s.get_run(old_run);
  ASSERT_TRUE(after);
  EXPECT_TRUE((*after)["archived"].get<bool>());
  for (const char* field : {"status", "subject", "steps", "history", "event_type", "workflow"})
    EXPECT_EQ((*after)[field], (*before)[field]) << field;
  // Commands act on hot runs: an archived one is refused, saying what to do instead.
  std::string message;
  EXPECT_EQ(s.retry_run(old_run, &message), store::Store::CommandResult::kConflict);
  EXPECT_NE(message.find("is archived"), std::string::npos) << message;
  const auto listed = s.list_runs(store::Store::RunFilter{});
  ASSERT_EQ(listed["runs"].size(), 4u) << listed.dump();
  EXPECT_EQ(listed["runs"][3]["id"], old_run) << "pages in id order across hot and archive";

  scalar(
      "INSERT INTO retention_hold (subject, reason, held_by) VALUES ('chart-held', "
      "'litigation', 'test') RETURNING 1");
  store::RetentionPolicy policy;
  policy.runs = 24h * 100;
  policy.logs = 24h * 30;
  // Dry: what would go, and nothing goes.
  const Json dry = expire(policy, true);
  ASSERT_FALSE(dry["dropped"].empty()) << dry.dump();
  int held = 0;
  for (const auto& d : dry["dropped"]) held += d["held_runs"].get<int>();
  EXPECT_EQ(held, 1) << dry.dump();
  EXPECT_TRUE(s.get_run(old_run)) << "a dry run dropped something";

  const Json done = expire(policy, false);
  EXPECT_EQ(done["dropped"].size(), dry["dropped"].size()) << done.dump();
  EXPECT_GT(done["bytes"].get<std::int64_t>(), 0);
  EXPECT_FALSE(s.get_run(old_run)) << "its month expired";
  EXPECT_EQ(scalar("SELECT count(*) FROM event_all WHERE body->>'chart_id' = 'chart-old'"), "0");
  const auto kept = s.get_run(held_run);
  ASSERT_TRUE(kept) << "a held chart's run outlives its month";
  EXPECT_EQ((*kept)["steps"].size(), 2u);
  EXPECT_EQ((*kept)["history"].size(), 2u);
  EXPECT_EQ((*kept)["event_type"], "chart.uploaded");
  EXPECT_EQ(
      scalar("SELECT count(*) FROM run_signal_all WHERE run_id = " + std::to_string(held_run)),
      "1");
  EXPECT_TRUE(s.get_run(recent));
  EXPECT_TRUE(s.get_run(waiting));
  // The month's partitions are gone from the catalog, not just emptied.
  EXPECT_EQ(scalar("SELECT count(*) FROM retention_partition_list WHERE class = 'runs' AND NOT "
                   "held"),
            "0");
  // Nothing left to drop: a second expiry drops nothing.
  EXPECT_TRUE(expire(policy, false)["dropped"].empty());
}

TEST_F(RetentionTest, AReleasedHoldLetsItsRunsGoAtTheNextExpiry) {
  const auto held_run = run("chart-held", "200");
  scalar(
      "INSERT INTO retention_hold (subject, reason, held_by) VALUES ('chart-held', "
      "'litigation', 'test') RETURNING 1");
  EXPECT_EQ(archive(24h * 30), 1);
  store::RetentionPolicy policy;
  policy.runs = 24h * 100;
  expire(policy, false);
  store::Store s(dsn());
  ASSERT_TRUE(s.get_run(held_run)) << "held";
  scalar("DELETE FROM retention_hold RETURNING 1");
  const Json dry = expire(policy, true);
  ASSERT_EQ(dry["dropped"].size(), 1u) << dry.dump();
  EXPECT_EQ(dry["dropped"][0]["rows_estimate"], 1);
  EXPECT_TRUE(s.get_run(held_run)) << "a dry run deleted";
  expire(policy, false);
  EXPECT_FALSE(s.get_run(held_run)) << "released, past its retention: gone";
  EXPECT_EQ(scalar("SELECT count(*) FROM event_all"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM step_run_all"), "0");
}

// A dedup key outlives the hot table: the same key again after its event was archived is a
// duplicate, reporting the archived event and its runs.
TEST_F(RetentionTest, ADedupKeyStillDedupsAfterItsEventIsArchived) {
  store::Store s(dsn());
  const auto none = [](const EventInput&) { return std::vector<store::RunPlan>{}; };
  EventInput ev;
  ev.type = "lab.result";
  ev.dedup_key = "order-17";
  const auto first = s.ingest(ev, none);
  ASSERT_FALSE(first.duplicate);
  scalar("UPDATE event SET created_at = now() - interval '40 days' RETURNING 1");
  EXPECT_EQ(archive(24h * 30), 1) << "an event no run started is archived too";
  EXPECT_EQ(scalar("SELECT count(*) FROM event"), "0");
  const auto again = s.ingest(ev, none);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.event_id, first.event_id);
  EXPECT_EQ(scalar("SELECT count(*) FROM event_all"), "1");
}

// The archive and the views hold exactly the hot tables' columns: a column added to a hot table
// without its archive and view (see the header of 0019_retention.sql) fails here.
TEST_F(RetentionTest, ArchivesAndViewsHaveTheHotTablesColumns) {
  for (const std::string t : {"workflow_run", "step_run", "run_history", "run_signal", "event"}) {
    const auto cols = [&](const std::string& rel) {
      return scalar(
          "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY "
          "attnum) FROM pg_attribute WHERE attrelid = '" +
          rel + "'::regclass AND attnum > 0 AND NOT attisdropped");
    };
    EXPECT_EQ(cols(t + "_archive"), "archived_month:date," + cols(t)) << t;
    EXPECT_EQ(cols(t + "_all"), cols(t) + ",archived:boolean") << t;
  }
}

TEST_F(RetentionTest, AnExpiryWhileAnotherNodeHoldsTheLockSaysSo) {
  pqxx::connection other(dsn());
  pqxx::work held(other);
  ASSERT_EQ(held.exec1("SELECT pg_try_advisory_xact_lock(retention_lock_key())")[0].as<bool>(),
            true);
  store::RetentionPolicy policy;
  const Json out = expire(policy, false);
  EXPECT_TRUE(out.value("busy", false)) << out.dump();
}

TEST_F(RetentionTest, AnEventStaysHotWhileARunStartedFromItIsHot) {
  const auto a = run("chart-a", "200");
  // A second run from the same event (a reprocess), still running.
  scalar(
      "INSERT INTO workflow_run (workflow_version_id, workflow, event_id, status, "
      "remaining_steps, subject) SELECT workflow_version_id, workflow, event_id, 'running', 1, "
      "subject FROM workflow_run WHERE id = " +
      std::to_string(a) + " RETURNING id");
  EXPECT_EQ(archive(24h * 30), 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE body->>'chart_id' = 'chart-a'"), "1");
  EXPECT_EQ(scalar("SELECT count(*) FROM event_archive"), "0");
}

TEST_F(RetentionTest, ReprocessingAnArchivedRunBringsItsEventBack) {
  const auto a = run("chart-a", "200");
  const auto event = scalar("SELECT event_id FROM workflow_run WHERE id = " + std::to_string(a));
  EXPECT_EQ(archive(24h * 30), 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE id = " + event), "0");
  store::Store s(dsn());
  s.with_sql([&](Sql& sql) { store::restore_event(sql, std::stoll(event)); });
  EXPECT_EQ(scalar("SELECT body->>'chart_id' FROM event WHERE id = " + event), "chart-a");
  EXPECT_EQ(scalar("SELECT count(*) FROM event_all WHERE id = " + event), "1")
      << "moved, not copied";
}

TEST_F(RetentionTest, HoldsAreAddedOnceAndReleased) {
  store::Store s(dsn());
  s.with_sql([&](Sql& sql) {
    EXPECT_TRUE(store::add_hold(sql, "chart-1", "litigation", "admin"));
    EXPECT_FALSE(store::add_hold(sql, "chart-1", "again", "admin"));
    EXPECT_EQ(store::list_holds(sql).size(), 1u);
    EXPECT_TRUE(store::release_hold(sql, "chart-1"));
    EXPECT_FALSE(store::release_hold(sql, "chart-1"));
  });
}

// Log days expire whole. The partition the rows from before partitioning became ends on the
// day of the migration; a day older than the retention is dropped, today's kept.
TEST_F(RetentionTest, LogDaysPastTheirRetentionAreDroppedWhole) {
  scalar(
      "ALTER TABLE log_record DETACH PARTITION log_record_until_partitioned; DROP TABLE "
      "log_record_until_partitioned; SELECT 1");
  scalar(
      "CREATE TABLE log_record_old PARTITION OF log_record FOR VALUES FROM (now() - interval "
      "'41 days') TO (now() - interval '40 days'); SELECT 1");
  store::Store s(dsn());
  s.with_sql([&](Sql& sql) { store::ensure_log_partitions(sql, 1); });
  s.write_logs({store::LogRecord{2, "fresh", std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                                 Json::object()}});
  scalar(
      "INSERT INTO log_record (level, message, at) VALUES (2, 'stale', now() - interval "
      "'40 days 12 hours') RETURNING 1");
  store::RetentionPolicy policy;
  policy.logs = 24h * 30;
  const Json done = expire(policy, false);
  ASSERT_EQ(done["dropped"].size(), 1u) << done.dump();
  EXPECT_EQ(done["dropped"][0]["partition"], "log_record_old");
  EXPECT_EQ(scalar("SELECT string_agg(message, ',') FROM log_record"), "fresh");
}

}  // namespace
}  // namespace chartflow::testing
