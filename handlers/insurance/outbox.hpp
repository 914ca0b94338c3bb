// The insurer outbox (tables insurer_outbox, insurer_delivery_attempt): notifications are
// enqueued in the transaction that creates what they report (billing: ledger entries;
// discharge: the invoice) and delivered later by HTTP POST with an Idempotency-Key header, so an
// insurer sees each notification once however often delivery is retried.
// All functions run on the caller's transaction (ctx.sql()). Payloads carry ids, codes and
// amounts only: no names, no descriptions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/insurance/insurer_settings.hpp"

namespace chartflow::handlers::insurance {

struct NotificationLine {
  std::string source_ref;
  std::string code;
  std::string code_system;
  double quantity = 1;
  std::int64_t amount_cents = 0;
  std::string currency;
};

// A FHIR Claim (kind "claim": new charges; "final": the closing claim update at discharge).
Json build_claim_notification(const std::string& chart_id, const std::string& patient_ref,
                              const std::string& payor, const std::string& kind,
                              const std::string& idempotency_key,
                              const std::vector<NotificationLine>& lines);

// The idempotency key of a notification: "<scope>:<kind>:<chart_id>:<payor>", the payor part
// replaced by a hash when it is long or not plain ASCII (keys travel as an HTTP header).
std::string notification_key(const std::string& scope, const std::string& kind,
                             const std::string& chart_id, const std::string& payor);

// Inserts a pending outbox row; nullopt when a row with this key already exists.
std::optional<std::int64_t> enqueue_notification(Sql& sql, const std::string& chart_id,
                                                 const std::string& payor, const std::string& kind,
                                                 const std::string& idempotency_key,
                                                 const Json& payload);

struct DeliveryReport {
  int delivered = 0;
  int skipped = 0;
  int failed = 0;
  std::vector<std::int64_t> failed_ids;
  std::string first_error;  // status code or transport error of the first failure; no content
  Json to_json() const;
};

// POSTs every pending outbox row of `chart_id` (of `kind`, when given) to its payor's endpoint.
// Rows locked by a concurrent delivery are left to it (SKIP LOCKED). 2xx marks a row delivered;
// no endpoint marks it skipped (warning logged); anything else counts as failed and leaves it
// pending: the caller returns Retry.
DeliveryReport deliver_pending(StepContext& ctx, const InsurerSettings& settings,
                               const std::string& chart_id,
                               const std::optional<std::string>& kind = std::nullopt);

}  // namespace chartflow::handlers::insurance
