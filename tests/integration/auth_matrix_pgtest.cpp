// Every route × every role (and no credential) against the whole application as `chartflow
// serve` registers it (app::add_http_routes): a role the route allows gets the route's success
// status for a valid request, any other gets 403, no credential 401, and refusals carry nothing
// but an error message. Routes that check their own credential are called with it: the events
// routes with an HMAC signature, the S3 routes with SigV4 requests signed by an access key of
// each role. The tables below are the access policy of docs/configuration.md ("HTTP API") and
// docs/security.md ("S3") in one place: a registered route missing from them, or without a valid
// request to make, fails the test, so no route ships without a rule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "http/webhook_auth.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/s3_signer.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

// "METHOD pattern" -> "public", "self" (the route checks its own credential), "self(roles)" (its
// own credential, or else these roles), or the roles allowed besides admin (admin reaches every
// route that takes a role).
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
    {"POST /v1/workflows/{name}/pause", "operator"},
    {"POST /v1/workflows/{name}/resume", "operator"},
    {"POST /v1/workflows/{name}/migrate", "operator"},
    {"POST /v1/reprocess", "operator"},
    {"GET /v1/reprocess", "operator"},
    {"GET /v1/reprocess/{id}", "operator"},
    {"POST /v1/reprocess/{id}/cancel", "operator"},
    {"POST /v1/runs/{id}/pause", "operator"},
    {"POST /v1/runs/{id}/resume", "operator"},
    {"GET /v1/workflows", "operator"},
    // Retention: reading it is an operator's; expiring and legal holds an admin's.
    {"GET /v1/retention", "operator"},
    {"POST /v1/retention/expire", "admin"},
    {"GET /v1/holds", "operator"},
    {"POST /v1/holds", "admin"},
    {"DELETE /v1/holds/{subject}", "admin"},
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
    // A FHIR server's notification proves itself with its subscription's secret (docs/fhir.md).
    {"POST /fhir/subscriptions/{name}", "self"},
    {"GET /fhir/subscriptions/{name}/$status", "operator"},
    // Outbound subscriptions: topics are no patient data; a subscription opens a channel that
    // discloses some, so only admin makes or ends one.
    {"GET /fhir/SubscriptionTopic", "uploader,reviewer,billing,operator"},
    {"GET /fhir/SubscriptionTopic/{id}", "uploader,reviewer,billing,operator"},
    {"POST /fhir/Subscription", "admin"},
    {"GET /fhir/Subscription", "operator"},
    {"GET /fhir/Subscription/{id}", "operator"},
    {"GET /fhir/Subscription/{id}/$status", "operator"},
    {"DELETE /fhir/Subscription/{id}", "admin"},
};

const std::vector<std::string> kRoles = {"uploader", "reviewer", "billing", "operator", "admin"};

const std::string kChart = std::string(CHARTFLOW_SOURCE_DIR) +
                           "/tests/data/charts/"
                           "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-"
                           "8b7f6202.json";
const std::string kS3Secret = "test-secret-of-sixteen-plus";
const std::string kSignedType = "matrix.signed";
const std::string kWebhookSecret = "matrix-webhook-secret-of-32-bytes";
const std::string kFhirSecret = "matrix-fhir-subscription-secret";
// A handshake of the FHIR subscription "matrix" (R4 backport form).
const std::string kFhirHandshake = R"({"resourceType": "Bundle", "type": "history", "entry": [
  {"resource": {"resourceType": "Parameters", "parameter": [
    {"name": "subscription", "valueReference": {"reference": "Subscription/m"}},
    {"name": "type", "valueCode": "handshake"},
    {"name": "events-since-subscription-start", "valueString": "0"}]}}]})";

// Runs in the states the run and step commands act on, from the engine's own handlers.
constexpr const char* kFailing = R"(name: matrix-failing
on: [{ event: matrix.fail }]
steps:
  boom: { handler: fail, input: { permanent: true }, retry: { max_attempts: 1 } }
)";
constexpr const char* kWaiting = R"(name: matrix-waiting
on: [{ event: matrix.wait }]
steps:
  hold: { handler: wait_signal, input: { signal: probe } }
)";
constexpr const char* kParking = R"(name: matrix-parking
on: [{ event: matrix.park }]
on_exhausted: park
steps:
  stuck: { handler: fail, retry: { max_attempts: 1 } }
)";

// Workflows of their own for the pause and resume probes (one per allowed role).
constexpr const char* kPausableA = R"(name: matrix-pause-a
on: [{ event: matrix.pause.a }]
steps:
  only: { handler: noop }
)";
constexpr const char* kPausableB = R"(name: matrix-pause-b
on: [{ event: matrix.pause.b }]
steps:
  only: { handler: noop }
)";

// Two versions of one workflow for the migrate probe (a dry run: the same answer every time).
constexpr const char* kMovingV1 = R"(name: matrix-moving
on: [{ event: matrix.move }]
steps:
  only: { handler: noop }
)";
constexpr const char* kMovingV2 = R"(name: matrix-moving
on: [{ event: matrix.move }]
steps:
  only: { handler: noop }
  more: { handler: noop, needs: [only] }
)";

std::string access_text(const http::Access& a) {
  if (a.kind == http::Access::Kind::kPublic) return "public";
  if (a.kind == http::Access::Kind::kSelf) return "self";
  std::string out;
  for (auto r : a.roles) out += std::string(out.empty() ? "" : ",") + http::role_name(r);
  return out.empty() ? "admin" : out;
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

// A valid request of a route and the status the route documents for it.
struct Call {
  explicit Call(std::string t, std::string b = "", std::map<std::string, std::string> h = {},
                int s = 200)
      : target(std::move(t)), body(std::move(b)), headers(std::move(h)), success(s) {}
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;
  int success;
};
// `fresh`: the caller is expected to succeed, and success changes what the request names (a run
// retried, a review decided), so the request gets a resource of its own.
using Probe = std::function<Call(bool fresh)>;

// One S3 request: which keys' roles may make it and what they get.
struct S3Case {
  S3Case(std::string m, std::function<std::string(const std::string&)> t, std::string b,
         std::string a, int s = 200)
      : method(std::move(m)),
        target(std::move(t)),
        body(std::move(b)),
        allowed(std::move(a)),
        success(s) {}
  std::string method;
  std::function<std::string(const std::string& role)> target;
  std::string body;
  std::string allowed;  // roles besides admin, as in kAccessMatrix
  int success;
};

std::string s3_key_of(const std::string& role) {
  std::string upper;
  for (char c : role) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return "AKMATRIX" + upper;
}

std::shared_ptr<http::S3Config> s3_config(const std::string& assignee) {
  auto s3 = std::make_shared<http::S3Config>();
  s3->buckets["charts"] = true;
  s3->buckets["scans"] = false;
  for (const auto& role : kRoles)
    s3->keys[s3_key_of(role)] = {
        kS3Secret, *http::parse_role(role),
        role == "reviewer" ? std::optional<std::string>(assignee) : std::nullopt};
  return s3;
}

class AuthMatrixTest : public PgTest {
 protected:
  // Starts `count` runs of `type` (one event each, keyed `name`-i) and waits until each is
  // `status`.
  std::deque<std::int64_t> runs_in(AppServer& app, const std::string& type, const std::string& name,
                                   int count, const std::string& status) {
    std::deque<std::int64_t> ids;
    for (int i = 0; i < count; ++i) {
      auto r = app.call("POST", "/v1/events/" + type, tokens_["operator"], "{}",
                        {{"Idempotency-Key", name + "-" + std::to_string(i)}});
      EXPECT_EQ(r.status, 202) << r.body;
      const Json j = r.json();
      if (!j.is_object() || j.value("runs", Json::array()).size() != 1) {
        ADD_FAILURE() << type << " started no run: " << r.body;
        continue;
      }
      ids.push_back(j.at("runs").at(0).get<std::int64_t>());
    }
    for (auto id : ids)
      EXPECT_TRUE(wait_until([&] {
        return scalar("SELECT status FROM workflow_run WHERE id = " + std::to_string(id)) == status;
      })) << "run "
          << id << " of " << type << " never became " << status;
    return ids;
  }

  // The next resource of a pool: taken when the call will consume it, else only named.
  static std::string next(std::deque<std::int64_t>& pool, bool fresh, const std::string& what) {
    if (pool.empty()) {
      ADD_FAILURE() << "the fixture made too few " << what;
      return "0";
    }
    const auto id = pool.front();
    if (fresh) pool.pop_front();
    return std::to_string(id);
  }

  std::map<std::string, std::string> tokens_;
};

TEST_F(AuthMatrixTest, EveryRouteAnswersEveryRoleAsTheMatrixSays) {
  const std::string chart = read_file(kChart);
  for (const auto& role : kRoles)
    if (role != "reviewer") tokens_[role] = create_token(dsn(), role);

  // Two charts with reviews: one read, both decided (by their reviewer and by an admin). First
  // learn whom the review goes to, so the reviewer token and access key can be that doctor.
  std::string assignee;
  {
    AppServer first(dsn());
    for (const char* id : {"matrix-a", "matrix-b"}) {
      auto put = first.call("PUT", std::string("/v1/charts/") + id, tokens_["uploader"], chart,
                            {{"Content-Type", "application/fhir+json"}});
      ASSERT_EQ(put.status, 202) << put.body;
    }
    ASSERT_TRUE(wait_until([&] {
      return scalar(
                 "SELECT count(*) FROM review WHERE chart_id IN ('matrix-a', 'matrix-b') "
                 "AND status = 'pending'") == "2";
    }));
    assignee = scalar("SELECT assignee FROM review WHERE chart_id = 'matrix-a'");
  }
  ASSERT_FALSE(assignee.empty());
  tokens_["reviewer"] = create_token(dsn(), "reviewer", assignee);

  app::HttpRouteOptions options;
  auto secrets = std::make_shared<http::WebhookSecrets>();
  secrets->add(kSignedType, {kWebhookSecret});
  options.webhook_secrets = secrets;
  TempDir fhir_dir("cf-matrix-fhir");
  std::ofstream(fhir_dir.path() / "secret") << kFhirSecret;
  handlers::ChartHandlerOptions with_fhir;
  with_fhir.fhir_subscriptions = Json{
      {"subscriptions", Json::array({{{"name", "matrix"},
                                      {"secret_file", (fhir_dir.path() / "secret").string()}}})}};
  AppServer app(dsn(), test_server_settings(), s3_config(assignee), options, with_fhir);
  app.publish_workflows({kFailing, kWaiting, kParking, kPausableA, kPausableB, kMovingV1});
  app.publish_workflows({kMovingV2});

  // A finished reprocess job: read by its probe, and a cancel of it is refused (409) only once
  // access is granted.
  const std::string reprocess_job = scalar(
      "INSERT INTO reprocess_job (workflow, selection, batch_size, created_by, status, "
      "finished_at) VALUES ('matrix', '{}', 1, 'matrix', 'done', now()) RETURNING id");
  auto failed = runs_in(app, "matrix.fail", "retry", 2, "failed");
  auto to_cancel = runs_in(app, "matrix.wait", "cancel", 2, "waiting");
  auto to_signal = runs_in(app, "matrix.wait", "signal", 2, "waiting");
  auto to_pause = runs_in(app, "matrix.wait", "pause", 2, "waiting");
  std::deque<std::int64_t> to_resume = to_pause;  // paused by the pause probes first
  std::deque<std::string> workflows_to_pause = {"matrix-pause-a", "matrix-pause-b"};
  std::deque<std::string> workflows_to_resume = workflows_to_pause;
  auto next_workflow = [](std::deque<std::string>& pool, bool fresh) {
    if (pool.empty()) {
      ADD_FAILURE() << "the fixture made too few pausable workflows";
      return std::string("none");
    }
    auto name = pool.front();
    if (fresh) pool.pop_front();
    return name;
  };
  std::map<std::string, std::deque<std::int64_t>> parked;
  {
    auto all = runs_in(app, "matrix.park", "park", 6, "parked");
    for (const char* action : {"retry", "skip", "fail"})
      for (int i = 0; i < 2 && !all.empty(); ++i) {
        parked[action].push_back(all.front());
        all.pop_front();
      }
  }
  std::deque<std::int64_t> reviews;
  for (const auto& id : {"matrix-a", "matrix-b"})
    reviews.push_back(
        std::stoll(scalar(std::string("SELECT id FROM review WHERE chart_id = '") + id + "'")));

  // S3 objects for the S3 routes to read and delete: a chart (its review goes to the same
  // doctor), a scan, and one scan per role to delete.
  auto s3 = [&](const std::string& role, const std::string& method, const std::string& target,
                const std::string& body = "") {
    return s3_call(app.port(), s3_key_of(role), kS3Secret, method, target, body);
  };
  ASSERT_EQ(s3("uploader", "PUT", "/charts/in/a.json", chart).status, 200);
  ASSERT_EQ(s3("uploader", "PUT", "/scans/a.pdf", "%PDF scan").status, 200);
  for (const auto& role : kRoles)
    ASSERT_EQ(s3("uploader", "PUT", "/scans/delete-" + role + ".pdf", "%PDF").status, 200);
  ASSERT_TRUE(wait_until([&] {
    return scalar(
               "SELECT count(*) FROM review WHERE chart_id = (SELECT subject FROM s3_object "
               "WHERE bucket = 'charts' AND key = 'in/a.json')") != "0";
  }));

  int uploads = 0;
  int alerts = 0;
  int holds = 0;
  const std::string reason = R"({"reason": "matrix probe"})";
  // Outbound FHIR subscriptions to read, or (fresh) to delete.
  int out_subscriptions = 0;
  auto out_subscription = [&](bool fresh) {
    if (fresh || out_subscriptions == 0) {
      scalar(
          "INSERT INTO fhir_out_subscription (id, topic, endpoint, content, resource) VALUES "
          "('matrix-" +
          std::to_string(++out_subscriptions) +
          "', 'review-requested', 'https://subscriber.invalid/hook', 'id-only', '{}')");
    }
    return "/fhir/Subscription/matrix-" + std::to_string(out_subscriptions);
  };
  const std::string out_body =
      R"({"resourceType": "Subscription", "status": "requested", "reason": "matrix",
          "criteria": "http://chartflow.example/fhir/SubscriptionTopic/review-requested",
          "channel": {"type": "rest-hook", "endpoint": "https://subscriber.invalid/hook"}})";
  const std::map<std::string, Probe> probes = {
      {"GET /healthz", [](bool) { return Call{"/healthz"}; }},
      {"GET /readyz", [](bool) { return Call{"/readyz"}; }},
      {"GET /", [](bool) { return Call{"/"}; }},
      {"GET /ui/{*path}", [](bool) { return Call{"/ui/index.html"}; }},
      {"GET /metrics", [](bool) { return Call{"/metrics"}; }},
      {"POST /v1/events/{type}",
       [](bool) {
         return Call{"/v1/events/matrix.probe", "{}", {}, 202};
       }},
      {"POST /v1/events",
       [](bool) {
         return Call{
             "/v1/events", R"({"events": [{"type": "matrix.probe", "body": {}}]})", {}, 202};
       }},
      {"POST /v1/alertmanager",
       [&](bool) {
         const Json alert = {{"status", "firing"},
                             {"labels", {{"alertname", "MatrixProbe"}}},
                             {"startsAt", "2026-01-01T00:00:00Z"},
                             {"fingerprint", "matrix-" + std::to_string(++alerts)}};
         return Call{"/v1/alertmanager",
                     Json{{"version", "4"}, {"alerts", Json::array({alert})}}.dump(),
                     {},
                     202};
       }},
      {"GET /v1/runs", [](bool) { return Call{"/v1/runs"}; }},
      {"GET /v1/runs/{id}", [&](bool) { return Call{"/v1/runs/" + next(failed, false, "runs")}; }},
      {"POST /v1/runs/{id}/retry",
       [&](bool fresh) {
         return Call{"/v1/runs/" + next(failed, fresh, "failed runs") + "/retry", "", {}, 202};
       }},
      {"POST /v1/runs/{id}/cancel",
       [&](bool fresh) {
         return Call{"/v1/runs/" + next(to_cancel, fresh, "waiting runs") + "/cancel", "", {}, 202};
       }},
      {"POST /v1/runs/{id}/signal/{name}",
       [&](bool fresh) {
         return Call{
             "/v1/runs/" + next(to_signal, fresh, "waiting runs") + "/signal/probe", "{}", {}, 202};
       }},
      {"POST /v1/runs/{id}/steps/{step}/retry",
       [&](bool fresh) {
         return Call{
             "/v1/runs/" + next(parked["retry"], fresh, "parked runs") + "/steps/stuck/retry",
             reason,
             {},
             202};
       }},
      {"POST /v1/runs/{id}/steps/{step}/skip",
       [&](bool fresh) {
         return Call{"/v1/runs/" + next(parked["skip"], fresh, "parked runs") + "/steps/stuck/skip",
                     reason,
                     {},
                     202};
       }},
      {"POST /v1/runs/{id}/steps/{step}/fail",
       [&](bool fresh) {
         return Call{"/v1/runs/" + next(parked["fail"], fresh, "parked runs") + "/steps/stuck/fail",
                     reason,
                     {},
                     202};
       }},
      {"GET /v1/steps/parked", [](bool) { return Call{"/v1/steps/parked"}; }},
      {"GET /v1/retention", [](bool) { return Call{"/v1/retention"}; }},
      {"POST /v1/retention/expire",
       [](bool) {
         return Call{"/v1/retention/expire", R"({"dry_run": true})"};
       }},
      {"GET /v1/holds", [](bool) { return Call{"/v1/holds"}; }},
      {"POST /v1/holds",
       [&](bool) {
         return Call{
             "/v1/holds",
             Json{{"subject", "matrix-hold-" + std::to_string(++holds)}, {"reason", "matrix probe"}}
                 .dump(),
             {},
             201};
       }},
      {"DELETE /v1/holds/{subject}",
       [&](bool fresh) {
         const std::string subject = "matrix-release-" + std::to_string(++holds);
         if (fresh)
           scalar("INSERT INTO retention_hold (subject, reason, held_by) VALUES ('" + subject +
                  "', 'matrix', 'test') RETURNING 1");
         return Call{"/v1/holds/" + subject, reason};
       }},
      {"POST /v1/workflows/{name}/pause",
       [&](bool fresh) {
         return Call{"/v1/workflows/" + next_workflow(workflows_to_pause, fresh) + "/pause",
                     reason,
                     {},
                     202};
       }},
      {"POST /v1/workflows/{name}/resume",
       [&](bool fresh) {
         return Call{
             "/v1/workflows/" + next_workflow(workflows_to_resume, fresh) + "/resume", "", {}, 202};
       }},
      {"POST /v1/workflows/{name}/migrate",
       [](bool) {
         return Call{"/v1/workflows/matrix-moving/migrate",
                     R"({"from": 1, "to": 2, "dry_run": true})"};
       }},
      {"POST /v1/reprocess",
       [](bool) {
         return Call{"/v1/reprocess", R"({"workflow": "chart-update", "dry_run": true})"};
       }},
      {"GET /v1/reprocess", [](bool) { return Call{"/v1/reprocess"}; }},
      {"GET /v1/reprocess/{id}", [&](bool) { return Call{"/v1/reprocess/" + reprocess_job}; }},
      {"POST /v1/reprocess/{id}/cancel",
       [&](bool) {
         return Call{"/v1/reprocess/" + reprocess_job + "/cancel", "", {}, 409};
       }},
      {"POST /v1/runs/{id}/pause",
       [&](bool fresh) {
         return Call{
             "/v1/runs/" + next(to_pause, fresh, "runs to pause") + "/pause", reason, {}, 202};
       }},
      {"POST /v1/runs/{id}/resume",
       [&](bool fresh) {
         return Call{"/v1/runs/" + next(to_resume, fresh, "paused runs") + "/resume", "", {}, 202};
       }},
      {"GET /v1/workflows", [](bool) { return Call{"/v1/workflows"}; }},
      {"GET /v1/logs", [](bool) { return Call{"/v1/logs"}; }},
      {"PUT /v1/charts/{chart_id}",
       [&](bool) {
         return Call{"/v1/charts/matrix-upload-" + std::to_string(++uploads),
                     chart,
                     {{"Content-Type", "application/fhir+json"}},
                     202};
       }},
      {"GET /v1/charts/{chart_id}", [](bool) { return Call{"/v1/charts/matrix-a"}; }},
      {"GET /v1/charts/{chart_id}/revisions/{n}",
       [](bool) { return Call{"/v1/charts/matrix-a/revisions/1"}; }},
      {"GET /v1/charts/{chart_id}/ledger", [](bool) { return Call{"/v1/charts/matrix-a/ledger"}; }},
      {"GET /v1/charts/{chart_id}/deliveries",
       [](bool) { return Call{"/v1/charts/matrix-a/deliveries"}; }},
      {"GET /v1/reviews", [](bool) { return Call{"/v1/reviews"}; }},
      // The reason is what an admin deciding in the doctor's place must give; the doctor may.
      {"POST /v1/reviews/{id}/decision",
       [&](bool fresh) {
         return Call{"/v1/reviews/" + next(reviews, fresh, "reviews") + "/decision",
                     R"({"decision": "approve", "reason": "matrix probe"})"};
       }},
      {"GET /v1/audit", [](bool) { return Call{"/v1/audit"}; }},
      {"POST /v1/auth/signin",
       [&](bool) {
         return Call{"/v1/auth/signin", Json{{"token", tokens_["uploader"]}}.dump()};
       }},
      {"POST /v1/auth/signout", [](bool) { return Call{"/v1/auth/signout"}; }},
      {"GET /v1/auth/session", [](bool) { return Call{"/v1/auth/session"}; }},
      {"GET /fhir/subscriptions/{name}/$status",
       [](bool) { return Call{"/fhir/subscriptions/matrix/$status"}; }},
      {"GET /fhir/SubscriptionTopic", [](bool) { return Call{"/fhir/SubscriptionTopic"}; }},
      {"GET /fhir/SubscriptionTopic/{id}",
       [](bool) { return Call{"/fhir/SubscriptionTopic/review-requested"}; }},
      {"POST /fhir/Subscription",
       [&](bool) {
         return Call{
             "/fhir/Subscription", out_body, {{"Content-Type", "application/fhir+json"}}, 201};
       }},
      {"GET /fhir/Subscription", [](bool) { return Call{"/fhir/Subscription"}; }},
      {"GET /fhir/Subscription/{id}", [&](bool) { return Call{out_subscription(false)}; }},
      {"GET /fhir/Subscription/{id}/$status",
       [&](bool) { return Call{out_subscription(false) + "/$status"}; }},
      {"DELETE /fhir/Subscription/{id}", [&](bool fresh) { return Call{out_subscription(fresh)}; }},
  };

  // The S3 door (docs/security.md, "S3"): chart buckets as the chart API (puts by uploaders,
  // object reads by the assigned reviewer, listings and deletes by admin only); other buckets
  // take puts from uploaders and operators, reads and listings from reviewers and operators,
  // deletes from operators.
  auto fixed = [](const std::string& target) {
    return [target](const std::string&) { return target; };
  };
  const std::map<std::string, std::vector<S3Case>> s3_cases = {
      {"GET /{bucket}/{*key}",
       {{"GET", fixed("/charts/in/a.json"), "", "reviewer"},
        {"GET", fixed("/charts?list-type=2"), "", ""},
        {"GET", fixed("/scans/a.pdf"), "", "reviewer,operator"},
        {"GET", fixed("/scans?list-type=2"), "", "reviewer,operator"}}},
      {"PUT /{bucket}/{*key}",
       {{"PUT", [](const std::string& r) { return "/charts/put/" + r + ".json"; }, chart,
         "uploader"},
        {"PUT", [](const std::string& r) { return "/scans/put/" + r + ".pdf"; }, "%PDF",
         "uploader,operator"}}},
      {"POST /{bucket}/{*key}",
       {{"POST", [](const std::string& r) { return "/charts/multi/" + r + ".json?uploads"; }, "",
         "uploader"},
        {"POST", [](const std::string& r) { return "/scans/multi/" + r + ".pdf?uploads"; }, "",
         "uploader,operator"}}},
      // Deleting the chart object last: every other case has read it by then.
      {"DELETE /{bucket}/{*key}",
       {{"DELETE", [](const std::string& r) { return "/scans/delete-" + r + ".pdf"; }, "",
         "operator", 204},
        {"DELETE", fixed("/charts/in/a.json"), "", "", 204}}},
  };

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
    // "self(roles)": the route checks its own credential (webhook HMACs) and requests without
    // one need these roles.
    std::string registered = rule->second;
    std::string roles = rule->second;
    if (registered.rfind("self(", 0) == 0) {
      roles = registered.substr(5, registered.size() - 6);
      registered = "self";
    }
    EXPECT_EQ(access_text(route.access), registered) << key << " is registered with other roles";

    if (key == "POST /fhir/subscriptions/{name}") {
      // Only the subscription's secret opens it: no credential, and no API token of any role.
      const std::map<std::string, std::string> fhir = {{"Content-Type", "application/fhir+json"}};
      auto anonymous = request("POST", "127.0.0.1", app.port(), "/fhir/subscriptions/matrix",
                               kFhirHandshake, fhir);
      EXPECT_EQ(anonymous.status, 401) << key << ": " << anonymous.body;
      expect_bare_error(anonymous, key + " without a credential");
      for (const auto& role : kRoles) {
        auto r =
            app.call("POST", "/fhir/subscriptions/matrix", tokens_[role], kFhirHandshake, fhir);
        EXPECT_EQ(r.status, 401) << key << " as " << role << ": " << r.body;
      }
      auto with_secret =
          app.call("POST", "/fhir/subscriptions/matrix", kFhirSecret, kFhirHandshake, fhir);
      EXPECT_EQ(with_secret.status, 200) << key << " with the secret: " << with_secret.body;
      continue;
    }
    if (roles == "self") {
      auto cases = s3_cases.find(key);
      if (cases == s3_cases.end()) {
        ADD_FAILURE() << key << " checks its own credential but the matrix has no request "
                      << "signed with it: add one";
        continue;
      }
      for (const auto& c : cases->second) {
        const std::string what = key + " (" + c.method + " " + c.target("") + ")";
        // Neither no credential nor the API's bearer token opens the S3 door.
        auto anonymous = request(c.method, "127.0.0.1", app.port(), c.target("anonymous"), c.body);
        EXPECT_EQ(anonymous.status, 403) << what << " unsigned: " << anonymous.body;
        EXPECT_THAT(anonymous.body, HasSubstr("<Code>AccessDenied</Code>")) << what;
        auto bearer = app.call(c.method, c.target("admin"), tokens_["admin"], c.body);
        EXPECT_EQ(bearer.status, 403) << what << " with a bearer token: " << bearer.body;
        EXPECT_THAT(bearer.body, HasSubstr("<Error>")) << what;
        for (const auto& role : kRoles) {
          auto r = s3(role, c.method, c.target(role), c.body);
          if (allowed(c.allowed, role)) {
            EXPECT_EQ(r.status, c.success) << what << " as " << role << ": " << r.body;
          } else {
            EXPECT_EQ(r.status, 403) << what << " as " << role << ": " << r.body;
            EXPECT_THAT(r.body, HasSubstr("<Code>AccessDenied</Code>")) << what << " as " << role;
          }
        }
      }
      continue;
    }

    auto probe = probes.find(key);
    if (probe == probes.end()) {
      ADD_FAILURE() << key << " has no valid request in the matrix's probes: add one";
      continue;
    }
    auto send = [&](const Call& c, const std::string& token) {
      return app.call(route.method, c.target, token, c.body, c.headers);
    };
    if (roles == "public") {
      const Call c = probe->second(true);
      auto anonymous = send(c, "");
      EXPECT_EQ(anonymous.status, c.success) << key << ": " << anonymous.body;
      for (const auto& role : kRoles) {
        const Call with = probe->second(true);
        auto r = send(with, tokens_[role]);
        EXPECT_EQ(r.status, with.success) << key << " as " << role << ": " << r.body;
      }
      continue;
    }
    const Call refused = probe->second(false);
    auto anonymous = send(refused, "");
    EXPECT_EQ(anonymous.status, 401) << key << ": " << anonymous.body;
    expect_bare_error(anonymous, key + " without a credential");
    auto forged = send(refused, "cft_0123");
    EXPECT_EQ(forged.status, 401) << key << " with a wrong token: " << forged.body;

    for (const auto& role : kRoles) {
      if (allowed(roles, role)) {
        const Call c = probe->second(true);
        auto r = send(c, tokens_[role]);
        EXPECT_EQ(r.status, c.success) << key << " as " << role << ": " << r.body;
      } else {
        auto r = send(probe->second(false), tokens_[role]);
        EXPECT_EQ(r.status, 403) << key << " as " << role << ": " << r.body;
        expect_bare_error(r, std::string(key).append(" as ").append(role));
      }
    }

    // A signed event type needs no role: its HMAC is the credential, and a wrong one is a 401.
    if (registered == "self") {
      Call c = probe->second(true);
      std::string body = c.body;
      std::string target = c.target;
      if (key == "POST /v1/events/{type}") {
        target = "/v1/events/" + kSignedType;
      } else {
        const Json event = {{"type", kSignedType}, {"body", Json::object()}};
        body = Json{{"events", Json::array({event})}}.dump();
      }
      const std::string ts = std::to_string(std::time(nullptr));
      auto headers = c.headers;
      headers[http::kTimestampHeader] = ts;
      headers[http::kSignatureHeader] = http::webhook_signature(kWebhookSecret, ts, body);
      auto r = request(route.method, "127.0.0.1", app.port(), target, body, headers);
      EXPECT_EQ(r.status, c.success) << key << " signed: " << r.body;
      headers[http::kSignatureHeader] = http::webhook_signature("not-the-secret", ts, body);
      auto wrong = request(route.method, "127.0.0.1", app.port(), target, body, headers);
      EXPECT_EQ(wrong.status, 401) << key << " signed with a wrong secret: " << wrong.body;
      expect_bare_error(wrong, key + " signed with a wrong secret");
    }
  }
  for (const auto& [key, rule] : kAccessMatrix)
    EXPECT_TRUE(seen.count(key)) << key << " is in the matrix but no longer registered";
}

}  // namespace
}  // namespace chartflow::testing
