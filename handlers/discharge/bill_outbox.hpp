// The bill's outbox (tables bill_delivery, bill_delivery_attempt). The discharge step enqueues,
// in its own transaction and once per chart and channel, the exact bytes a channel is to receive
// and their key; the bill_send step then sends what is pending, re-sending those stored bytes
// under the stored key on every attempt (never re-rendered), so a receiver that failed, or a
// crash after it answered, can cost a resend of the same bill but never a second, different one.
// Sending only reads through the step's transaction: the claim, the attempt before the call, the
// answer and the row's state after it go through the step journal (handlers/common/journal.hpp).
// Thread-safe; no state.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/discharge/bill_channels.hpp"

namespace chartflow::handlers::discharge {

// "bill:<chart_id>:<channel>": what the receiver de-duplicates by.
std::string bill_key(const std::string& chart_id, const std::string& channel);

// What `channel` receives of an invoice: a webhook the JSON {"chart_id", "invoice_id",
// "invoice", "bill_text"}, a folder the readable bill.
std::string bill_body(const BillChannel& channel, const std::string& chart_id,
                      std::int64_t invoice_id, const Json& invoice, const std::string& bill_text);

// Inserts the pending delivery of the chart's bill through `channel` (step transaction); false
// when the chart already has one for that channel, which is then left as it is.
bool enqueue_bill(Sql& sql, const std::string& chart_id, std::int64_t invoice_id,
                  const BillChannel& channel, const std::string& body);

struct BillSendReport {
  std::vector<std::string> delivered;     // channels this step delivered
  std::vector<std::string> failed;        // channels whose attempt failed (still pending)
  std::vector<std::string> in_flight;     // another step's lease, or not committed yet
  std::vector<std::string> unconfigured;  // channel gone from the settings (or its type changed)
  std::string first_error;                // transport error or HTTP status; no content
  Json to_json() const;
};

// Sends every pending delivery of the chart's bill through its channel in `settings`: the folder
// file written atomically (write_bill_file), the webhook POSTed with `Idempotency-Key`, both
// with the stored body. Each channel is claimed, attempted and recorded on its own, so one
// failing leaves the others delivered. A channel no longer configured is left pending (it goes
// out once the channel is back) with a warning. `webhook_timeout` bounds each POST. A non-empty
// `only_channel` sends that channel's delivery alone (one element of a for_each over channels).
BillSendReport send_pending_bills(StepContext& ctx, const BillDeliverySettings& settings,
                                  std::chrono::milliseconds webhook_timeout,
                                  const std::string& chart_id,
                                  const std::string& only_channel = "");

// The channels the chart's bill has a delivery on, sent or not, in the order they were queued:
// what send_bill fans out over. A delivered one costs its element a read; listing it keeps each
// channel's element index the same in every run of the chart (`send_bill[1]` is the webhook
// whatever was delivered meanwhile).
std::vector<std::string> bill_delivery_channels(Sql& sql, const std::string& chart_id);

}  // namespace chartflow::handlers::discharge
