// Every route × every role (and no credential) against the whole application: a role the route
// allows gets past the router, any other gets 403, no credential gets 401, and refusals carry
// nothing but an error message. The matrix below is the access policy in one place: a route
// registered anywhere but missing here fails the test, so no route ships without a rule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

// "METHOD pattern" -> "public", "self" (the route checks its own credential), or the roles
// allowed besides admin (admin reaches every route that takes a role).
const std::map<std::string, std::string> kAccessMatrix = {
    {"GET /healthz", "public"},
    {"GET /readyz", "public"},
    {"GET /", "public"},
    {"GET /ui/{*path}", "public"},
    {"GET /metrics", "operator"},
    // Signed event types authenticate by their HMAC; unsigned ones need the operator role.
    {"POST /v1/events/{type}", "self(operator)"},
    {"POST /v1/events", "self(operator)"},
    {"POST /v1/alertmanager", "operator"},
    {"GET /{bucket}/{*key}", "self"},
    {"PUT /{bucket}/{*key}", "self"},
    {"POST /{bucket}/{*key}", "self"},
    {"DELETE /{bucket}/{*key}", "self"},
    {"GET /v1/runs", "operator"},
    {"GET /v1/runs/{id}", "operator"},
    {"POST /v1/runs/{id}/retry", "operator"},
    {"POST /v1/runs/{id}/cancel", "operator"},
    {"POST /v1/runs/{id}/signal/{name}", "operator"},
    {"POST /v1/runs/{id}/steps/{step}/retry", "operator"},
    {"POST /v1/runs/{id}/steps/{step}/skip", "operator"},
    {"POST /v1/runs/{id}/steps/{step}/fail", "operator"},
    {"GET /v1/steps/parked", "operator"},
    {"GET /v1/workflows", "operator"},
    {"GET /v1/logs", "operator"},
    {"PUT /v1/charts/{chart_id}", "uploader"},
    {"GET /v1/charts/{chart_id}", "reviewer,billing"},
    {"GET /v1/charts/{chart_id}/revisions/{n}", "reviewer"},
    {"GET /v1/charts/{chart_id}/ledger", "billing"},
    {"GET /v1/charts/{chart_id}/deliveries", "billing"},
    {"GET /v1/reviews", "reviewer"},
    {"POST /v1/reviews/{id}/decision", "reviewer"},
    {"GET /v1/audit", "admin"},
    {"POST /v1/auth/signin", "public"},
    {"POST /v1/auth/signout", "uploader,reviewer,billing,operator"},
    {"GET /v1/auth/session", "uploader,reviewer,billing,operator"},
};

const std::vector<std::string> kRoles = {"uploader", "reviewer", "billing", "operator", "admin"};

std::string access_text(const http::Access& a) {
  if (a.kind == http::Access::Kind::kPublic) return "public";
  if (a.kind == http::Access::Kind::kSelf) return "self";
  std::string out;
  for (auto r : a.roles) out += std::string(out.empty() ? "" : ",") + http::role_name(r);
  return out.empty() ? "admin" : out;
}

// A concrete path for a pattern: every parameter gets a harmless sample value.
std::string sample_path(const std::string& pattern) {
  static const std::map<std::string, std::string> kSamples = {{"{id}", "1"},
                                                              {"{n}", "1"},
                                                              {"{type}", "matrix.probe"},
                                                              {"{name}", "probe"},
                                                              {"{step}", "probe"},
                                                              {"{chart_id}", "nobody"},
                                                              {"{*path}", "index.html"}};
  std::string out = pattern;
  for (const auto& [param, value] : kSamples)
    for (auto pos = out.find(param); pos != std::string::npos; pos = out.find(param))
      out.replace(pos, param.size(), value);
  return out;
}

bool allowed(const std::string& rule, const std::string& role) {
  if (role == "admin") return true;
  std::set<std::string> roles;
  std::string item;
  for (char c : rule + ",") {
    if (c == ',') {
      roles.insert(item);
      item.clear();
    } else {
      item += c;
    }
  }
  return roles.count(role) > 0;
}

// A refusal says why and nothing else.
void expect_bare_error(const HttpResponse& r, const std::string& what) {
  const Json j = r.json();
  ASSERT_TRUE(j.is_object()) << what << ": " << r.body;
  EXPECT_EQ(j.size(), 1u) << what << ": " << r.body;
  EXPECT_TRUE(j.contains("error")) << what << ": " << r.body;
}

class AuthMatrixTest : public PgTest {};

TEST_F(AuthMatrixTest, EveryRouteAnswersEveryRoleAsTheMatrixSays) {
  AppServer app(dsn());
  std::map<std::string, std::string> tokens;
  for (const auto& role : kRoles)
    tokens[role] = create_token(
        dsn(), role,
        role == "reviewer" ? std::optional<std::string>("Practitioner/x") : std::nullopt);
  std::set<std::string> seen;
  for (const auto& route : app.router().routes()) {
    const std::string key = route.method + " " + route.pattern;
    seen.insert(key);
    auto rule = kAccessMatrix.find(key);
    if (rule == kAccessMatrix.end()) {
      ADD_FAILURE() << "route " << key << " (" << access_text(route.access)
                    << ") is not in the access matrix: add it to kAccessMatrix";
      continue;
    }
    // "self(roles)": the route checks its own credential (S3 signatures, webhook HMACs) and
    // requests without one need these roles.
    std::string registered = rule->second;
    std::string roles = rule->second;
    if (registered.rfind("self(", 0) == 0) {
      roles = registered.substr(5, registered.size() - 6);
      registered = "self";
    }
    EXPECT_EQ(access_text(route.access), registered) << key << " is registered with other roles";
    const std::string path = sample_path(route.pattern);
    const std::string body = route.method == "GET" ? "" : "{}";

    // A route that only takes its own credential is tested with it (S3, webhooks tests).
    if (roles == "self") continue;
    auto anonymous = app.call(route.method, path, "", body);
    if (roles == "public") {
      EXPECT_NE(anonymous.status, 401) << key;
      EXPECT_NE(anonymous.status, 403) << key;
      continue;
    }
    EXPECT_EQ(anonymous.status, 401) << key << ": " << anonymous.body;
    expect_bare_error(anonymous, key + " without a credential");
    auto forged = app.call(route.method, path, "cft_0123", body);
    EXPECT_EQ(forged.status, 401) << key << " with a wrong token: " << forged.body;

    for (const auto& role : kRoles) {
      auto r = app.call(route.method, path, tokens[role], body);
      if (allowed(roles, role)) {
        EXPECT_NE(r.status, 401) << key << " as " << role << ": " << r.body;
        // Past the router; the route itself may still refuse a reviewer another doctor's chart.
        EXPECT_THAT(r.body, ::testing::Not(HasSubstr("may not use this route")))
            << key << " as " << role;
      } else {
        EXPECT_EQ(r.status, 403) << key << " as " << role << ": " << r.body;
        expect_bare_error(r, key + " as " + role);
      }
    }
  }
  for (const auto& [key, rule] : kAccessMatrix)
    EXPECT_TRUE(seen.count(key)) << key << " is in the matrix but no longer registered";
}

}  // namespace
}  // namespace chartflow::testing
