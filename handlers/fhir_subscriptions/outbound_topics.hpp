// chartflow as a FHIR server's subscription side (issue #18 part 2): the SubscriptionTopics it
// publishes, and publishing an event of one. publish() runs in the transaction of whatever the
// event reports (a review's row, an invoice), so an event exists exactly when its action
// committed, and each matching subscription's event number is taken there: numbers are
// gap-free and in commit order per subscription. Delivery is fhir_deliver's (outbound_delivery).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/handler.hpp"

namespace chartflow::handlers::fhir_subscriptions {

struct Topic {
  const char* code;         // review-requested
  const char* title;        // shown in the SubscriptionTopic
  const char* resource;     // the focus's resource type
  const char* description;  // when it fires
};

const std::vector<Topic>& topics();
// "http://chartflow.example/fhir/SubscriptionTopic/<code>"
std::string topic_url(const std::string& code);
// The topic of a canonical URL (or of a bare code); nullptr for none of ours.
const Topic* find_topic(const std::string& canonical_or_code);
// The SubscriptionTopic resource (R4B shape, which the R4 backport reads as Basic-free JSON).
Json topic_resource(const Topic& t);

struct PublishedEvent {
  std::string focus;    // "Task/review-12"
  std::string patient;  // "Patient/p-1", "" when the event names none
  Json resource;        // the focus, as full-resource subscribers receive it
};

// Adds the event to every subscription of `topic` that is not off and whose patient filter
// matches, in `sql`'s transaction. Returns how many subscriptions it was added to.
int publish(Sql& sql, const std::string& topic, const PublishedEvent& event);

// The signal publish() wakes a subscription's deliverer with (fhir_deliver waits for it).
inline constexpr const char* kDeliverSignal = "fhir.subscription.event";

// review-requested / review-decided: the review's Task (table review) as the focus.
int publish_review(Sql& sql, const std::string& topic, std::int64_t review_id);
// question-opened / question-closed: the chart question (table chart_question) as a Task.
int publish_question(Sql& sql, const std::string& topic, std::int64_t question_id);
// bill-issued: the invoice (table invoice).
int publish_invoice(Sql& sql, std::int64_t invoice_id);
// run-failed: a Basic naming the run and its workflow, ids only (no chart id: a file-derived id
// can carry a name; no error text); the patient is that of the run's chart (`chart_id`, the
// run's subject), when it has one.
int publish_run_failed(Sql& sql, std::int64_t run_id, const std::string& workflow,
                       const std::string& chart_id);

}  // namespace chartflow::handlers::fhir_subscriptions
