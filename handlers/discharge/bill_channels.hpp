// Channels that send a released patient's bill (workflows/settings/bill-delivery.yaml): a folder
// (file written atomically) or an HTTP webhook. Settings are loaded once at start-up and are
// immutable; the send functions are thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "engine/util/http_post.hpp"

namespace chartflow::handlers::discharge {

struct BillChannel {
  std::string name;            // unique; keys bill_delivery rows
  std::string type;            // "folder" or "webhook"
  std::string dir;             // folder
  std::string url;             // webhook
  util::HttpPostOptions http;  // webhook: TLS (ca_file, client certificate), auth
};

struct BillDeliverySettings {
  std::vector<BillChannel> channels;  // enabled channels only
  std::vector<std::string> warnings;  // for the start-up log (allow_insecure in use)
  // Expands ${VAR}; channels whose dir/url expand to "" are dropped. A webhook url is https://
  // (plain http:// only to a loopback host or with allow_insecure: true), with optional tls and
  // auth (handlers/common/outbound_settings.hpp). Throws std::invalid_argument naming the key
  // ("channels.webhook.url: ...") on bad values.
  static BillDeliverySettings from_json(const Json& settings);
};

// Writes <dir>/<chart_id>-invoice.txt, mode 0600, creating missing folders 0700: through a
// temporary file beside it with an unguessable name, opened O_CREAT|O_EXCL|O_NOFOLLOW, fsync'd,
// then rename(2) into place, so readers never see a partial bill and a link planted at either
// name is never followed. Returns "" on success, else the error (no content).
std::string write_bill_file(const std::filesystem::path& dir, const std::string& chart_id,
                            const std::string& text);

}  // namespace chartflow::handlers::discharge
