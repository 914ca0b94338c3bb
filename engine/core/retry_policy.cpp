#include "core/retry_policy.hpp"

namespace chartflow::core {

Millis RetryPolicy::delay_before(int next_attempt,
                                 const std::function<double()>& unit_random) const {
  return backoff().after_failure(next_attempt - 1, unit_random());
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
