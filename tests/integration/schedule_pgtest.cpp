// Schedule triggers against a real PostgreSQL: several engines on one database fire each tick
// once, and the missed-tick policy decides what an engine that starts after an outage fires.
#include <gtest/gtest.h>

#include "runtime/scheduler.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using namespace std::chrono;

class ScheduleTest : public PgTest {};

runtime::SysSeconds utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0) {
  return sys_days(year(y) / month(m) / day(d)) + hours(hh) + minutes(mm);
}

runtime::EngineSettings manual_clock() {
  runtime::EngineSettings s;
  s.scheduler = false;  // the test calls Scheduler::run_once with its own clock
  return s;
}

TEST_F(ScheduleTest, ThreeEnginesFireEachTickOnce) {
  const std::string wf = R"(
name: every-second
on:
  - schedule: "* * * * * *"
    timezone: Europe/Berlin
    catch_up: true    # a loaded machine may delay every scheduler past a one-second tick
steps:
  a: { handler: noop }
)";
  EngineHarness e1(dsn(), {wf});
  EngineHarness e2(dsn(), {wf});
  EngineHarness e3(dsn(), {wf});
  e1.start();
  e2.start();
  e3.start();
  ASSERT_TRUE(wait_until(
      [&] {
        return std::stoi(scalar("SELECT count(*) FROM event WHERE type = 'schedule.tick'")) >= 4;
      },
      seconds(10)));
  e1.stop();
  e2.stop();
  e3.stop();
  const int ticks = std::stoi(scalar("SELECT count(*) FROM event WHERE type = 'schedule.tick'"));
  // One event and one run per scheduled second, and no second skipped between first and last.
  EXPECT_EQ(scalar("SELECT count(DISTINCT body->>'scheduled_at') FROM event WHERE type = "
                   "'schedule.tick'"),
            std::to_string(ticks));
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run WHERE workflow = 'every-second'"),
            std::to_string(ticks));
  EXPECT_EQ(scalar("SELECT extract(epoch FROM max((body->>'scheduled_at')::timestamptz) - "
                   "min((body->>'scheduled_at')::timestamptz))::int + 1 FROM event WHERE type = "
                   "'schedule.tick'"),
            std::to_string(ticks));
  EXPECT_EQ(scalar("SELECT DISTINCT dedup_key LIKE 'every-second@%' FROM event WHERE type = "
                   "'schedule.tick'"),
            "t");
}

const std::string kNightly = R"(
name: nightly
on:
  - schedule: "0 0 * * *"
    timezone: Europe/Berlin
    catch_up: true
    catch_up_limit: 3
steps:
  a: { handler: noop }
)";

const std::string kNightlySkip = R"(
name: nightly-skip
on:
  - schedule: "0 0 * * *"
    timezone: Europe/Berlin
steps:
  a: { handler: noop }
)";

TEST_F(ScheduleTest, CatchUpAfterDowntimeFiresTheLatestMissedTicksAndSkipFiresNone) {
  EngineHarness h(dsn(), {kNightly, kNightlySkip}, nullptr, manual_clock());
  h.start();
  runtime::Scheduler first(h.engine());
  // Both schedules are first seen on 20 March: they start from there, no backfill.
  const auto next = first.run_once(utc(2026, 3, 20, 12));
  EXPECT_EQ(next, utc(2026, 3, 20, 23));
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'schedule.tick'"), "0");

  // Everything is down until 31 March; a new process (a fresh scheduler) starts then.
  runtime::Scheduler later(h.engine());
  later.run_once(utc(2026, 3, 31, 12));
  EXPECT_EQ(scalar("SELECT string_agg(body->>'scheduled_at', ',' ORDER BY id) FROM event WHERE "
                   "body->>'workflow' = 'nightly'"),
            "2026-03-28T23:00:00Z,2026-03-29T22:00:00Z,2026-03-30T22:00:00Z");
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE body->>'workflow' = 'nightly-skip'"), "0");
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run WHERE workflow = 'nightly'"), "3");
  ASSERT_TRUE(wait_until([&] {
    return scalar("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'") == "3";
  }));

  // Running again at the same time, or from a third process, fires nothing twice.
  later.run_once(utc(2026, 3, 31, 12));
  runtime::Scheduler third(h.engine());
  third.run_once(utc(2026, 3, 31, 12));
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'schedule.tick'"), "3");

  // The next midnight fires both, on time.
  later.run_once(utc(2026, 3, 31, 22) + seconds(2));
  EXPECT_EQ(scalar("SELECT string_agg(body->>'workflow', ',' ORDER BY body->>'workflow') FROM "
                   "event WHERE body->>'scheduled_at' = '2026-03-31T22:00:00Z'"),
            "nightly,nightly-skip");
}

TEST_F(ScheduleTest, TickStartsOnlyItsOwnWorkflow) {
  EngineHarness h(dsn(), {kNightly, kNightlySkip}, nullptr, manual_clock());
  h.start();
  store::EventInput ev;
  ev.type = "schedule.tick";
  ev.body = {{"workflow", "nightly"}};
  auto r = h.engine().ingest(ev);
  ASSERT_EQ(r.run_ids.size(), 1U);
  EXPECT_EQ(scalar("SELECT workflow FROM workflow_run WHERE id = " + std::to_string(r.run_ids[0])),
            "nightly");
}

}  // namespace
}  // namespace chartflow::testing
