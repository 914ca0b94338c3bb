// What the server does with a request between the wire and the Router: the limits a request must
// stay within, the conversion of a parsed Beast request into a Request, and the checks that run
// before any route sees it (control characters in the path or query, JSON nesting depth, Bundle
// entry counts). Pure functions over their arguments; safe from any thread. Also the entry point
// of the HTTP fuzz target.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/input_limits.hpp"
#include "http/router.hpp"

namespace chartflow::http {

inline constexpr std::uint32_t kDefaultHeaderLimit = 16 * 1024;
// The limits every door shares (core/input_limits.hpp).
inline constexpr std::size_t kDefaultBodyLimit = core::kDefaultBodyBytes;
// Chart uploads.
inline constexpr std::size_t kDefaultUploadBodyLimit = core::kDefaultUploadBytes;
// A body over this size waits for one of the server's upload slots before it is read.
inline constexpr std::size_t kDefaultLargeBodyBytes = std::size_t{256} * 1024;
inline constexpr int kDefaultJsonDepthLimit = core::kDefaultJsonDepth;
inline constexpr std::size_t kDefaultBundleEntryLimit = core::kDefaultBundleEntries;
// Time to send a request's headers (and, between requests on a kept-alive connection, to start
// the next one); a client that trickles them is cut off.
inline constexpr std::chrono::milliseconds kDefaultHeaderTimeout{10'000};
// Time to send a body once the headers are in: 32 MiB at 1 MiB/s with room to spare.
inline constexpr std::chrono::milliseconds kDefaultBodyTimeout{60'000};
// Longest wait for an upload slot before the request is answered 503 with Retry-After.
inline constexpr std::chrono::milliseconds kDefaultUploadWait{15'000};

struct InputLimits {
  std::uint32_t header_bytes = kDefaultHeaderLimit;
  std::size_t body_bytes = kDefaultBodyLimit;
  // Requests whose path starts with one of these prefixes (uploads) may carry upload_body_bytes.
  std::size_t upload_body_bytes = kDefaultUploadBodyLimit;
  std::vector<std::string> upload_prefixes = {"/v1/charts/"};
  // Requests whose path starts with one of these carry bytes of any kind and check what they
  // take themselves (S3 objects: a chart bucket's are held to the JSON limits there); the
  // JSON limits below do not apply to them here.
  std::vector<std::string> raw_body_prefixes;
  // Bodies over this (or of unknown length where the limit allows more) take an upload slot.
  std::size_t large_body_bytes = kDefaultLargeBodyBytes;
  int json_depth = kDefaultJsonDepthLimit;
  std::size_t bundle_entries = kDefaultBundleEntryLimit;
  std::chrono::milliseconds header_timeout = kDefaultHeaderTimeout;
  std::chrono::milliseconds body_timeout = kDefaultBodyTimeout;
  std::chrono::milliseconds upload_wait = kDefaultUploadWait;

  // The body limit for a request to `target` (path and query, as on the request line).
  std::size_t body_limit_for(std::string_view target) const;
};

using BeastRequest = boost::beast::http::request<boost::beast::http::string_body>;

// The body limit message, shared by the server's early (Content-Length) and late checks.
HttpError body_too_large(std::size_t limit);

// Converts a parsed request; throws HttpError 400 when the decoded path or query holds control
// characters (a CR/LF or NUL smuggled in as %0d%0a or %00), which no route has a use for.
Request to_request(BeastRequest&& req, std::string remote);

// Checks a JSON body (the content type names JSON, or there is none) against the nesting depth
// and Bundle entry limits without parsing it; nullopt when it is within them. Not a validator:
// malformed JSON passes here and is rejected by the route's parser.
std::optional<HttpError> check_json_limits(std::string_view body, const InputLimits& limits);
std::optional<HttpError> check_body(const Request& req, const InputLimits& limits);

}  // namespace chartflow::http
