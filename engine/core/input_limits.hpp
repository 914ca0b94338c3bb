// The limits every door applies to what enters from outside (HTTP bodies, batches, S3 objects,
// Alertmanager notifications, drop-folder files), and the one check of a JSON text's shape
// against them: nesting depth and a Bundle's entry count, counted in a single pass without
// parsing, so a hostile text is refused before any recursive parser or serialiser sees it.
// Pure; safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chartflow::core {

// An event or API request body.
inline constexpr std::size_t kDefaultBodyBytes = std::size_t{1024} * 1024;
// A chart upload: every chart in tests/data/charts (largest 3.9 MB) with a wide margin.
inline constexpr std::size_t kDefaultUploadBytes = std::size_t{32} * 1024 * 1024;
// The shared charts nest 11 levels deep; FHIR itself rarely goes past 15.
inline constexpr int kDefaultJsonDepth = 64;
// The largest shared chart has 1,111 entries.
inline constexpr std::size_t kDefaultBundleEntries = 20'000;

struct JsonLimits {
  int depth = kDefaultJsonDepth;
  std::size_t bundle_entries = kDefaultBundleEntries;
};

// Which limit a text broke, and the limit itself.
struct JsonLimitBreach {
  enum class Kind { kDepth, kBundleEntries };
  Kind kind;
  std::size_t limit;
  // "JSON nested deeper than 64 levels", "the Bundle has more than 20000 entries".
  std::string describe() const;
};

// Checks `text` against the nesting depth and the entry count of the top-level object's "entry"
// array; nullopt when it is within both. Not a validator: malformed JSON may pass here and is
// refused by the parser that follows (which then never recurses deeper than the limit).
std::optional<JsonLimitBreach> check_json_limits(std::string_view text, const JsonLimits& limits);

}  // namespace chartflow::core
