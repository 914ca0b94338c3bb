#include "auth/audit.hpp"

#include <gtest/gtest.h>

namespace chartflow::auth {
namespace {

TEST(AuditFhirTest, RecordsBecomeAuditEventsWithActionOutcomeAgentAndEntity) {
  const Json events = Json::array({{{"id", 7},
                                    {"at", "2026-11-27T10:00:00.000001Z"},
                                    {"actor", "token:3"},
                                    {"actor_name", "tablet-3"},
                                    {"role", "uploader"},
                                    {"action", "chart.upload"},
                                    {"resource_type", "chart"},
                                    {"resource_id", "chart-a"},
                                    {"remote", "10.0.0.5"},
                                    {"outcome", "success"}},
                                   {{"id", 8},
                                    {"at", "2026-11-27T10:00:01.000000Z"},
                                    {"actor", "token:4"},
                                    {"actor_name", nullptr},
                                    {"role", "operator"},
                                    {"action", "access.denied"},
                                    {"resource_type", nullptr},
                                    {"resource_id", nullptr},
                                    {"remote", nullptr},
                                    {"outcome", "denied"}}});
  const Json b = to_fhir_bundle(events);
  EXPECT_EQ(b.at("resourceType"), "Bundle");
  EXPECT_EQ(b.at("type"), "searchset");
  ASSERT_EQ(b.at("entry").size(), 2u);
  const Json& upload = b.at("entry")[0].at("resource");
  EXPECT_EQ(upload.at("resourceType"), "AuditEvent");
  EXPECT_EQ(upload.at("id"), "7");
  EXPECT_EQ(upload.at("action"), "C");
  EXPECT_EQ(upload.at("recorded"), "2026-11-27T10:00:00.000001Z");
  EXPECT_EQ(upload.at("outcome"), "0");
  EXPECT_EQ(upload.at("agent")[0].at("who").at("identifier").at("value"), "token:3");
  EXPECT_EQ(upload.at("agent")[0].at("who").at("display"), "tablet-3");
  EXPECT_EQ(upload.at("agent")[0].at("role")[0].at("text"), "uploader");
  EXPECT_EQ(upload.at("agent")[0].at("network").at("address"), "10.0.0.5");
  EXPECT_EQ(upload.at("entity")[0].at("what").at("identifier").at("value"), "chart-a");
  EXPECT_EQ(upload.at("subtype")[0].at("code"), "chart.upload");
  const Json& denied = b.at("entry")[1].at("resource");
  EXPECT_EQ(denied.at("action"), "E");
  EXPECT_EQ(denied.at("outcome"), "4");
  EXPECT_FALSE(denied.contains("entity"));
  EXPECT_FALSE(denied.at("agent")[0].contains("network"));
}

}  // namespace
}  // namespace chartflow::auth
