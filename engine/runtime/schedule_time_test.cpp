#include "runtime/schedule_time.hpp"

#include <gtest/gtest.h>

namespace chartflow::runtime {
namespace {

using namespace std::chrono;

SysSeconds utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return sys_days(year(y) / month(m) / day(d)) + hours(hh) + minutes(mm) + seconds(ss);
}

Schedule schedule(const std::string& expr, const std::string& tz, bool catch_up = false,
                  int limit = kDefaultCatchUpLimit) {
  Schedule s;
  s.workflow = "w";
  s.expression = expr;
  s.timezone = tz;
  std::string error;
  s.cron = core::Cron::parse(expr, &error).value();
  s.zone = find_zone(tz);
  EXPECT_NE(s.zone, nullptr) << tz;
  s.catch_up = catch_up;
  s.catch_up_limit = limit;
  return s;
}

TEST(ScheduleTimeTest, MidnightInBerlinAcrossDaylightSaving) {
  const auto s = schedule("0 0 * * *", "Europe/Berlin");
  // Winter: UTC+1.
  EXPECT_EQ(next_tick(s, utc(2026, 11, 27, 12)), utc(2026, 11, 27, 23));
  // Summer: UTC+2.
  EXPECT_EQ(next_tick(s, utc(2026, 7, 1, 12)), utc(2026, 7, 1, 22));
  // The night clocks go forward (29 March 2026): midnight is still UTC+1.
  EXPECT_EQ(next_tick(s, utc(2026, 3, 28, 12)), utc(2026, 3, 28, 23));
  EXPECT_EQ(next_tick(s, utc(2026, 3, 28, 23)), utc(2026, 3, 29, 22));
}

TEST(ScheduleTimeTest, WallTimesInTheDaylightSavingGapAndOverlap) {
  // 02:30 does not exist in Berlin on 29 March 2026: it fires when the clocks jump (01:00 UTC).
  const auto gap = schedule("30 2 * * *", "Europe/Berlin");
  EXPECT_EQ(next_tick(gap, utc(2026, 3, 28, 12)), utc(2026, 3, 29, 1));
  // 02:30 happens twice on 25 October 2026: it fires once, at the first (00:30 UTC).
  EXPECT_EQ(next_tick(gap, utc(2026, 10, 24, 12)), utc(2026, 10, 25, 0, 30));
  EXPECT_EQ(next_tick(gap, utc(2026, 10, 25, 0, 30)), utc(2026, 10, 26, 1, 30));
  // Every 30 minutes: the repeated hour's wall times are not fired twice.
  const auto half = schedule("*/30 * * * *", "Europe/Berlin");
  EXPECT_EQ(next_tick(half, utc(2026, 10, 25, 0, 30)), utc(2026, 10, 25, 2, 0));
}

TEST(ScheduleTimeTest, SkipPolicyFiresOnlyATickThatIsStillOnTime) {
  const auto s = schedule("0 0 * * *", "UTC");
  // Down for three days: nothing is fired, the missed midnights are skipped.
  EXPECT_TRUE(due_ticks(s, utc(2026, 11, 20, 12), utc(2026, 11, 23, 12)).empty());
  // A tick 5 s late is on time.
  EXPECT_EQ(due_ticks(s, utc(2026, 11, 22, 12), utc(2026, 11, 23, 0, 0, 5)),
            std::vector<SysSeconds>{utc(2026, 11, 23)});
  // For a per-second schedule, on time means within its one-second period.
  const auto each = schedule("* * * * * *", "UTC");
  EXPECT_EQ(due_ticks(each, utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 30)),
            std::vector<SysSeconds>{utc(2026, 1, 1, 0, 0, 30)});
}

TEST(ScheduleTimeTest, CatchUpFiresTheLatestMissedTicksUpToTheLimit) {
  const auto s = schedule("0 0 * * *", "Europe/Berlin", true, 3);
  const auto due = due_ticks(s, utc(2026, 3, 20, 12), utc(2026, 3, 31, 12));
  EXPECT_EQ(due, (std::vector<SysSeconds>{utc(2026, 3, 28, 23), utc(2026, 3, 29, 22),
                                          utc(2026, 3, 30, 22)}));
  // Fewer missed than the limit: all of them.
  const auto all = schedule("0 0 * * *", "UTC", true, 10);
  EXPECT_EQ(due_ticks(all, utc(2026, 1, 1, 12), utc(2026, 1, 3, 12)).size(), 2U);
  // A per-second schedule down for a year does not walk the year.
  const auto each = schedule("* * * * * *", "UTC", true, 5);
  const auto start = steady_clock::now();
  const auto many = due_ticks(each, utc(2025, 1, 1), utc(2026, 1, 1));
  EXPECT_LT(steady_clock::now() - start, seconds(1));
  ASSERT_EQ(many.size(), 5U);
  EXPECT_EQ(many.back(), utc(2026, 1, 1));
}

TEST(ScheduleTimeTest, UnknownZone) { EXPECT_EQ(find_zone("Mars/Olympus_Mons"), nullptr); }

}  // namespace
}  // namespace chartflow::runtime
