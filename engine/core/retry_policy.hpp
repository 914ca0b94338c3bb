// Exponential backoff with jitter for failed step attempts. Pure; the random source is passed in
// so tests are deterministic.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

#include "engine/util/backoff.hpp"
#include "engine/util/duration.hpp"

namespace chartflow::core {

struct RetryPolicy {
  int max_attempts = 3;
  Millis initial{200};
  Millis max{30'000};
  double multiplier = 2.0;
  double jitter = 0.2;  // fraction of the delay added or removed at random, 0..1

  // Delay before attempt `next_attempt` (2 = first retry). `unit_random` returns [0,1).
  Millis delay_before(int next_attempt, const std::function<double()>& unit_random) const;
  bool exhausted(int attempts_made) const { return attempts_made >= max_attempts; }
  util::Backoff backoff() const { return {initial, max, multiplier, jitter}; }

  nlohmann::json to_json() const;
  static RetryPolicy from_json(const nlohmann::json& j);
};

}  // namespace chartflow::core
