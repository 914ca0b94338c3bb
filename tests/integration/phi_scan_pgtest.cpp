// Patient data stays out of logs and metrics: a real `chartflow serve` runs the shipped
// chart-update workflow over every chart in tests/data/charts (uploaded through the HTTP API,
// reviews decided through it, the insurer a fake that accepts), then every log line it wrote
// (stderr at info level, the stored log_record rows at info and above) and the /metrics output are
// searched for each patient's given and family names and birth date.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

const fs::path kSource = CHARTFLOW_SOURCE_DIR;

struct Chart {
  std::string id;  // the Patient's id, as `chartflow upload` would use
  std::string body;
};

// The Patient's names and birth date: what must never show up.
void collect_phi(const Json& patient, std::set<std::string>& phi) {
  for (const auto& name : patient.value("name", Json::array())) {
    if (name.contains("family")) phi.insert(name.at("family").get<std::string>());
    for (const auto& given : name.value("given", Json::array()))
      phi.insert(given.get<std::string>());
  }
  if (patient.contains("birthDate")) phi.insert(patient.at("birthDate").get<std::string>());
}

std::vector<Chart> load_charts(std::set<std::string>& phi) {
  std::vector<Chart> charts;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kSource / "tests/data/charts"))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    Chart c;
    c.body = read_file(f);
    const Json bundle = Json::parse(c.body);
    for (const auto& entry : bundle.at("entry")) {
      const Json& r = entry.at("resource");
      if (r.value("resourceType", "") != "Patient") continue;
      c.id = r.at("id").get<std::string>();
      collect_phi(r, phi);
    }
    charts.push_back(std::move(c));
  }
  return charts;
}

// Where `word` occurs as a whole word (a name "Conn" is not found in "Connections"), or npos.
std::size_t find_word(const std::string& text, const std::string& word) {
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !is_word(text[at - 1]);
    const bool ends = at + word.size() >= text.size() || !is_word(text[at + word.size()]);
    if (starts && ends) return at;
  }
  return std::string::npos;
}

class PhiScanTest : public PgTest {
 protected:
  HttpResponse api(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& type = "application/json") {
    return request(method, "127.0.0.1", port_, target, body,
                   with_bearer(token_, {{"Content-Type", type}}), 60s);
  }

  // Approves every pending review through the API; returns how many it decided.
  int approve_pending_reviews() {
    auto r = api("GET", "/v1/reviews?status=pending&limit=100");
    if (r.status != 200) return 0;
    int decided = 0;
    const Json reviews = r.json().at("reviews");  // kept alive for the loop
    for (const auto& review : reviews) {
      auto d = api("POST", "/v1/reviews/" + review.at("id").dump() + "/decision",
                   R"({"decision": "approve", "comment": "checked", "reason": "phi scan test"})");
      EXPECT_TRUE(d.status == 200 || d.status == 409) << d.body;
      ++decided;
    }
    return decided;
  }

  unsigned short port_ = 0;
  std::string token_;
};

TEST_F(PhiScanTest, NoPatientNameOrBirthDateInLogsOrMetrics) {
  std::set<std::string> phi;
  const auto charts = load_charts(phi);
  ASSERT_GE(charts.size(), 30u);
  ASSERT_GE(phi.size(), 40u) << "too few names found to make the scan meaningful";

  chartflow::testing::FakeHttpServer insurer([](const auto&, int) { return 200; });
  const fs::path dir = fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" /
                       ("phi-scan-" + std::to_string(::getpid()));
  fs::create_directories(dir / "bills");
  ::setenv("CHARTFLOW_INSURER_URL", insurer.url("/claims").c_str(), 1);
  ::setenv("CHARTFLOW_BILL_DIR", (dir / "bills").c_str(), 1);
  ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
  ChildProcess server(
      {CHARTFLOW_BINARY, "serve", "--listen", "127.0.0.1:0", "--database-url", dsn(), "--workflows",
       (kSource / "workflows").string(), "--log-level", "info"},
      dir / "stdout.log", dir / "stderr.log");
  port_ = wait_listening(server, 30s);
  ASSERT_TRUE(port_ != 0 && wait_healthy(server, port_, 30s)) << server.log();
  token_ = create_token(dsn(), "admin");

  for (const auto& c : charts) {
    auto r = api("PUT", "/v1/charts/" + c.id, c.body, "application/fhir+json");
    ASSERT_TRUE(r.status == 202 || r.status == 200) << c.id << ": " << r.body;
  }
  // Every run finishes once its doctor approved; reviews appear as the runs reach them.
  const bool finished = wait_until(
      [&] {
        approve_pending_reviews();
        return scalar(
                   "SELECT count(*) FROM workflow_run WHERE status NOT IN "
                   "('succeeded', 'failed', 'cancelled')") == "0";
      },
      120s);
  EXPECT_TRUE(finished) << scalar(
      "SELECT string_agg(step_key || '/' || status || ':' || n, ' ') FROM (SELECT step_key, "
      "status, count(*) n FROM step_run GROUP BY 1, 2) s");
  EXPECT_EQ(scalar("SELECT count(*) FROM workflow_run WHERE status = 'succeeded'"),
            std::to_string(charts.size()));
  const auto metrics = api("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);

  std::vector<std::pair<std::string, std::string>> sources;  // (where, text)
  sources.emplace_back("/metrics", metrics.body);
  sources.emplace_back("stderr", read_file(dir / "stderr.log"));
  sources.emplace_back("stdout", read_file(dir / "stdout.log"));
  sources.emplace_back("log_record",
                       scalar("SELECT string_agg(concat_ws(' ', workflow, step, message, "
                              "fields::text), E'\\n') FROM log_record WHERE level >= 1"));
  sources.emplace_back("/v1/logs", api("GET", "/v1/logs?level=info&limit=1000").body);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(30s), 0) << server.log();

  // The scan can only pass for the right reason if there was something to scan.
  EXPECT_GT(std::count(sources[1].second.begin(), sources[1].second.end(), '\n'), 50)
      << "too little logged to make the scan meaningful";
  for (const auto& [where, text] : sources)
    for (const auto& secret : phi) {
      const auto at = find_word(text, secret);
      EXPECT_EQ(at, std::string::npos) << where << " contains patient data '" << secret << "': ..."
                                       << text.substr(at > 200 ? at - 200 : 0, 400) << "...";
    }
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace chartflow::testing
