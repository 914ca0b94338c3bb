#include "core/retry_policy.hpp"

#include <gtest/gtest.h>

#include "engine/util/duration.hpp"

namespace chartflow::core {
namespace {

double fixed(double v) { return v; }

RetryPolicy policy(Millis initial, Millis max, double multiplier, double jitter) {
  RetryPolicy p;
  p.initial = initial;
  p.max = max;
  p.multiplier = multiplier;
  p.jitter = jitter;
  return p;
}

// Attempt 2 is the first retry and waits `initial`; each later one multiplies, up to `max`.
TEST(RetryPolicy, DelayGrowsByTheMultiplierFromTheFirstRetryUpToTheCap) {
  const auto p = policy(Millis(100), Millis(1000), 3.0, 0.0);
  const auto mid = [] { return fixed(0.5); };
  EXPECT_EQ(p.delay_before(2, mid), Millis(100));
  EXPECT_EQ(p.delay_before(3, mid), Millis(300));
  EXPECT_EQ(p.delay_before(4, mid), Millis(900));
  EXPECT_EQ(p.delay_before(5, mid), Millis(1000));
  EXPECT_EQ(p.delay_before(60, mid), Millis(1000));  // no overflow far past the cap
}

// Jitter moves a delay by at most +-jitter of itself: the lowest draw gives base * (1 - j), a
// draw just under 1 approaches base * (1 + j).
TEST(RetryPolicy, JitterStaysWithinItsFractionOfTheDelay) {
  const auto p = policy(Millis(1000), Millis(60'000), 2.0, 0.25);
  EXPECT_EQ(p.delay_before(2, [] { return 0.0; }), Millis(750));
  EXPECT_EQ(p.delay_before(2, [] { return 0.5; }), Millis(1000));
  EXPECT_EQ(p.delay_before(2, [] { return 0.999999; }), Millis(1249));
  for (double r = 0.0; r < 1.0; r += 0.01) {
    const auto d = p.delay_before(3, [r] { return r; });
    EXPECT_GE(d, Millis(1500)) << r;
    EXPECT_LT(d, Millis(2500)) << r;
  }
}

// The cap is a promise to the system being retried: jitter never pushes a capped delay past it.
TEST(RetryPolicy, JitterNeverExceedsTheCap) {
  const auto p = policy(Millis(1000), Millis(5000), 2.0, 0.5);
  EXPECT_EQ(p.delay_before(10, [] { return 0.999; }), Millis(5000));
  EXPECT_EQ(p.delay_before(10, [] { return 0.0; }), Millis(2500));
}

TEST(RetryPolicy, ExhaustedAfterMaxAttempts) {
  RetryPolicy p;
  p.max_attempts = 3;
  EXPECT_FALSE(p.exhausted(2));
  EXPECT_TRUE(p.exhausted(3));
  EXPECT_TRUE(p.exhausted(4));
}

TEST(RetryPolicy, JsonRoundTripAndDefaultsForMissingKeys) {
  const auto p = policy(Millis(1500), Millis(90'000), 1.5, 0.1);
  const auto back = RetryPolicy::from_json(p.to_json());
  EXPECT_EQ(back.initial, Millis(1500));
  EXPECT_EQ(back.max, Millis(90'000));
  EXPECT_DOUBLE_EQ(back.multiplier, 1.5);
  EXPECT_DOUBLE_EQ(back.jitter, 0.1);
  EXPECT_EQ(back.max_attempts, p.max_attempts);

  const auto defaults = RetryPolicy::from_json(nlohmann::json::object());
  const RetryPolicy fresh;
  EXPECT_EQ(defaults.max_attempts, fresh.max_attempts);
  EXPECT_EQ(defaults.initial, fresh.initial);
  EXPECT_EQ(defaults.max, fresh.max);
}

TEST(Duration, ParsesEveryUnitAndSums) {
  EXPECT_EQ(parse_duration("250ms"), Millis(250));
  EXPECT_EQ(parse_duration("3s"), Millis(3000));
  EXPECT_EQ(parse_duration("1m30s"), Millis(90'000));
  EXPECT_EQ(parse_duration("2h"), Millis(7'200'000));
  EXPECT_EQ(parse_duration("1d"), Millis(86'400'000));
  EXPECT_EQ(parse_duration("1h1m1s1ms"), Millis(3'661'001));
}

TEST(Duration, RefusesWhatItDoesNotUnderstand) {
  for (const char* bad : {"", "5", "s", "1.5s", "-1s", "1 s", "1sec", "1m30", "99999999999999d"})
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
}

TEST(Duration, FormatsWholeSecondsAsSecondsElseMilliseconds) {
  EXPECT_EQ(format_duration(Millis(90'000)), "90s");
  EXPECT_EQ(format_duration(Millis(1500)), "1500ms");
  EXPECT_EQ(format_duration(Millis(0)), "0s");
  for (const auto ms : {Millis(1), Millis(999), Millis(61'000), Millis(3'600'000)})
    EXPECT_EQ(parse_duration(format_duration(ms)), ms) << ms.count();
}

}  // namespace
}  // namespace chartflow::core
