// Parses human durations ("250ms", "3s", "1m30s", "2h", "1d") used across workflow config.
// Pure function; throws nothing, returns nullopt for anything it does not understand.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace chartflow::core {

using Millis = std::chrono::milliseconds;

std::optional<Millis> parse_duration(std::string_view text);
std::string format_duration(Millis d);

}  // namespace chartflow::core
