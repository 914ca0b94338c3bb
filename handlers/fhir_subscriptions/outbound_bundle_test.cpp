// The Bundles chartflow sends its subscribers read back with chartflow's own notification
// reader (the inbound side), per content level.
#include "handlers/fhir_subscriptions/outbound_bundle.hpp"

#include <gtest/gtest.h>

#include "handlers/fhir_subscriptions/notification.hpp"
#include "handlers/fhir_subscriptions/outbound_routes.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

OutboundStatus status(const std::string& content, const std::string& type = "event-notification") {
  OutboundStatus s;
  s.subscription_id = "abc";
  s.topic_url = topic_url("review-requested");
  s.status = "active";
  s.type = type;
  s.content = content;
  s.events_since_start = 7;
  return s;
}

OutboundEvent event() {
  OutboundEvent e;
  e.number = 7;
  e.timestamp = "2026-12-04T01:00:00.000Z";
  e.focus = "Task/review-3";
  e.resource = {{"resourceType", "Task"}, {"id", "review-3"}};
  return e;
}

TEST(OutboundBundle, FullResourceCarriesTheFocus) {
  const Notification n =
      parse_notification(notification_bundle(status("full-resource"), {event()}));
  EXPECT_EQ(n.form, "r4-backport");
  EXPECT_EQ(n.type, "event-notification");
  EXPECT_EQ(n.subscription, "Subscription/abc");
  EXPECT_EQ(n.topic, "http://chartflow.example/fhir/SubscriptionTopic/review-requested");
  EXPECT_EQ(n.events_since_start, 7);
  EXPECT_EQ(n.content, "full-resource");
  ASSERT_EQ(n.events.size(), 1u);
  EXPECT_EQ(n.events[0].number, 7);
  EXPECT_EQ(n.events[0].focus, "Task/review-3");
  ASSERT_EQ(n.events[0].resources.size(), 1u);
  EXPECT_EQ(n.events[0].resources[0].at("id"), "review-3");
}

TEST(OutboundBundle, IdOnlyNamesTheFocusWithoutTheResource) {
  const Json bundle = notification_bundle(status("id-only"), {event()});
  EXPECT_EQ(bundle.dump().find("\"resourceType\":\"Task\""), std::string::npos);
  const Notification n = parse_notification(bundle);
  EXPECT_EQ(n.content, "id-only");
  EXPECT_EQ(n.events.at(0).focus, "Task/review-3");
  EXPECT_TRUE(n.events.at(0).resources.empty());
}

TEST(OutboundBundle, HandshakeHasNoEvents) {
  const Notification n =
      parse_notification(notification_bundle(status("id-only", "handshake"), {}));
  EXPECT_EQ(n.type, "handshake");
  EXPECT_TRUE(n.events.empty());
}

TEST(OutboundSubscriptionValidation, ReadsTheBackportExtensions) {
  const std::string base = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
  Json body = {
      {"resourceType", "Subscription"},
      {"criteria", topic_url("bill-issued")},
      {"_criteria",
       {{"extension",
         {{{"url", base + "backport-filter-criteria"},
           {"valueString", "Invoice?patient=Patient/p-1"}}}}}},
      {"channel",
       {{"type", "rest-hook"},
        {"endpoint", "https://subscriber.example/hook"},
        {"header", {"Authorization: Bearer x"}},
        {"extension", {{{"url", base + "backport-heartbeat-period"}, {"valueUnsignedInt", 60}}}},
        {"_payload",
         {{"extension",
           {{{"url", base + "backport-payload-content"}, {"valueCode", "full-resource"}}}}}}}}};
  const Json s = validate_subscription(body);
  EXPECT_EQ(s.at("topic"), "bill-issued");
  EXPECT_EQ(s.at("patient"), "Patient/p-1");
  EXPECT_EQ(s.at("content"), "full-resource");
  EXPECT_EQ(s.at("heartbeat_seconds"), 60);
  EXPECT_EQ(s.at("headers"), Json::array({"Authorization: Bearer x"}));
  EXPECT_FALSE(s.at("resource").at("channel").contains("header"));
  body["channel"]["endpoint"] = "http://subscriber.example/hook";
  EXPECT_THROW(validate_subscription(body), http::HttpError);
}

}  // namespace
}  // namespace chartflow::handlers::fhir_subscriptions
