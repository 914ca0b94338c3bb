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

}  // namespace
}  // namespace chartflow::runtime
