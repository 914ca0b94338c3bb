#include "core/retry_policy.hpp"

#include <algorithm>
#include <cmath>

namespace chartflow::core {

Millis RetryPolicy::delay_before(int next_attempt,
                                 const std::function<double()>& unit_random) const {
  const int exponent = std::max(0, next_attempt - 2);
  double base = static_cast<double>(initial.count()) * std::pow(multiplier, exponent);
  base = std::min(base, static_cast<double>(max.count()));
  const double spread = base * jitter;
  double d = base - spread + 2.0 * spread * unit_random();
  d = std::clamp(d, 0.0, static_cast<double>(max.count()));
  return Millis(static_cast<Millis::rep>(d));
}

nlohmann::json RetryPolicy::to_json() const {
  return {{"max_attempts", max_attempts},
          {"initial_ms", initial.count()},
          {"max_ms", max.count()},
          {"multiplier", multiplier},
          {"jitter", jitter}};
}

RetryPolicy RetryPolicy::from_json(const nlohmann::json& j) {
  RetryPolicy p;
  p.max_attempts = j.value("max_attempts", p.max_attempts);
  p.initial = Millis(j.value("initial_ms", p.initial.count()));
  p.max = Millis(j.value("max_ms", p.max.count()));
  p.multiplier = j.value("multiplier", p.multiplier);
  p.jitter = j.value("jitter", p.jitter);
  return p;
}

}  // namespace chartflow::core
