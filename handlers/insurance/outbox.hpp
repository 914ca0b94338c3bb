// The insurer outbox (tables insurer_outbox, insurer_delivery_attempt): notifications are
// enqueued in the transaction that creates what they report (billing: ledger entries;
// discharge: the invoice) and delivered by a later step by HTTP POST with an Idempotency-Key
// header, so an insurer sees each notification once however often delivery is retried.
// Enqueueing writes through the step's transaction. Delivery only reads there: every write of a
// delivery (the claim, the attempt before the call, its answer and the row's state after it) goes
// through the step journal and is committed at once, so neither a retry nor a crash after the
// insurer answered loses what the database knows went out. Payloads carry ids, codes and amounts
// only: no names, no descriptions.
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
  int in_flight = 0;  // being sent by another step right now (its lease), or not yet committed
  std::vector<std::int64_t> failed_ids;
  std::string first_error;  // status code or transport error of the first failure; no content
  Json to_json() const;
};

// POSTs every pending outbox row of `chart_id` (of `kind`, when given) to its payor's endpoint.
// Each row is first claimed through the journal (a lease: a row another step is sending is left
// to it and counted in_flight; a row this step's earlier attempt claimed is taken over), with an
// attempt recorded as started; after the call the attempt is recorded as answered and the row
// delivered (2xx) or left pending with its error. No endpoint marks a row skipped (warning
// logged). The caller returns Retry when `failed` > 0. Never call it in the step that enqueued
// the rows: the journal does not see the step's uncommitted rows.
DeliveryReport deliver_pending(StepContext& ctx, const InsurerSettings& settings,
                               const std::string& chart_id,
                               const std::optional<std::string>& kind = std::nullopt);

}  // namespace chartflow::handlers::insurance
