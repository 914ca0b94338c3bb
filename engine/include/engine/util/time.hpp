// Time conversions for handler SQL and FHIR documents. Pure; thread-safe.
#pragma once

#include <string>

#include "engine/handler.hpp"

namespace chartflow::util {

// "2024-05-01T10:00:00Z" (UTC, whole seconds).
std::string iso8601(TimePoint t);
// Seconds since the epoch with millisecond precision, for to_timestamp($n::double precision).
std::string epoch_seconds_text(TimePoint t);
TimePoint from_epoch_seconds(double seconds);

}  // namespace chartflow::util
