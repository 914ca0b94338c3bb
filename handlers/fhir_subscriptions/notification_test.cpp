// Reading subscription notification Bundles (issue #18 part 1): both status forms, every
// notification type, id-only and full-resource content, and malformed bodies refused with a
// message naming the element at fault.
#include "handlers/fhir_subscriptions/notification.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace chartflow::handlers::fhir_subscriptions {
namespace {

using ::testing::HasSubstr;

Json event_part(std::int64_t number, const std::string& focus) {
  Json parts = Json::array({{{"name", "event-number"}, {"valueString", std::to_string(number)}}});
  if (!focus.empty())
    parts.push_back({{"name", "focus"}, {"valueReference", {{"reference", focus}}}});
  return {{"name", "notification-event"}, {"part", parts}};
}

// An R4 backport notification: the status as Parameters, then `entries`.
Json backport(const std::string& type, std::int64_t since, Json events, Json entries = {}) {
  Json params = Json::array(
      {{{"name", "subscription"},
        {"valueReference", {{"reference", "https://ehr.example/fhir/Subscription/sub-1"}}}},
       {{"name", "topic"}, {"valueCanonical", "http://example.org/topic/encounter-start"}},
       {{"name", "status"}, {"valueCode", "active"}},
       {{"name", "type"}, {"valueCode", type}},
       {{"name", "events-since-subscription-start"}, {"valueString", std::to_string(since)}}});
  for (auto& e : events) params.push_back(e);
  Json entry = Json::array({{{"fullUrl", "urn:uuid:status-1"},
                             {"resource",
                              {{"resourceType", "Parameters"},
                               {"meta",
                                {{"profile",
                                  {"http://hl7.org/fhir/uv/subscriptions-backport/"
                                   "StructureDefinition/backport-subscription-status-r4"}}}},
                               {"parameter", params}}}}});
  if (entries.is_array())
    for (auto& e : entries) entry.push_back(e);
  return {{"resourceType", "Bundle"}, {"type", "history"}, {"entry", entry}};
}

std::string error_of(const Json& bundle) {
  try {
    parse_notification(bundle);
  } catch (const NotificationError& e) {
    return e.message;
  }
  return "(accepted)";
}

TEST(FhirNotification, ReadsAnR4BackportHandshake) {
  const auto n = parse_notification(backport("handshake", 0, Json::array()));
  EXPECT_EQ(n.form, "r4-backport");
  EXPECT_EQ(n.type, "handshake");
  EXPECT_EQ(n.subscription, "https://ehr.example/fhir/Subscription/sub-1");
  EXPECT_EQ(n.topic, "http://example.org/topic/encounter-start");
  EXPECT_EQ(n.status, "active");
  EXPECT_EQ(n.events_since_start, 0);
  EXPECT_TRUE(n.events.empty());
  EXPECT_FALSE(n.carries_events());
  EXPECT_EQ(n.content, "empty");
}

TEST(FhirNotification, ReadsAHeartbeatWithItsEventCount) {
  const auto n = parse_notification(backport("heartbeat", 7, Json::array()));
  EXPECT_EQ(n.type, "heartbeat");
  EXPECT_EQ(n.events_since_start, 7);
  EXPECT_TRUE(n.events.empty());
}

TEST(FhirNotification, ReadsAnIdOnlyEventNotification) {
  const auto n = parse_notification(
      backport("event-notification", 3,
               Json::array({event_part(2, "Encounter/enc-9"), event_part(3, "Patient/p-1")}),
               Json::array({{{"fullUrl", "https://ehr.example/fhir/Encounter/enc-9"},
                             {"request", {{"method", "PUT"}, {"url", "Encounter/enc-9"}}}}})));
  EXPECT_EQ(n.type, "event-notification");
  EXPECT_TRUE(n.carries_events());
  EXPECT_EQ(n.content, "id-only");
  ASSERT_EQ(n.events.size(), 2u);
  EXPECT_EQ(n.events[0].number, 2);
  EXPECT_EQ(n.events[0].focus, "Encounter/enc-9");
  EXPECT_EQ(n.events[1].number, 3);
  EXPECT_TRUE(n.events[0].resources.empty()) << "id-only carries no resources";
}

TEST(FhirNotification, ReadsAFullResourceEventNotification) {
  const Json encounter = {
      {"resourceType", "Encounter"}, {"id", "enc-9"}, {"status", "in-progress"}};
  const auto n = parse_notification(backport(
      "event-notification", 1,
      Json::array({event_part(1, "https://ehr.example/fhir/Encounter/enc-9")}),
      Json::array(
          {{{"fullUrl", "https://ehr.example/fhir/Encounter/enc-9"}, {"resource", encounter}}})));
  EXPECT_EQ(n.content, "full-resource");
  ASSERT_EQ(n.events.size(), 1u);
  ASSERT_EQ(n.events[0].resources.size(), 1u);
  EXPECT_EQ(n.events[0].resources[0], encounter);
}

// The focus may name its entry by the entry's fullUrl (a urn:uuid in a Bundle of new
// resources) or by a versioned reference; both resolve as a chart's references do.
TEST(FhirNotification, FocusResolvesByFullUrlAndVersionedReference) {
  const auto by_uuid = parse_notification(backport(
      "event-notification", 1, Json::array({event_part(1, "urn:uuid:enc-new")}),
      Json::array({{{"fullUrl", "urn:uuid:enc-new"},
                    {"resource", {{"resourceType", "Encounter"}, {"status", "planned"}}}}})));
  EXPECT_EQ(by_uuid.content, "full-resource");
  ASSERT_EQ(by_uuid.events.at(0).resources.size(), 1u);
  EXPECT_EQ(by_uuid.events.at(0).resources[0].at("status"), "planned");

  const auto versioned = parse_notification(
      backport("event-notification", 1, Json::array({event_part(1, "Encounter/e-9/_history/3")}),
               Json::array({{{"fullUrl", "https://ehr.example/fhir/Encounter/e-9"},
                             {"resource", {{"resourceType", "Encounter"}, {"id", "e-9"}}}}})));
  EXPECT_EQ(versioned.content, "full-resource");
}

TEST(FhirNotification, ReadsAnR4bSubscriptionStatus) {
  const Json bundle = {
      {"resourceType", "Bundle"},
      {"type", "history"},
      {"entry",
       {{{"resource",
          {{"resourceType", "SubscriptionStatus"},
           {"status", "active"},
           {"type", "event-notification"},
           {"eventsSinceSubscriptionStart", "12"},
           {"subscription", {{"reference", "Subscription/sub-2"}}},
           {"topic", "http://example.org/topic/x"},
           {"notificationEvent",
            {{{"eventNumber", "12"}, {"focus", {{"reference", "Patient/p-2"}}}}}}}}},
        {{"fullUrl", "Patient/p-2"}, {"resource", {{"resourceType", "Patient"}, {"id", "p-2"}}}}}}};
  const auto n = parse_notification(bundle);
  EXPECT_EQ(n.form, "r4b");
  EXPECT_EQ(n.events_since_start, 12);
  ASSERT_EQ(n.events.size(), 1u);
  EXPECT_EQ(n.events[0].number, 12);
  EXPECT_EQ(n.content, "full-resource");
}

TEST(FhirNotification, RefusesMalformedBodiesNamingTheProblem) {
  EXPECT_THAT(error_of(Json::array()), HasSubstr("not a FHIR Bundle"));
  EXPECT_THAT(error_of({{"resourceType", "Patient"}}), HasSubstr("not a FHIR Bundle"));
  Json wrong_type = backport("handshake", 0, Json::array());
  wrong_type["type"] = "collection";
  EXPECT_THAT(error_of(wrong_type), HasSubstr("Bundle.type must be history"));
  EXPECT_THAT(error_of({{"resourceType", "Bundle"}, {"type", "history"}}),
              HasSubstr("Bundle.entry is empty"));
  EXPECT_THAT(error_of({{"resourceType", "Bundle"},
                        {"type", "history"},
                        {"entry", {{{"resource", {{"resourceType", "Patient"}}}}}}}),
              HasSubstr("entry[0].resource must be a SubscriptionStatus"));
  EXPECT_THAT(error_of(backport("ping", 0, Json::array())),
              HasSubstr("Parameters.parameter 'type' must be handshake, heartbeat"));
  EXPECT_THAT(error_of(backport("heartbeat", -1, Json::array())),
              HasSubstr("'events-since-subscription-start' must be a non-negative integer"));
  EXPECT_THAT(error_of(backport("event-notification", 1, Json::array())),
              HasSubstr("lists no notification event"));
  Json unnumbered = {{"name", "notification-event"},
                     {"part", {{{"name", "focus"}, {"valueReference", {{"reference", "X/1"}}}}}}};
  EXPECT_THAT(error_of(backport("event-notification", 1, Json::array({unnumbered}))),
              HasSubstr("'notification-event' #0 has no 'event-number' part"));
  Json bad_number = event_part(1, "");
  bad_number["part"][0]["valueString"] = "one";
  EXPECT_THAT(error_of(backport("event-notification", 1, Json::array({bad_number}))),
              HasSubstr("'event-number' must be a non-negative integer"));
  Json no_subscription = backport("handshake", 0, Json::array());
  no_subscription["entry"][0]["resource"]["parameter"].erase(0);
  EXPECT_THAT(error_of(no_subscription), HasSubstr("names no subscription"));
}

TEST(FhirNotification, ReferenceKeysIgnoreBaseAndHistory) {
  EXPECT_EQ(reference_key("Patient/1"), "Patient/1");
  EXPECT_EQ(reference_key("https://ehr/fhir/Patient/1/_history/3"), "Patient/1");
  EXPECT_EQ(reference_key("urn:uuid:abc"), "");
  EXPECT_EQ(reference_key("https://ehr/fhir/Subscription/s-1"), "Subscription/s-1");
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
