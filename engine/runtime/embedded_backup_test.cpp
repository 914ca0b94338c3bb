#include "runtime/embedded_backup.hpp"

#include <gtest/gtest.h>

namespace chartflow::runtime {
namespace {

// --until goes into the server's command line in single quotes and PostgreSQL reads a time
// without zone in the server's zone: only zoned timestamps of digits and separators pass.
TEST(RecoveryTargetTime, AcceptsZonedTimestampsOnly) {
  for (const char* ok : {"2026-12-02 14:05:00+00", "2026-12-02T14:05:00Z", "2026-12-02 14:05+01:00",
                         "2026-12-02 14:05:00.123-0530"})
    EXPECT_TRUE(is_recovery_target_time(ok)) << ok;
  for (const char* bad : {"2026-12-02 14:05:00", "yesterday", "2026-12-02 14:05:00+00' -c x='y",
                          "2026-12-02", "", "2026-12-02 14:05:00 UTC"})
    EXPECT_FALSE(is_recovery_target_time(bad)) << bad;
}

TEST(RecoveryTargetTime, RefusesImpossibleDatesAndAppliesTheZone) {
  EXPECT_FALSE(is_recovery_target_time("2026-02-30 10:00:00+00"));
  EXPECT_FALSE(is_recovery_target_time("2026-12-02 24:00:00+00"));
  EXPECT_FALSE(is_recovery_target_time("2026-12-02 14:05:00+25"));
  const auto utc = target_epoch_seconds("2026-12-02T13:05:00Z");
  ASSERT_TRUE(utc.has_value());
  EXPECT_DOUBLE_EQ(*utc, 1796216700.0);
  EXPECT_EQ(target_epoch_seconds("2026-12-02 14:05:00+01"), utc);
  EXPECT_EQ(target_epoch_seconds("2026-12-02 08:35-04:30"), utc);
  EXPECT_DOUBLE_EQ(*target_epoch_seconds("2026-12-02 13:05:00.25+00"), 1796216700.25);
}

}  // namespace
}  // namespace chartflow::runtime
