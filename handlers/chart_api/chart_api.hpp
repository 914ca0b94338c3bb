// Read and decision queries behind the chart HTTP API (GET /v1/charts/{id}, GET
// /v1/charts/{id}/revisions/{n}, GET /v1/reviews, POST /v1/reviews/{id}/decision, ledger and
// insurer deliveries). Each takes the caller's Sql (a transaction of its choosing) and returns
// JSON ready to send; timestamps are ISO 8601 UTC, amounts JSON numbers in the entry currency.
// Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::handlers {

inline constexpr int kDefaultReviewListLimit = 100;
inline constexpr int kMaxReviewListLimit = 1000;

// {chart_id, patient_ref, latest_revision, created_at, updated_at,
//  patient: {name, birth_date} | null   (the latest revision's Patient; either may be null),
//  revisions: [{revision, content_hash, source, uploaded_by, based_on_revision, created_at}]
//             (the route adds uploaded_by_name: the credential's name, or null),
//  open_questions: [{id, rule_id, resource_ref, question, severity, opened_revision, created_at}],
//  review: {id, run_id, step, revision, assignee, assignee_name, status, due_at, escalations,
//           decision, comment, decided_at, created_at} | null   (the most recent review),
//  bill: {invoice_id, status, total, currency, created_at,
//         deliveries: [channel...] (the channels that took the bill)} | null,
//  ledger_total: number, ledger_entries: n,
//  ledger_currency: the entries' currency, null when there are none or they mix currencies}
// nullopt when the chart does not exist. The lead adds "runs".
std::optional<Json> get_chart(Sql& sql, const std::string& chart_id);

// The Bundle of revision n, as uploaded or as written back (the stored text, byte for byte);
// nullopt when absent.
std::optional<std::string> get_revision(Sql& sql, const std::string& chart_id, int revision);

// {"reviews": [{id, chart_id, revision, run_id, step, assignee, original_assignee,
//  assignee_name (the practitioner's name from the chart while the review is assigned to them,
//  else null), status, due_at, escalations, created_at, decision,
//  summary: {patient, encounter}}]}, newest first.
// Empty filters match all; limit is clamped to 1..kMaxReviewListLimit.
Json list_reviews(Sql& sql, const std::optional<std::string>& status,
                  const std::optional<std::string>& assignee, int limit = kDefaultReviewListLimit);

// Whether a review of this chart is (now) assigned to `assignee`: what lets a reviewer see it.
bool chart_assigned_to(Sql& sql, const std::string& chart_id, const std::string& assignee);

// One review (same fields as list_reviews plus comment, decided_by, decided_at, task), or nullopt.
std::optional<Json> get_review(Sql& sql, std::int64_t review_id);

struct DecisionResult {
  enum class Status { kOk, kNotFound, kConflict, kBadRequest };
  Status status = Status::kOk;
  std::string message;  // for 4xx bodies
  std::int64_t run_id = 0;
  std::string step;
  std::string chart_id;
  // The payload to send with signal "review" to (run_id, step) on kOk:
  // {"decision", "comment", "review_id"}.
  Json signal_payload;
};

// Records a decision ("approve" | "reject") on a pending review. kNotFound: unknown id;
// kConflict: already decided; kBadRequest: other decision text or comment over 10000 bytes.
// On kOk the caller signals (run_id, step) with signal "review" and signal_payload, in the same
// transaction when it can.
DecisionResult decide_review(Sql& sql, std::int64_t review_id, const std::string& decision,
                             const std::optional<std::string>& comment,
                             const std::string& decided_by);

// {"chart_id", "entries": [{id, revision, source_ref, kind, code, code_system, description,
//  quantity, unit, amount, currency, amount_source, payor, created_at}], "total", "count"}
Json list_ledger(Sql& sql, const std::string& chart_id);

// {"chart_id", "outbox": [{id, payor, kind, idempotency_key, status, attempts, last_error,
//  delivered_at, created_at, attempts_detail: [...]}],
//  "bill_deliveries": [{id, channel, channel_type, invoice_id, idempotency_key, status
//  (pending | delivered), attempts, last_error, delivered_at, created_at, attempts_detail}]}
// attempts_detail: every attempt at the outside call, [{attempt, status_code, error,
// started_at, answered_at}]; answered_at null = the process died during the call, so whether
// it went out is unknown (the resend carries the same bytes and key). Never the bill's content.
Json list_deliveries(Sql& sql, const std::string& chart_id);

// {"chart_id", "questions": [...]} all questions (open and closed), newest first.
Json list_questions(Sql& sql, const std::string& chart_id);

}  // namespace chartflow::handlers
