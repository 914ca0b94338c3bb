#include "core/cron.hpp"

#include <gtest/gtest.h>

namespace chartflow::core {
namespace {

using namespace std::chrono;

CivilSeconds at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return sys_days(year(y) / month(m) / day(d)) + hours(hh) + minutes(mm) + seconds(ss);
}

Cron cron(const std::string& text) {
  std::string error;
  auto c = Cron::parse(text, &error);
  EXPECT_TRUE(c.has_value()) << text << ": " << error;
  return c.value_or(Cron{});
}

std::string parse_error(const std::string& text) {
  std::string error;
  EXPECT_FALSE(Cron::parse(text, &error).has_value()) << text;
  return error;
}

TEST(CronTest, DailyAtMidnight) {
  const auto c = cron("0 0 * * *");
  EXPECT_EQ(c.next_after(at(2026, 11, 27, 9, 40)), at(2026, 11, 28));
  // Strictly after: the tick itself is not its own successor.
  EXPECT_EQ(c.next_after(at(2026, 11, 28)), at(2026, 11, 29));
  EXPECT_EQ(c.next_after(at(2026, 12, 31, 23, 59, 59)), at(2027, 1, 1));
}

TEST(CronTest, ListsRangesStepsAndNames) {
  const auto c = cron("*/15 9-17 * JAN-MAR,DEC MON-FRI");
  EXPECT_TRUE(c.matches(at(2026, 12, 1, 9, 45)));    // a Tuesday
  EXPECT_FALSE(c.matches(at(2026, 12, 5, 9, 45)));   // a Saturday
  EXPECT_FALSE(c.matches(at(2026, 11, 30, 9, 45)));  // November
  EXPECT_FALSE(c.matches(at(2026, 12, 1, 9, 50)));
  EXPECT_FALSE(c.matches(at(2026, 12, 1, 18, 0)));
  // Friday 17:45 -> Monday 09:00.
  EXPECT_EQ(c.next_after(at(2026, 12, 4, 17, 45)), at(2026, 12, 7, 9, 0));
  // "a/n": from a to the end of the range.
  const auto from5 = cron("5/20 * * * *");
  EXPECT_EQ(from5.next_after(at(2026, 1, 1, 0, 6)), at(2026, 1, 1, 0, 25));
  EXPECT_EQ(from5.next_after(at(2026, 1, 1, 0, 45)), at(2026, 1, 1, 1, 5));
}

TEST(CronTest, EitherDayFieldMatchesWhenBothAreRestricted) {
  // The 13th, or any Friday (Vixie cron semantics).
  const auto c = cron("0 0 13 * 5");
  EXPECT_TRUE(c.matches(at(2026, 11, 13)));  // a Friday the 13th
  EXPECT_TRUE(c.matches(at(2026, 11, 20)));  // a Friday
  EXPECT_TRUE(c.matches(at(2027, 1, 13)));   // a Wednesday the 13th
  EXPECT_FALSE(c.matches(at(2026, 11, 19)));
  // Only one restricted: that one alone decides.
  EXPECT_FALSE(cron("0 0 13 * *").matches(at(2026, 11, 20)));
  EXPECT_TRUE(cron("0 0 * * 0").matches(at(2026, 11, 29)));  // Sunday
  EXPECT_TRUE(cron("0 0 * * 7").matches(at(2026, 11, 29)));  // 7 is Sunday too
}

TEST(CronTest, SecondsFieldAndMacros) {
  const auto every2s = cron("*/2 * * * * *");
  EXPECT_TRUE(every2s.has_seconds());
  EXPECT_EQ(every2s.next_after(at(2026, 1, 1, 0, 0, 1)), at(2026, 1, 1, 0, 0, 2));
  EXPECT_EQ(every2s.next_after(at(2026, 1, 1, 0, 0, 58)), at(2026, 1, 1, 0, 1, 0));
  EXPECT_FALSE(cron("* * * * *").has_seconds());
  EXPECT_EQ(cron("@hourly").next_after(at(2026, 1, 1, 5, 30)), at(2026, 1, 1, 6));
  EXPECT_EQ(cron("@monthly").next_after(at(2026, 1, 31)), at(2026, 2, 1));
  EXPECT_EQ(cron("@weekly").next_after(at(2026, 11, 27)), at(2026, 11, 29));
}

TEST(CronTest, RareAndImpossibleDates) {
  EXPECT_EQ(cron("0 12 29 2 *").next_after(at(2026, 3, 1)), at(2028, 2, 29, 12));
  EXPECT_EQ(cron("0 0 31 * *").next_after(at(2026, 4, 1)), at(2026, 5, 31));
  EXPECT_FALSE(cron("0 0 30 2 *").next_after(at(2026, 1, 1)).has_value());
}

TEST(CronTest, InvalidExpressionsNameTheProblem) {
  EXPECT_NE(parse_error("0 0 * *").find("must have 5 fields"), std::string::npos);
  EXPECT_NE(parse_error("60 * * * *").find("minute field '60'"), std::string::npos);
  EXPECT_NE(parse_error("* 24 * * *").find("hour field"), std::string::npos);
  EXPECT_NE(parse_error("* * 0 * *").find("day of month field"), std::string::npos);
  EXPECT_NE(parse_error("* * * 13 *").find("month field"), std::string::npos);
  EXPECT_NE(parse_error("* * * * 8").find("day of week field"), std::string::npos);
  EXPECT_NE(parse_error("*/0 * * * *").find("step must be"), std::string::npos);
  EXPECT_NE(parse_error("5-1 * * * *").find("runs backwards"), std::string::npos);
  EXPECT_NE(parse_error("1,,2 * * * *").find("not a value"), std::string::npos);
  EXPECT_NE(parse_error("* * * FOO *").find("month field"), std::string::npos);
  EXPECT_NE(parse_error("@sometimes").find("must have 5 fields"), std::string::npos);
}

}  // namespace
}  // namespace chartflow::core
