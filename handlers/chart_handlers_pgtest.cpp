// The chart handlers through the real engine against a real PostgreSQL: the application as
// `chartflow serve` wires it (AppServer: the shipped workflows/ loaded as serve loads them, the
// settings files, the engine's own step context, commit and rollback, retries and waits), driven
// over HTTP the way uploaders, doctors and operators drive it. Only the insurer endpoint and the
// bill folder point at the test's, through the environment variables the settings files read.
// What the tables must hold is derived from each chart's FHIR content, not written down.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/trace.hpp"
#include "engine/util/duration.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/doctor_review/doctor_lookup.hpp"
#include "handlers/fhir/bundle_index.hpp"
#include "handlers/missing_field_scan/missing_field_scan.hpp"
#include "handlers/missing_field_scan/rules.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::handlers {
namespace {

using chartflow::testing::AppServer;
using chartflow::testing::FakeHttpServer;
using chartflow::testing::HttpResponse;
using chartflow::testing::ReceivedRequest;
using chartflow::testing::TempDir;
using chartflow::testing::wait_until;
namespace data = chartflow::handlers::testing;

constexpr std::chrono::seconds kRunTimeout{120};

std::int64_t to_cents(double value) { return std::llround(value * 100.0); }

// A SQL string literal of `text` (names such as O'Connell).
std::string literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The workflow file and settings files the server loads, read here as plain data so the
// expectations follow them.
const Json& workflow_file() {
  static const Json kWorkflow = load_config_file(data::workflows_dir() / "chart-update.yaml");
  return kWorkflow;
}
std::string review_setting(const std::string& key) {
  return workflow_file().at("steps").at("review").at("input").at(key).get<std::string>();
}
bool payor_skipped(const std::string& payor) {
  static const Json kInsurers = load_config_file(data::workflows_dir() / "settings/insurers.yaml");
  const Json& payors = kInsurers.at("payors");
  return payors.contains(payor) && payors.at(payor).value("skip", false);
}

// What one Synthea chart implies, read straight from the Bundle by the rules the billing,
// insurance and discharge settings document (price-list.yaml, insurers.yaml).
struct ChartFacts {
  std::size_t ledger_lines = 0;
  std::int64_t ledger_cents = 0;
  bool released = false;
  std::set<std::string> payors;
  std::set<std::string> family_names;
};

ChartFacts facts_of(const Json& bundle) {
  static const Json kPrices = load_config_file(data::workflows_dir() / "settings/price-list.yaml");
  auto list_price = [](const Json& item) {
    std::int64_t cents = to_cents(kPrices.at("default").get<double>());
    const Json& codings = item.value("productOrService", Json::object()).value("coding", Json());
    if (codings.is_array() && !codings.empty()) {
      const std::string code = codings[0].value("code", "");
      if (kPrices.at("prices").contains(code))
        cents = to_cents(kPrices.at("prices").at(code).at("price").get<double>());
    }
    return cents;
  };
  ChartFacts f;
  for (const auto& entry : bundle.at("entry")) {
    const Json& r = entry.at("resource");
    const std::string type = r.value("resourceType", "");
    if (type == "Patient") {
      for (const auto& name : r.value("name", Json::array()))
        if (name.contains("family")) f.family_names.insert(name.at("family").get<std::string>());
    } else if (type == "Encounter") {
      f.released = f.released ||
                   (r.value("status", "") == "finished" &&
                    r.value("hospitalization", Json::object()).contains("dischargeDisposition"));
    } else if (type == "MedicationAdministration") {
      if (r.value("status", "") != "completed") continue;
      ++f.ledger_lines;
      std::int64_t cents = to_cents(kPrices.at("default").get<double>());
      const Json& codings =
          r.value("medicationCodeableConcept", Json::object()).value("coding", Json());
      if (codings.is_array() && !codings.empty() &&
          kPrices.at("prices").contains(codings[0].value("code", "")))
        cents = to_cents(kPrices.at("prices").at(codings[0].value("code", "")).at("price"));
      f.ledger_cents += cents;
    } else if (type == "Claim") {
      const std::string status = r.value("status", "");
      if (status == "cancelled" || status == "entered-in-error" || status == "draft") continue;
      if (r.value("use", "claim") != "claim") continue;
      for (const auto& insurance : r.value("insurance", Json::array())) {
        const std::string payor = insurance.value("coverage", Json::object()).value("display", "");
        if (!payor.empty()) f.payors.insert(payor);
      }
      // Items with a net amount carry it; the rest share what the claim total leaves, or,
      // when it leaves nothing, take their list price.
      std::int64_t priced = 0;
      std::int64_t list_priced = 0;
      std::size_t unpriced = 0;
      for (const auto& item : r.value("item", Json::array())) {
        ++f.ledger_lines;
        if (item.contains("net")) {
          priced += to_cents(item.at("net").at("value").get<double>());
        } else {
          ++unpriced;
          list_priced += list_price(item);
        }
      }
      const std::int64_t left =
          to_cents(r.value("total", Json::object()).value("value", 0.0)) - priced;
      f.ledger_cents += priced + (unpriced > 0 && left > 0 ? left : list_priced);
    }
  }
  return f;
}

const Json* step_of(const Json& run, const std::string& name) {
  for (const auto& s : run.at("steps"))
    if (s.value("name", "") == name) return &s;
  return nullptr;
}

class ChartHandlersTest : public chartflow::testing::PgTest {
 protected:
  void TearDown() override {
    app_.reset();
    insurer_.reset();
    ::unsetenv("CHARTFLOW_INSURER_URL");
    ::unsetenv("CHARTFLOW_BILL_DIR");
    PgTest::TearDown();
  }

  // Starts the application with its insurer answering as `insurer` says; bills go to bills().
  void start(std::function<int(const ReceivedRequest&, int)> insurer) {
    insurer_ = std::make_unique<FakeHttpServer>(std::move(insurer));
    ::setenv("CHARTFLOW_INSURER_URL", insurer_->url("/claims").c_str(), 1);
    ::setenv("CHARTFLOW_BILL_DIR", bills().c_str(), 1);
    ::unsetenv("CHARTFLOW_BILL_WEBHOOK_URL");
    app_ = std::make_unique<AppServer>(dsn());
    admin_ = chartflow::testing::create_token(dsn(), "admin");
  }

  std::filesystem::path bills() const { return bill_root_.path() / "bills"; }

  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = "") {
    return app_->call(method, target, token.empty() ? admin_ : token, body,
                      {{"Content-Type", "application/fhir+json"}});
  }
  Json get(const std::string& target) {
    auto r = call("GET", target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return r.json();
  }

  // Uploads over PUT /v1/charts and returns the run the upload started.
  std::int64_t upload(const std::string& chart_id, const std::string& raw) {
    auto r = call("PUT", "/v1/charts/" + chart_id, raw);
    EXPECT_EQ(r.status, 202) << chart_id << ": " << r.body;
    const Json body = r.json();
    if (!body.is_object() || body.value("runs", Json::array()).size() != 1) {
      ADD_FAILURE() << chart_id << ": the upload started no single run: " << r.body;
      return 0;
    }
    return body.at("runs")[0].get<std::int64_t>();
  }

  Json run(std::int64_t id) { return get("/v1/runs/" + std::to_string(id)); }
  std::string step_status(std::int64_t run_id, const std::string& step) {
    const Json r = run(run_id);
    const Json* s = r.is_object() ? step_of(r, step) : nullptr;
    return s ? s->value("status", "") : "";
  }
  bool wait_step(std::int64_t run_id, const std::string& step, const std::string& status) {
    return wait_until([&] { return step_status(run_id, step) == status; }, kRunTimeout);
  }
  bool wait_run(std::int64_t run_id, const std::string& status) {
    return wait_until([&] { return run(run_id).value("status", "") == status; }, kRunTimeout);
  }
  Json output(std::int64_t run_id, const std::string& step) {
    const Json r = run(run_id);
    const Json* s = step_of(r, step);
    return s ? s->value("output", Json()) : Json();
  }

  std::int64_t review_of(std::int64_t run_id) {
    const std::string id = scalar("SELECT id FROM review WHERE run_id = " + std::to_string(run_id));
    EXPECT_FALSE(id.empty()) << "run " << run_id << " has no review";
    return id.empty() ? 0 : std::stoll(id);
  }
  HttpResponse decide(std::int64_t review_id, const Json& body, const std::string& token = "") {
    return call("POST", "/v1/reviews/" + std::to_string(review_id) + "/decision", body.dump(),
                token);
  }
  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }

  TempDir bill_root_{"chartflow-bills"};
  std::unique_ptr<FakeHttpServer> insurer_;
  std::unique_ptr<AppServer> app_;
  std::string admin_;
};

const std::string kLemuelInpatient =
    "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";
const std::string kGarrettDeath =
    "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json";

TEST_F(ChartHandlersTest, EveryChartThroughTheWorkflow) {
  // The insurer fails its first two requests: the insurance step's Retry rolls its attempt back
  // and the engine tries again, and the insurer sees each notification (by key) in the end.
  start([](const ReceivedRequest&, int i) { return i < 2 ? 503 : 200; });
  const auto rules = missing_field_scan::RuleSet::load(data::workflows_dir() /
                                                       missing_field_scan::kDefaultRulesFile);

  struct Chart {
    std::string id;
    Json bundle;
    ChartFacts facts;
    std::int64_t run = 0;
  };
  std::vector<Chart> charts;
  for (const auto& file : data::chart_files()) {
    Chart c{file.stem().string(), Json::parse(data::read_file(file)), {}, 0};
    c.facts = facts_of(c.bundle);
    c.run = upload(c.id, data::read_file(file));
    charts.push_back(std::move(c));
  }
  ASSERT_FALSE(HasFailure());

  // Every review waits for its doctor, assigned to the practitioner the chart names.
  for (const auto& c : charts) {
    SCOPED_TRACE(c.id);
    ASSERT_TRUE(wait_step(c.run, "review", "waiting")) << run(c.run).dump();
    const auto doctor = doctor_review::find_primary_doctor(fhir::BundleIndex(c.bundle));
    EXPECT_EQ(scalar("SELECT assignee FROM review WHERE run_id = " + std::to_string(c.run)),
              doctor ? doctor->assignee : review_setting("fallback_queue"));
    auto decided = decide(review_of(c.run), {{"decision", "approve"}, {"reason", "test batch"}});
    EXPECT_EQ(decided.status, 200) << decided.body;
  }

  std::size_t released = 0;
  std::size_t final_notices = 0;
  std::size_t skipped = 0;
  for (const auto& c : charts) {
    SCOPED_TRACE(c.id);
    ASSERT_TRUE(wait_run(c.run, "succeeded")) << run(c.run).dump();
    const fhir::BundleIndex index(c.bundle);

    // scan: one open question per finding, written back as revision 2.
    std::set<std::pair<std::string, std::string>> findings;
    for (const auto& f : missing_field_scan::scan_chart(index, rules))
      findings.emplace(f.rule_id, f.resource_ref);
    const Json scan = output(c.run, "scan");
    EXPECT_EQ(scan["findings"], findings.size());
    EXPECT_EQ(scan["open_questions"], findings.size());
    EXPECT_EQ(scan["writeback_revision"], 2);
    const Json chart = get("/v1/charts/" + c.id);
    EXPECT_EQ(chart["open_questions"].size(), findings.size());
    EXPECT_EQ(chart["latest_revision"], 2);

    // billing: one ledger line per claim item and administration, amounting to what the
    // chart's claims and the price list say.
    const Json billing = output(c.run, "billing");
    EXPECT_EQ(billing["entries_added"], c.facts.ledger_lines);
    EXPECT_EQ(chart["ledger_entries"], c.facts.ledger_lines);
    EXPECT_EQ(to_cents(chart["ledger_total"].get<double>()), c.facts.ledger_cents);
    EXPECT_EQ(chart["ledger_currency"], "USD");

    // insurance: one notification per payor of the chart, delivered or (skip) skipped.
    EXPECT_EQ(output(c.run, "insurance")["payors"].size(), c.facts.payors.size());
    for (const auto& payor : c.facts.payors) {
      const std::string where = " FROM insurer_outbox WHERE chart_id = " + literal(c.id) +
                                " AND payor = " + literal(payor);
      const std::string expected = payor_skipped(payor) ? "skipped" : "delivered";
      const std::string of_status = fmt::format("{} AND status = '{}'", where, expected);
      EXPECT_EQ(count("SELECT count(*)" + of_status + " AND kind = 'claim'"), 1) << payor;
      EXPECT_EQ(count("SELECT count(*)" + of_status + " AND kind = 'final'"),
                c.facts.released ? 1 : 0)
          << payor;
      skipped += payor_skipped(payor) ? (c.facts.released ? 2 : 1) : 0;
      final_notices += c.facts.released ? 1 : 0;
    }

    // discharge: only a released patient's bill is issued, for the ledger's total, and sent.
    if (c.facts.released) {
      ++released;
      EXPECT_EQ(output(c.run, "discharge")["released"], true);
      // One element per channel of the bill (the test settings have only the folder).
      EXPECT_EQ(output(c.run, "send_bill").size(), 1U);
      EXPECT_EQ(output(c.run, "send_bill")[0]["delivered"], Json::array({"folder"}));
      EXPECT_EQ(chart["bill"]["status"], "issued");
      EXPECT_EQ(to_cents(chart["bill"]["total"].get<double>()), c.facts.ledger_cents);
      EXPECT_TRUE(std::filesystem::exists(bills() / (c.id + "-invoice.txt")));
    } else {
      EXPECT_EQ(step_status(c.run, "discharge"), "skipped");
      EXPECT_TRUE(chart["bill"].is_null());
    }
  }
  ASSERT_GT(released, 0U) << "the test data should hold released charts";
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), static_cast<std::int64_t>(released));
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery WHERE status = 'delivered'"),
            static_cast<std::int64_t>(released));
  EXPECT_EQ(count("SELECT count(*) FROM review"), static_cast<std::int64_t>(charts.size()));
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE kind = 'final'"),
            static_cast<std::int64_t>(final_notices));
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status = 'skipped'"),
            static_cast<std::int64_t>(skipped));
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status IN ('pending', 'failed')"), 0);
  // The two refused requests were retried by the engine, not dropped.
  EXPECT_GE(count("SELECT max(attempt) FROM step_run WHERE step_key = 'insurance'"), 2);

  std::set<std::string> keys;
  std::set<std::string> family_names;
  for (const auto& c : charts)
    family_names.insert(c.facts.family_names.begin(), c.facts.family_names.end());
  const auto requests = insurer_->requests();
  for (const auto& r : requests) {
    keys.insert(r.header("Idempotency-Key"));
    EXPECT_EQ(r.header("Content-Type"), "application/fhir+json");
    // The notification carries its run's trace (the chart upload's event's).
    const auto trace = core::parse_traceparent(r.header("traceparent"));
    EXPECT_TRUE(trace.has_value()) << "no traceparent: " << r.header("traceparent");
    if (trace) {
      EXPECT_EQ(count("SELECT count(*) FROM event WHERE type = 'chart.uploaded' AND trace_id = " +
                      literal(trace->trace_id)),
                1);
    }
    EXPECT_EQ(Json::parse(r.body)["resourceType"], "Claim");
    for (const auto& name : family_names)
      EXPECT_EQ(r.body.find(name), std::string::npos) << "a patient's name went to the insurer";
  }
  EXPECT_EQ(static_cast<std::int64_t>(keys.size()),
            count("SELECT count(*) FROM insurer_outbox WHERE status = 'delivered'"));
  EXPECT_GE(count("SELECT count(*) FROM insurer_delivery_attempt"),
            count("SELECT count(*) FROM insurer_outbox WHERE status = 'delivered'"));
  // Nor into the engine's log.
  for (const auto& name : family_names)
    EXPECT_EQ(count("SELECT count(*) FROM log_record WHERE strpos(message || fields::text, " +
                    literal(name) + ") > 0"),
              0)
        << "a patient's name is in the log";
}

TEST_F(ChartHandlersTest, DuplicateUploadsAndReplaysBillNothingTwice) {
  start([](const ReceivedRequest&, int) { return 200; });
  const std::string raw = data::read_file(data::charts_dir() / kLemuelInpatient);
  const ChartFacts facts = facts_of(Json::parse(raw));
  ASSERT_TRUE(facts.released);
  const auto first = upload("lemuel", raw);
  ASSERT_TRUE(wait_step(first, "review", "waiting"));
  ASSERT_EQ(decide(review_of(first), {{"decision", "approve"}, {"reason", "test"}}).status, 200);
  ASSERT_TRUE(wait_run(first, "succeeded")) << run(first).dump();

  const std::vector<std::string> tables = {
      "chart_revision", "chart_question",        "review",
      "ledger_entry",   "insurer_outbox",        "invoice",
      "bill_delivery",  "bill_delivery_attempt", "insurer_delivery_attempt"};
  auto snapshot = [&] {
    std::map<std::string, std::int64_t> counts;
    for (const auto& t : tables) counts[t] = count("SELECT count(*) FROM " + t);
    return counts;
  };
  const auto before = snapshot();
  EXPECT_EQ(before.at("ledger_entry"), static_cast<std::int64_t>(facts.ledger_lines));
  EXPECT_EQ(before.at("invoice"), 1);
  EXPECT_EQ(before.at("chart_revision"), 2);  // upload + write-back

  // The identical content again: a duplicate, nothing stored, no run.
  auto again = call("PUT", "/v1/charts/lemuel", raw);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json()["duplicate"], true);
  EXPECT_EQ(again.json()["runs"], Json::array());
  EXPECT_EQ(snapshot(), before);

  // The same chart.uploaded event a second time (as an operator re-emitting it would): a second
  // run of every step bills, notifies and sends nothing twice; only its own review is added.
  store::EventInput replay;
  replay.type = "chart.uploaded";
  replay.body = Json::parse(scalar("SELECT body::text FROM event ORDER BY id LIMIT 1"));
  const auto ingested = app_->engine().ingest(replay);
  ASSERT_EQ(ingested.run_ids.size(), 1U);
  const auto second = ingested.run_ids.front();
  ASSERT_TRUE(wait_step(second, "review", "waiting"));
  ASSERT_EQ(decide(review_of(second), {{"decision", "approve"}, {"reason", "test"}}).status, 200);
  ASSERT_TRUE(wait_run(second, "succeeded")) << run(second).dump();
  EXPECT_EQ(output(second, "billing")["entries_added"], 0);
  auto after = snapshot();
  EXPECT_EQ(after.at("review"), before.at("review") + 1);
  after["review"] = before.at("review");
  EXPECT_EQ(after, before);
  // One claim and one final notification per payor, each sent once.
  EXPECT_EQ(insurer_->requests().size(), 2 * facts.payors.size());
}

TEST_F(ChartHandlersTest, LaterUploadThatSuppliesTheFieldsClosesTheQuestions) {
  start([](const ReceivedRequest&, int) { return 200; });
  const std::string raw = data::read_file(data::charts_dir() / kGarrettDeath);
  const auto first = upload("garrett", raw);
  ASSERT_TRUE(wait_step(first, "scan", "succeeded")) << run(first).dump();
  const std::string encounter_ref = "Encounter/516ed05c-b485-4c95-a975-c0ba265549dd";
  EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'open' AND rule_id = "
                  "'encounter-practitioner' AND resource_ref = '" +
                  encounter_ref + "'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'open' AND rule_id = "
                  "'coverage'"),
            1);

  // The written-back chart carries one requested Task per open question.
  auto written = call("GET", "/v1/charts/garrett/revisions/2");
  ASSERT_EQ(written.status, 200) << written.body;
  std::size_t tasks = 0;
  const Json written_bundle = written.json();
  for (const auto& e : written_bundle["entry"]) tasks += e["resource"]["resourceType"] == "Task";
  EXPECT_EQ(static_cast<std::int64_t>(tasks),
            count("SELECT count(*) FROM chart_question WHERE status = 'open'"));

  // The nurse supplies a practitioner and a Coverage.
  Json bundle = Json::parse(raw);
  for (auto& e : bundle["entry"]) {
    if (e["resource"]["resourceType"] == "Encounter")
      e["resource"]["participant"] = {{{"individual", {{"reference", "Practitioner/123"}}}}};
  }
  bundle["entry"].push_back(
      {{"fullUrl", "urn:uuid:cov-1"},
       {"resource", {{"resourceType", "Coverage"}, {"id", "cov-1"}, {"status", "active"}}}});
  const auto fixed = upload("garrett", bundle.dump());
  ASSERT_TRUE(wait_step(fixed, "scan", "succeeded")) << run(fixed).dump();
  const Json out = output(fixed, "scan");
  EXPECT_EQ(out["closed"], 2);
  EXPECT_EQ(out["writeback_revision"], 4);
  EXPECT_EQ(scalar("SELECT status FROM chart_question WHERE rule_id = 'encounter-practitioner'"),
            "closed");
  EXPECT_EQ(scalar("SELECT closed_revision FROM chart_question WHERE rule_id = 'coverage'"), "3");

  // A scan of the older revision finishing late (its event again) does not reopen them.
  store::EventInput late;
  late.type = "chart.uploaded";
  late.body = Json::parse(scalar("SELECT body::text FROM event ORDER BY id LIMIT 1"));
  ASSERT_EQ(late.body["revision"], 1);
  const auto stale_run = app_->engine().ingest(late).run_ids.at(0);
  ASSERT_TRUE(wait_step(stale_run, "scan", "succeeded")) << run(stale_run).dump();
  EXPECT_EQ(output(stale_run, "scan")["stale"], true);
  EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'open' AND rule_id IN "
                  "('encounter-practitioner', 'coverage')"),
            0);

  const Json chart = get("/v1/charts/garrett");
  ASSERT_EQ(chart["revisions"].size(), 4U);
  EXPECT_EQ(chart["revisions"][1]["source"], "writeback");
  for (const auto& q : chart["open_questions"]) {
    EXPECT_NE(q["rule_id"], "coverage");
    EXPECT_NE(q["rule_id"], "encounter-practitioner");
  }
}

TEST_F(ChartHandlersTest, ReviewDecisionsAndEscalation) {
  start([](const ReceivedRequest&, int) { return 200; });
  const std::string raw = data::read_file(data::charts_dir() / kLemuelInpatient);
  const Json bundle = Json::parse(raw);
  const auto doctor = doctor_review::find_primary_doctor(fhir::BundleIndex(bundle));
  ASSERT_TRUE(doctor.has_value());
  const auto deadline = core::parse_duration(review_setting("deadline"));
  ASSERT_TRUE(deadline.has_value());

  const auto first = upload("lemuel", raw);
  ASSERT_TRUE(wait_step(first, "review", "waiting")) << run(first).dump();
  // The step waits until the review's deadline, as the workflow's input sets it.
  EXPECT_NEAR(std::stod(scalar("SELECT extract(epoch FROM wait_until - now()) FROM step_run "
                               "WHERE run_id = " +
                               std::to_string(first) + " AND step_key = 'review'")),
              std::chrono::duration<double>(*deadline).count(), 60);

  const Json listed = get("/v1/reviews?status=pending&assignee=" + doctor->assignee);
  ASSERT_EQ(listed["reviews"].size(), 1U);
  const Json& r = listed["reviews"][0];
  EXPECT_EQ(r["chart_id"], "lemuel");
  EXPECT_EQ(r["run_id"], first);
  std::string patient_name;
  std::string encounter_type;
  for (const auto& e : bundle["entry"]) {
    const Json& res = e["resource"];
    if (res["resourceType"] == "Patient")
      patient_name = res["name"][0]["given"][0].get<std::string>() + " " +
                     res["name"][0]["family"].get<std::string>();
    if (res["resourceType"] == "Encounter")
      encounter_type = res["type"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(r["summary"]["patient"], patient_name);
  EXPECT_EQ(r["summary"]["encounter"], encounter_type);
  EXPECT_EQ(r["assignee_name"], doctor->display);
  const std::int64_t review_id = r["id"];

  // A doctor decides their own review; another doctor, a bad decision or no review cannot.
  const std::string own = chartflow::testing::create_token(dsn(), "reviewer", doctor->assignee);
  const std::string other = chartflow::testing::create_token(dsn(), "reviewer", "someone-else");
  EXPECT_EQ(decide(review_id, {{"decision", "approve"}}, other).status, 403);
  EXPECT_EQ(decide(review_id, {{"decision", "maybe"}}, own).status, 400);
  EXPECT_EQ(decide(999999, {{"decision", "approve"}}, own).status, 404);
  // A decision carried only by a run signal decides nothing (issue #14): the route refuses it
  // and the step keeps waiting.
  auto forged = call("POST", "/v1/runs/" + std::to_string(first) + "/signal/review",
                     Json{{"decision", "reject"}, {"decided_by", doctor->practitioner_ref}}.dump());
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_EQ(step_status(first, "review"), "waiting");

  auto approved = decide(review_id, {{"decision", "approve"}, {"comment", "looks fine"}}, own);
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_EQ(approved.json()["run_id"], first);
  EXPECT_EQ(decide(review_id, {{"decision", "reject"}}, own).status, 409);
  ASSERT_TRUE(wait_run(first, "succeeded")) << run(first).dump();
  const Json done = output(first, "review");
  EXPECT_EQ(done["decision"], "approve");
  EXPECT_EQ(done["assignee"], doctor->assignee);
  EXPECT_EQ(done["review_id"], review_id);
  EXPECT_EQ(scalar("SELECT comment FROM review WHERE id = " + std::to_string(review_id)),
            "looks fine");
  EXPECT_FALSE(
      scalar("SELECT decided_by FROM review WHERE id = " + std::to_string(review_id)).empty());

  // Another run: nobody answers before the deadline. Rather than wait 48 hours, the test moves
  // the step's wake-up to now; the engine then wakes it with a deadline, and the review
  // escalates to the escalation queue and waits again.
  Json other_chart = bundle;
  other_chart["id"] = "second-upload";
  const auto second = upload("lemuel-2", other_chart.dump());
  ASSERT_TRUE(wait_step(second, "review", "waiting")) << run(second).dump();
  ASSERT_EQ(scalar("UPDATE step_run SET wait_until = now() WHERE run_id = " +
                   std::to_string(second) + " AND step_key = 'review' RETURNING 1"),
            "1");
  const std::string queue = review_setting("escalation_queue");
  const std::string where = " FROM review WHERE run_id = " + std::to_string(second);
  ASSERT_TRUE(wait_until([&] { return scalar("SELECT assignee" + where) == queue; }, kRunTimeout));
  ASSERT_TRUE(wait_step(second, "review", "waiting")) << run(second).dump();
  EXPECT_EQ(scalar("SELECT original_assignee" + where), doctor->assignee);
  EXPECT_EQ(scalar("SELECT escalations" + where), "1");
  const Json escalated = get("/v1/reviews?status=pending&assignee=" + queue);
  ASSERT_EQ(escalated["reviews"].size(), 1U);
  EXPECT_TRUE(escalated["reviews"][0]["assignee_name"].is_null()) << "a queue has no name";
  EXPECT_EQ(decide(std::stoll(scalar("SELECT id" + where)), {{"decision", "reject"}}, own).status,
            403)
      << "the review left the doctor's worklist when it escalated";

  auto rejected = decide(std::stoll(scalar("SELECT id" + where)),
                         {{"decision", "reject"}, {"reason", "escalated, decided by admin"}});
  ASSERT_EQ(rejected.status, 200) << rejected.body;
  ASSERT_TRUE(wait_run(second, "succeeded")) << run(second).dump();
  EXPECT_EQ(output(second, "review")["decision"], "reject");
  const Json chart = get("/v1/charts/lemuel-2");
  EXPECT_EQ(chart["review"]["run_id"], second);
  EXPECT_EQ(chart["review"]["status"], "rejected");
}

TEST_F(ChartHandlersTest, ChartWithoutADoctorGoesToTheFallbackQueue) {
  start([](const ReceivedRequest&, int) { return 200; });
  const std::string raw = data::read_file(data::charts_dir() / kGarrettDeath);
  const Json bundle = Json::parse(raw);
  ASSERT_FALSE(doctor_review::find_primary_doctor(fhir::BundleIndex(bundle)));
  const auto id = upload("garrett", raw);
  ASSERT_TRUE(wait_step(id, "review", "waiting")) << run(id).dump();
  EXPECT_EQ(scalar("SELECT assignee FROM review"), review_setting("fallback_queue"));
}

TEST_F(ChartHandlersTest, ApiViewsOfAClosedChart) {
  start([](const ReceivedRequest&, int) { return 202; });
  const std::string raw = data::read_file(
      data::charts_dir() /
      "enc-jordan-cruickshank-20170624-emer-emergency-room-admission-b3fa30ba.json");
  const Json bundle = Json::parse(raw);
  const ChartFacts facts = facts_of(bundle);
  ASSERT_TRUE(facts.released);
  const auto id = upload("jordan", raw);
  ASSERT_TRUE(wait_step(id, "review", "waiting"));
  ASSERT_EQ(decide(review_of(id), {{"decision", "approve"}, {"reason", "test"}}).status, 200);
  ASSERT_TRUE(wait_run(id, "succeeded")) << run(id).dump();

  const Json chart = get("/v1/charts/jordan");
  EXPECT_EQ(chart["latest_revision"], 2);
  EXPECT_EQ(chart["bill"]["status"], "issued");
  EXPECT_EQ(chart["bill"]["deliveries"], Json::array({"folder"}));
  EXPECT_EQ(chart["ledger_entries"], facts.ledger_lines);
  EXPECT_EQ(to_cents(chart["ledger_total"].get<double>()), facts.ledger_cents);
  EXPECT_EQ(chart["ledger_currency"], chart["bill"]["currency"]);
  std::string birth_date;
  std::string name;
  for (const auto& e : bundle.at("entry")) {
    const Json& res = e.at("resource");
    if (res.value("resourceType", "") != "Patient") continue;
    birth_date = res.value("birthDate", "");
    name = res["name"][0]["given"][0].get<std::string>() + " " +
           res["name"][0]["family"].get<std::string>();
  }
  ASSERT_FALSE(birth_date.empty());
  EXPECT_EQ(chart["patient"], Json({{"name", name}, {"birth_date", birth_date}}));
  EXPECT_EQ(call("GET", "/v1/charts/nobody").status, 404);

  auto revision = call("GET", "/v1/charts/jordan/revisions/1");
  ASSERT_EQ(revision.status, 200);
  EXPECT_EQ(revision.body, raw);  // byte for byte
  EXPECT_EQ(call("GET", "/v1/charts/jordan/revisions/9").status, 404);

  const Json ledger = get("/v1/charts/jordan/ledger");
  EXPECT_EQ(ledger["count"], facts.ledger_lines);
  ASSERT_EQ(facts.payors.size(), 1U);
  const std::string payor = *facts.payors.begin();
  for (const auto& e : ledger["entries"]) {
    EXPECT_EQ(e["currency"], "USD");
    EXPECT_EQ(e["payor"], payor);
  }

  const Json deliveries = get("/v1/charts/jordan/deliveries");
  ASSERT_EQ(deliveries["outbox"].size(), 2U);  // the claim and the final notification
  for (const auto& o : deliveries["outbox"]) {
    EXPECT_EQ(o["status"], "delivered");
    EXPECT_EQ(o["payor"], payor);
    ASSERT_EQ(o["attempts_detail"].size(), 1U);
    EXPECT_EQ(o["attempts_detail"][0]["status_code"], 202);
  }
  ASSERT_EQ(deliveries["bill_deliveries"].size(), 1U);
  const Json& bill_delivery = deliveries["bill_deliveries"][0];
  EXPECT_EQ(bill_delivery["status"], "delivered");
  EXPECT_EQ(bill_delivery["idempotency_key"], "bill:jordan:folder");
  ASSERT_EQ(bill_delivery["attempts_detail"].size(), 1U);
  EXPECT_FALSE(bill_delivery["attempts_detail"][0]["answered_at"].is_null());

  const std::string bill = data::read_file(bills() / "jordan-invoice.txt");
  EXPECT_NE(bill.find("PATIENT BILL"), std::string::npos);
  EXPECT_NE(bill.find("Total"), std::string::npos);
}

TEST_F(ChartHandlersTest, ConcurrentUploadsOfOneChartTakeDistinctRevisions) {
  start([](const ReceivedRequest&, int) { return 200; });
  const std::string raw =
      data::read_file(data::charts_dir() / "full-clemente-kreiger-1484a42d.json");
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::vector<HttpResponse> responses;
  threads.reserve(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      // Uploads 0-2 carry distinct content, 3-5 the same content as each other. Each PUT once,
      // as a client would: the server must sort out the race, not the test.
      Json bundle = Json::parse(raw);
      bundle["id"] = i < 3 ? "variant-" + std::to_string(i) : std::string("shared");
      auto r = call("PUT", "/v1/charts/clemente", bundle.dump());
      std::lock_guard lock(mutex);
      responses.push_back(std::move(r));
    });
  }
  for (auto& t : threads) t.join();
  std::set<int> revisions;
  int duplicates = 0;
  for (const auto& r : responses) {
    ASSERT_TRUE(r.status == 202 || r.status == 200) << r.status << " " << r.body;
    if (r.json()["duplicate"] == true) {
      ++duplicates;
    } else {
      EXPECT_TRUE(revisions.insert(r.json()["revision"].get<int>()).second) << r.body;
    }
  }
  EXPECT_EQ(duplicates, 2);
  // The scans' write-backs take revision numbers in between, so only distinctness is given.
  EXPECT_EQ(revisions.size(), 4U);
  for (int revision : revisions)
    EXPECT_EQ(scalar("SELECT source <> 'writeback' FROM chart_revision WHERE revision = " +
                     std::to_string(revision)),
              "t")
        << revision;
  EXPECT_EQ(count("SELECT count(*) FROM chart_revision WHERE source <> 'writeback'"), 4);
}

}  // namespace
}  // namespace chartflow::handlers
