// Channels that send a released patient's bill (workflows/settings/bill-delivery.yaml): a folder
// (file written atomically) or an HTTP webhook. Settings are loaded once at start-up and are
// immutable; the send functions are thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::discharge {

struct BillChannel {
  std::string name;  // unique; keys bill_delivery rows
  std::string type;  // "folder" or "webhook"
  std::string dir;   // folder
  std::string url;   // webhook
};

struct BillDeliverySettings {
  std::vector<BillChannel> channels;  // enabled channels only
  // Expands ${VAR}; channels whose dir/url expand to "" are dropped. Throws
  // std::invalid_argument naming the channel on bad values.
  static BillDeliverySettings from_json(const Json& settings);
};

// Writes <dir>/<chart_id>-invoice.txt via a temporary file and rename(2), so readers never see
// a partial bill. Returns "" on success, else the error (no content).
std::string write_bill_file(const std::filesystem::path& dir, const std::string& chart_id,
                            const std::string& text);

}  // namespace chartflow::handlers::discharge
