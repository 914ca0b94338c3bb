// Handler `doctor_review`: assigns a review of the uploaded chart to the patient's primary care
// doctor (see doctor_lookup.hpp; a configurable fallback queue when none is found), records it
// in table review and waits, durably, for the signal "review" that POST
// /v1/reviews/{id}/decision sends. When the deadline passes first, the review is escalated
// (reassigned to the escalation queue) and the wait starts again.
// Step settings (all optional): deadline ("48h"), escalation_deadline (default: deadline),
// fallback_queue ("queue:unassigned-reviews"), escalation_queue ("queue:escalated-reviews").
// Output: {"review_id", "decision", "assignee"}. Stateless; safe to share between workers.
#pragma once

#include <chrono>
#include <string>

#include "engine/handler.hpp"

namespace chartflow::handlers::doctor_review {

inline constexpr std::chrono::milliseconds kDefaultReviewDeadline = std::chrono::hours(48);
inline constexpr const char* kDefaultFallbackQueue = "queue:unassigned-reviews";
inline constexpr const char* kDefaultEscalationQueue = "queue:escalated-reviews";
inline constexpr const char* kReviewSignal = "review";

struct ReviewOptions {
  std::chrono::milliseconds deadline = kDefaultReviewDeadline;
  std::chrono::milliseconds escalation_deadline = kDefaultReviewDeadline;
  std::string fallback_queue = kDefaultFallbackQueue;
  std::string escalation_queue = kDefaultEscalationQueue;

  // From a settings object ({"deadline": "48h", ...}); throws std::invalid_argument.
  static ReviewOptions from_json(const Json& settings);
};

class DoctorReviewHandler : public Handler {
 public:
  StepOutcome run(StepContext& ctx) override;
  void validate(const Json& config) const override;
  // Only POST /v1/reviews/{id}/decision decides a review: it records the decision (decider taken
  // from the credential, audited) before it signals the run.
  std::vector<OwnedSignal> owned_signals() const override {
    return {{kReviewSignal, "POST /v1/reviews/{id}/decision"}};
  }
};

}  // namespace chartflow::handlers::doctor_review
