// Issue #14 item 3: an S3 request is an ordinary request of the credential behind its access key.
// Chart objects are read as charts are (admin, or a reviewer the chart is assigned to), chart
// buckets take puts from uploaders as PUT /v1/charts does, and every request, refusals and bad
// signatures included, is in the audit trail. The table below is the S3 door's access matrix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/s3_signer.hpp"

namespace chartflow::testing {
namespace {

const std::string kChart = std::string(CHARTFLOW_SOURCE_DIR) +
                           "/tests/data/charts/"
                           "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-"
                           "8b7f6202.json";
const std::string kSecret = "test-secret-of-sixteen-plus";

std::shared_ptr<http::S3Config> config(const std::string& assignee) {
  auto s3 = std::make_shared<http::S3Config>();
  s3->buckets["charts"] = true;
  s3->buckets["scans"] = false;
  using http::Role;
  s3->keys["AKUPLOADER"] = {kSecret, Role::kUploader, {}};
  s3->keys["AKDOCTOR"] = {kSecret, Role::kReviewer, assignee};
  s3->keys["AKOTHERDOCTOR"] = {kSecret, Role::kReviewer, "Practitioner/someone-else"};
  s3->keys["AKBILLING"] = {kSecret, Role::kBilling, {}};
  s3->keys["AKOPERATOR"] = {kSecret, Role::kOperator, {}};
  s3->keys["AKADMIN"] = {kSecret, Role::kAdmin, {}};
  return s3;
}

class S3AccessTest : public PgTest {
 protected:
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }
};

TEST_F(S3AccessTest, S3RequestsObeyTheRolesReviewerScopeAndAuditOfTheChartApi) {
  const std::string chart = read_file(kChart);
  // First learn who the chart's review goes to, so a reviewer key can be that doctor.
  std::string assignee;
  {
    AppServer first(dsn(), test_server_settings(), config("Practitioner/nobody"));
    auto put = s3_call(first.port(), "AKUPLOADER", kSecret, "PUT", "/charts/in/a.json", chart);
    ASSERT_EQ(put.status, 200) << put.body;
    ASSERT_TRUE(wait_until([&] {
      assignee = scalar("SELECT coalesce(max(assignee), '') FROM review");
      return !assignee.empty();
    }));
  }
  AppServer app(dsn(), test_server_settings(), config(assignee));
  auto call = [&](const std::string& key, const std::string& method, const std::string& path,
                  const std::string& body = "") {
    return s3_call(app.port(), key, kSecret, method, path, body).status;
  };
  ASSERT_EQ(call("AKUPLOADER", "PUT", "/scans/a.pdf", "%PDF scan"), 200);

  struct Case {
    std::string method, path;
    std::map<std::string, int> expected;  // access key -> status
  };
  const std::vector<Case> cases = {
      {"GET",
       "/charts/in/a.json",
       {{"AKUPLOADER", 403},
        {"AKDOCTOR", 200},
        {"AKOTHERDOCTOR", 403},
        {"AKBILLING", 403},
        {"AKOPERATOR", 403},
        {"AKADMIN", 200}}},
      {"HEAD",
       "/charts/in/a.json",
       {{"AKUPLOADER", 403},
        {"AKDOCTOR", 200},
        {"AKOTHERDOCTOR", 403},
        {"AKBILLING", 403},
        {"AKOPERATOR", 403},
        {"AKADMIN", 200}}},
      // A refusal does not say whether the key exists.
      {"GET",
       "/charts/in/missing.json",
       {{"AKUPLOADER", 403}, {"AKDOCTOR", 403}, {"AKOPERATOR", 403}, {"AKADMIN", 404}}},
      {"GET",
       "/charts?list-type=2",
       {{"AKUPLOADER", 403},
        {"AKDOCTOR", 403},
        {"AKBILLING", 403},
        {"AKOPERATOR", 403},
        {"AKADMIN", 200}}},
      {"GET",
       "/scans/a.pdf",
       {{"AKUPLOADER", 403},
        {"AKDOCTOR", 200},
        {"AKBILLING", 403},
        {"AKOPERATOR", 200},
        {"AKADMIN", 200}}},
      {"GET",
       "/scans?list-type=2",
       {{"AKUPLOADER", 403},
        {"AKDOCTOR", 200},
        {"AKBILLING", 403},
        {"AKOPERATOR", 200},
        {"AKADMIN", 200}}},
  };
  for (const auto& c : cases)
    for (const auto& [key, status] : c.expected)
      EXPECT_EQ(call(key, c.method, c.path), status) << c.method << " " << c.path << " as " << key;

  // What came back to the assigned doctor is the chart, byte for byte.
  auto got = s3_call(app.port(), "AKDOCTOR", kSecret, "GET", "/charts/in/a.json");
  EXPECT_EQ(got.body, chart);

  // Puts: chart buckets as PUT /v1/charts (uploader, admin); other buckets take operators' too.
  EXPECT_EQ(call("AKOPERATOR", "PUT", "/charts/in/b.json", chart), 403);
  EXPECT_EQ(call("AKDOCTOR", "PUT", "/charts/in/b.json", chart), 403);
  EXPECT_EQ(call("AKBILLING", "PUT", "/scans/b.pdf", "x"), 403);
  EXPECT_EQ(call("AKOPERATOR", "PUT", "/scans/b.pdf", "x"), 200);
  EXPECT_EQ(count("SELECT count(*) FROM s3_object WHERE bucket = 'charts'"), 1);

  // Every request in the audit trail: successes in the read's or put's transaction, refusals
  // and bad signatures as denied.
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.put' AND outcome = "
                  "'success'"),
            3);  // the chart, the scan, the operator's scan
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.get' AND outcome = "
                  "'success' AND actor = 's3:AKDOCTOR'"),
            3);  // chart (matrix and byte check) and scan
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.head' AND outcome = "
                  "'success'"),
            2);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.list' AND outcome = "
                  "'success'"),
            4);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.get' AND outcome = "
                  "'denied' AND actor = 's3:AKOTHERDOCTOR'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.put' AND outcome = "
                  "'denied'"),
            3);
  auto forged =
      s3_call(app.port(), "AKDOCTOR", "not-the-secret-at-all", "GET", "/charts/in/a.json");
  EXPECT_EQ(forged.status, 403);
  // Bad signatures are counted per source and minute (sealed into one record per minute).
  for (int i = 0; i < 5; ++i)
    s3_call(app.port(), "AKDOCTOR", "not-the-secret-at-all", "GET", "/charts/in/a.json");
  EXPECT_EQ(count("SELECT coalesce(sum(count), 0) FROM audit_refusal WHERE action = 's3.auth' "
                  "AND outcome = 'denied'"),
            6);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.auth'"), 0);
}

// Issue #16: DeleteObject and multipart uploads are doors too. A chart bucket's objects are
// medical records, deleted by admin only (the chart revision stays); a multipart upload starts
// only for whoever may put the object and continues only with the key that started it.
TEST_F(S3AccessTest, DeletesAndMultipartUploadsObeyTheRoles) {
  const std::string chart = read_file(kChart);
  AppServer app(dsn(), test_server_settings(), config("Practitioner/nobody"));
  auto call = [&](const std::string& key, const std::string& method, const std::string& path,
                  const std::string& body = "") {
    return s3_call(app.port(), key, kSecret, method, path, body);
  };
  ASSERT_EQ(call("AKUPLOADER", "PUT", "/charts/in/a.json", chart).status, 200);
  ASSERT_EQ(call("AKUPLOADER", "PUT", "/scans/a.pdf", "%PDF scan").status, 200);
  for (const char* key : {"AKUPLOADER", "AKDOCTOR", "AKBILLING", "AKOPERATOR"})
    EXPECT_EQ(call(key, "DELETE", "/charts/in/a.json").status, 403) << key;
  for (const char* key : {"AKUPLOADER", "AKDOCTOR", "AKBILLING"})
    EXPECT_EQ(call(key, "DELETE", "/scans/a.pdf").status, 403) << key;
  EXPECT_EQ(count("SELECT count(*) FROM s3_object"), 2);
  EXPECT_EQ(call("AKOPERATOR", "DELETE", "/scans/a.pdf").status, 204);
  EXPECT_EQ(call("AKADMIN", "DELETE", "/charts/in/a.json").status, 204);
  EXPECT_EQ(count("SELECT count(*) FROM s3_object"), 0);
  // The upload stays a chart revision: deleting the S3 object deletes no medical record.
  EXPECT_EQ(count("SELECT count(*) FROM chart_revision WHERE based_on_revision IS NULL"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.delete' AND outcome = "
                  "'denied'"),
            7);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 's3.delete' AND outcome = "
                  "'success'"),
            2);

  EXPECT_EQ(call("AKOPERATOR", "POST", "/charts/in/b.json?uploads").status, 403);
  EXPECT_EQ(call("AKDOCTOR", "POST", "/scans/b.pdf?uploads").status, 403);
  auto created = call("AKUPLOADER", "POST", "/scans/b.pdf?uploads");
  ASSERT_EQ(created.status, 200) << created.body;
  const auto open = created.body.find("<UploadId>") + 10;
  const std::string id = created.body.substr(open, created.body.find("</UploadId>") - open);
  EXPECT_EQ(call("AKOPERATOR", "PUT", "/scans/b.pdf?partNumber=1&uploadId=" + id, "x").status, 403);
  EXPECT_EQ(call("AKOPERATOR", "DELETE", "/scans/b.pdf?uploadId=" + id).status, 403);
  EXPECT_EQ(call("AKUPLOADER", "PUT", "/scans/other.pdf?partNumber=1&uploadId=" + id, "x").status,
            404);  // an upload belongs to its key
  EXPECT_EQ(call("AKUPLOADER", "PUT", "/scans/b.pdf?partNumber=1&uploadId=" + id, "x").status, 200);
  EXPECT_EQ(count("SELECT count(*) FROM s3_multipart_part"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action LIKE 's3.multipart.%' AND "
                  "outcome = 'denied'"),
            4);
}

// Item 6: a chart bucket's object is a chart whatever its content type says; a body nested too
// deep was let through to PostgreSQL's stack limit (a 500) when sent as octet-stream.
TEST_F(S3AccessTest, AChartNestedTooDeepIsRefusedWhateverItsContentType) {
  AppServer app(dsn(), test_server_settings(), config("Practitioner/nobody"));
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const char* type : {"application/octet-stream", "text/plain", "application/json"}) {
    auto r = s3_call(app.port(), "AKUPLOADER", kSecret, "PUT", "/charts/deep.json", deep, "", type);
    EXPECT_EQ(r.status, 400) << type << ": " << r.body;
    EXPECT_THAT(r.body, ::testing::HasSubstr("nested deeper")) << type;
  }
  EXPECT_EQ(count("SELECT count(*) FROM s3_object"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM event"), 0);
}

// The server's configured limits (--json-depth-limit, --bundle-entry-limit), not the defaults,
// hold a chart put through S3 as they hold PUT /v1/charts: a real chart under a tighter depth
// limit is refused at both doors alike, and stored by neither.
TEST_F(S3AccessTest, AChartIsHeldToTheServersConfiguredJsonLimits) {
  http::ServerSettings settings = test_server_settings();
  settings.limits.json_depth = 4;
  AppServer app(dsn(), settings, config("Practitioner/nobody"));
  const std::string chart = read_file(kChart);
  const std::string uploader = create_token(dsn(), "uploader");
  auto api = app.call("PUT", "/v1/charts/tight", uploader, chart,
                      {{"Content-Type", "application/fhir+json"}});
  EXPECT_EQ(api.status, 400) << api.body;
  auto s3 = s3_call(app.port(), "AKUPLOADER", kSecret, "PUT", "/charts/tight.json", chart, "",
                    "application/octet-stream");
  EXPECT_EQ(s3.status, 400) << s3.body;
  EXPECT_THAT(s3.body, ::testing::HasSubstr("nested deeper than 4")) << s3.body;
  EXPECT_EQ(count("SELECT count(*) FROM s3_object"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM chart_revision"), 0);
}

TEST_F(S3AccessTest, AReviewerKeyWithoutAnAssigneeIsAConfigError) {
  const std::string dir = ::testing::TempDir() + "/s3-reviewer-" + schema();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/s3.yaml") << "access_keys:\n  - access_key: AKDOC\n    secret: " << kSecret
                                  << "\n    role: reviewer\nbuckets:\n  charts: { chart: true }\n";
  try {
    http::S3Config::load(dir + "/s3.yaml");
    ADD_FAILURE() << "a reviewer key without an assignee was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("line 2"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("assignee"));
  }
}

}  // namespace
}  // namespace chartflow::testing
