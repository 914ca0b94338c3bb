#include "http/webhook_auth.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>

#include "engine/util/hash.hpp"
#include "http/hmac.hpp"
#include "http/secret_source.hpp"

namespace chartflow::http {

using util::constant_time_equal;
using util::to_hex;

WebhookSecrets WebhookSecrets::load(const std::filesystem::path& file) {
  const std::string where = file.string() + ": ";
  const YAML::Node root = load_config_file(file);
  if (!root.IsMap()) throw std::runtime_error(where + "expected a mapping of event type to secret");
  WebhookSecrets out;
  for (const auto& kv : root) {
    const std::string type = kv.first.as<std::string>();
    const auto& v = kv.second;
    const std::string at =
        where + "line " + std::to_string(kv.first.Mark().line + 1) + ": " + type + ": ";
    if (!v.IsMap()) throw std::runtime_error(at + "expected {secret | secret_file | secret_env}");
    WebhookSecret s;
    s.secret = load_secret(v, at);
    if (v["max_skew_seconds"]) s.max_skew = std::chrono::seconds(v["max_skew_seconds"].as<int>());
    out.add(type, std::move(s));
  }
  return out;
}

const WebhookSecret* WebhookSecrets::find(const std::string& type) const {
  auto it = by_type_.find(type);
  return it == by_type_.end() ? nullptr : &it->second;
}

std::string webhook_signature(const std::string& secret, const std::string& timestamp,
                              const std::string& body,
                              const std::optional<std::string>& idempotency_key) {
  const std::string text =
      idempotency_key ? timestamp + "." + *idempotency_key + "." + body : timestamp + "." + body;
  return "sha256=" + util::to_hex(hmac_sha256(secret, text));
}

std::string verify_webhook(const Request& req, const std::string& type, const WebhookSecret& s,
                           std::chrono::system_clock::time_point now) {
  const auto sig = req.header(kSignatureHeader);
  const auto ts = req.header(kTimestampHeader);
  if (!sig || !ts)
    throw HttpError{401, "events of type " + type +
                             " must be signed: X-Chartflow-Timestamp and X-Chartflow-Signature "
                             "(sha256=HMAC-SHA256 of \"<timestamp>.<body>\") are required"};
  std::int64_t seconds = 0;
  auto [p, ec] = std::from_chars(ts->data(), ts->data() + ts->size(), seconds);
  if (ec != std::errc() || p != ts->data() + ts->size())
    throw HttpError{401, "X-Chartflow-Timestamp must be Unix seconds"};
  const auto skew =
      std::chrono::abs(std::chrono::seconds(seconds) -
                       std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()));
  if (skew > s.max_skew)
    throw HttpError{401, "X-Chartflow-Timestamp is " + std::to_string(skew.count()) +
                             " s away from the server's clock (at most " +
                             std::to_string(s.max_skew.count()) + " s): refused as a replay"};
  const auto key = req.header("idempotency-key");
  const std::string expected = webhook_signature(s.secret, *ts, req.body, key);
  if (!util::constant_time_equal(expected, *sig))
    throw HttpError{401,
                    key ? "X-Chartflow-Signature does not match \"<timestamp>.<Idempotency-Key>."
                          "<body>\" for event type " +
                              type + " (a request's Idempotency-Key is signed with it)"
                        : "X-Chartflow-Signature does not match the body for event type " + type};
  return expected.substr(7);
}

}  // namespace chartflow::http
