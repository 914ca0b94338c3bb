// Capped exponential backoff with jitter: the wait before trying again after a failure. Shared
// by the engine's step retry policy and handlers that choose their own waits (an insurer's
// policy in insurers.yaml). Pure; the random draw is passed in so callers and tests decide it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>

namespace chartflow::util {

struct Backoff {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds max{30'000};
  double multiplier = 2.0;
  double jitter = 0.2;  // fraction of the wait added or removed at random, 0..1

  // The wait after the `failures`-th failure in a row (1 = the first): initial *
  // multiplier^(failures - 1), capped at max, then moved by up to +-jitter of itself as
  // `unit_random` (in [0, 1)) says, and never past max: the cap is a promise to the other side.
  std::chrono::milliseconds after_failure(int failures, double unit_random) const {
    const int exponent = std::max(0, failures - 1);
    const auto cap = static_cast<double>(max.count());
    const double base =
        std::min(static_cast<double>(initial.count()) * std::pow(multiplier, exponent), cap);
    const double spread = base * jitter;
    const double d = std::clamp(base - spread + 2.0 * spread * unit_random, 0.0, cap);
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(d));
  }
};

}  // namespace chartflow::util
