// HMAC-signed webhooks: per event type, an optional shared secret. A sender signs
// "<timestamp>.<body>" with HMAC-SHA256 and sends
//   X-Chartflow-Timestamp: <unix seconds>
//   X-Chartflow-Signature: sha256=<hex>
// A timestamp further than max_skew from the server's clock is refused, so a captured request
// cannot be replayed later; inside the window the signature is the event's dedup key, so a
// replay starts nothing. Loaded once at start-up; read-only afterwards (thread-safe).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "http/router.hpp"

namespace chartflow::http {

inline constexpr std::chrono::seconds kDefaultWebhookSkew{300};
inline constexpr const char* kSignatureHeader = "x-chartflow-signature";
inline constexpr const char* kTimestampHeader = "x-chartflow-timestamp";

struct WebhookSecret {
  std::string secret;
  std::chrono::seconds max_skew = kDefaultWebhookSkew;
};

class WebhookSecrets {
 public:
  // YAML mapping of event type to {secret | secret_file | secret_env, max_skew_seconds}.
  // Throws std::runtime_error naming the file and the problem.
  static WebhookSecrets load(const std::filesystem::path& file);
  void add(const std::string& type, WebhookSecret s) { by_type_[type] = std::move(s); }
  const WebhookSecret* find(const std::string& type) const;
  bool empty() const { return by_type_.empty(); }

 private:
  std::map<std::string, WebhookSecret> by_type_;
};

// The signature header value a sender computes (for clients and tests): HMAC-SHA256 of
// "<timestamp>.<body>", or of "<timestamp>.<idempotency key>.<body>" when the request carries an
// Idempotency-Key (the key decides what is a duplicate, so it must be signed too).
std::string webhook_signature(const std::string& secret, const std::string& timestamp,
                              const std::string& body,
                              const std::optional<std::string>& idempotency_key = std::nullopt);

// Checks the request's signature for `type`; throws HttpError 401 naming what is wrong. Returns
// the verified signature (hex), which is unique per signed request.
std::string verify_webhook(const Request& req, const std::string& type, const WebhookSecret& s,
                           std::chrono::system_clock::time_point now);

}  // namespace chartflow::http
