// The chart handlers against a real PostgreSQL (schema/charts/): every chart in
// tests/data/charts goes through upload, scan, review, billing, insurance and discharge, and the
// tables hold what the FHIR content implies. Handlers run through a test StepContext whose
// transaction commits like the engine's (Completed/Fail/Wait commit, Retry rolls back); the last
// test runs the real workflow file through the engine.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "handlers/billing/billable_items.hpp"
#include "handlers/chart_api/chart_api.hpp"
#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/chart_module.hpp"
#include "handlers/common/chart_cache.hpp"
#include "handlers/discharge/release.hpp"
#include "handlers/doctor_review/doctor_lookup.hpp"
#include "handlers/doctor_review/doctor_review.hpp"
#include "handlers/missing_field_scan/missing_field_scan.hpp"
#include "handlers/missing_field_scan/rules.hpp"
#include "handlers/testing/chart_test_data.hpp"
#include "handlers/testing/step_context.hpp"
#include "store/store.hpp"
#include "tests/support/engine_harness.hpp"
#include "tests/support/fake_http_server.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::handlers {

using billing::PriceList;
using doctor_review::find_primary_doctor;
using doctor_review::kDefaultFallbackQueue;
using missing_field_scan::kDefaultRulesFile;
using missing_field_scan::RuleSet;
using missing_field_scan::scan_chart;
namespace {

using chartflow::testing::FakeHttpServer;
using chartflow::testing::ReceivedRequest;

struct RollBack {};

class ChartHandlersTest : public chartflow::testing::PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    store_ = std::make_unique<store::Store>(dsn());
    journal_store_ = std::make_unique<store::Store>(dsn());
    bill_dir_ = std::filesystem::temp_directory_path() /
                ("chartflow-bills-" + schema() + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(bill_dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(bill_dir_);
    journal_store_.reset();
    store_.reset();
    PgTest::TearDown();
  }

  // Registers the chart handlers with insurer and bill settings pointing at test endpoints.
  std::shared_ptr<HandlerRegistry> registry(const std::string& insurer_url) {
    auto r = std::make_shared<HandlerRegistry>();
    ChartHandlerOptions options;
    options.insurers =
        Json{{"timeout", "2s"},
             {"payors", {{"default", {{"url", insurer_url}}}, {"no_insurance", {{"skip", true}}}}}};
    options.bill_delivery =
        Json{{"channels", {{{"name", "folder"}, {"type", "folder"}, {"dir", bill_dir_.string()}}}}};
    register_chart_handlers(*r, chartflow::handlers::testing::workflows_dir(), options);
    return r;
  }

  // Runs one attempt in its own transaction: committed unless the outcome is Retry.
  StepOutcome run_step(Handler& handler, std::int64_t run_id, const std::string& step,
                       const Json& event, const Json& input = Json::object(),
                       const Wake* wake = nullptr, int attempt = 1) {
    StepOutcome outcome;
    try {
      store_->with_sql([&](Sql& sql) {
        testing::TestStepContext ctx(sql, journal(), run_id, step, event, input, wake, attempt);
        outcome = handler.run(ctx);
        if (std::holds_alternative<Retry>(outcome)) throw RollBack{};
      });
    } catch (const RollBack&) {
    }
    return outcome;
  }

  // Retries like the engine until the outcome is not Retry (at most `max_attempts`).
  StepOutcome run_until_done(Handler& handler, std::int64_t run_id, const std::string& step,
                             const Json& event, const Json& input = Json::object(),
                             int max_attempts = 8) {
    StepOutcome outcome;
    for (int attempt = 1; attempt <= max_attempts; ++attempt) {
      outcome = run_step(handler, run_id, step, event, input, nullptr, attempt);
      if (!std::holds_alternative<Retry>(outcome)) break;
    }
    return outcome;
  }

  struct Upload {
    StoredRevision stored;
    Json event;
  };
  Upload upload(const std::string& chart_id, const std::string& raw,
                const std::string& uploader = "nurse-tablet-7") {
    Json bundle = Json::parse(raw);
    EXPECT_EQ(validate_chart(bundle), std::nullopt);
    Upload u;
    store_->with_sql(
        [&](Sql& sql) { u.stored = store_revision(sql, chart_id, raw, bundle, uploader); });
    u.event = chart_event_body(bundle, chart_id, u.stored.revision);
    return u;
  }

  std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }

  testing::JournalFn journal() {
    return [this](const std::function<void(Sql&)>& fn) { journal_store_->with_sql(fn); };
  }

  template <typename F>
  auto with_sql(F&& f) {
    std::optional<std::decay_t<decltype(f(std::declval<Sql&>()))>> out;
    store_->with_sql([&](Sql& sql) { out = f(sql); });
    return *out;
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::Store> journal_store_;  // the journal's own connection
  std::filesystem::path bill_dir_;
};

// The steps of workflows/chart-update.yaml in its order: {step, handler, input}.
const std::vector<std::tuple<std::string, std::string, Json>>& chart_update_steps() {
  static const std::vector<std::tuple<std::string, std::string, Json>> kSteps = {
      {"scan", "missing_field_scan", Json::object()},
      {"review", "doctor_review", Json::object()},
      {"billing", "billing", Json::object()},
      {"insurance", "insurance", Json::object()},
      {"discharge", "discharge", Json::object()},
      {"final_notice", "insurance", {{"kind", "final"}}},
      {"send_bill", "bill_send", Json::object()}};
  return kSteps;
}

const Json& output_of(const StepOutcome& outcome) {
  static const Json kNull;
  if (const auto* c = std::get_if<Completed>(&outcome)) return c->output;
  ADD_FAILURE() << "step did not complete (variant index " << outcome.index() << ")";
  return kNull;
}

std::string chart_id_of(const std::filesystem::path& file) { return file.stem().string(); }

TEST_F(ChartHandlersTest, EveryChartThroughEveryHandler) {
  // The insurer fails its first two requests: deliveries are retried, and the insurer sees
  // each notification (by Idempotency-Key) in the end.
  FakeHttpServer insurer([](const ReceivedRequest&, int i) { return i < 2 ? 503 : 200; });
  auto handlers = registry(insurer.url("/claims"));
  const RuleSet rules = RuleSet::load(testing::workflows_dir() / kDefaultRulesFile);
  const PriceList prices;

  std::int64_t run_id = 0;
  std::size_t released_charts = 0;
  std::map<std::string, std::size_t> expected_items;
  for (const auto& file : testing::chart_files()) {
    const std::string chart_id = chart_id_of(file);
    SCOPED_TRACE(chart_id);
    const std::string raw = testing::read_file(file);
    auto up = upload(chart_id, raw);
    ASSERT_FALSE(up.stored.duplicate);
    ASSERT_EQ(up.stored.revision, 1);
    Json bundle = Json::parse(raw);
    fhir::BundleIndex index(bundle);
    ++run_id;

    // scan: one open question per finding, written back as revision 2.
    std::set<std::pair<std::string, std::string>> findings;
    for (const auto& f : scan_chart(index, rules)) findings.emplace(f.rule_id, f.resource_ref);
    const Json scan = output_of(run_step(*handlers->find("missing_field_scan"), run_id, "scan",
                                         up.event, {{"rules", "rules/missing-fields.yaml"}}));
    EXPECT_EQ(scan["findings"], findings.size());
    EXPECT_EQ(scan["open_questions"], findings.size());
    EXPECT_EQ(scan["writeback_revision"], 2);
    EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'open' AND chart_id = '" +
                    chart_id + "'"),
              static_cast<std::int64_t>(findings.size()));

    // review: waits for the doctor's decision, assigned to the practitioner found.
    auto review = run_step(*handlers->find("doctor_review"), run_id, "review", up.event,
                           {{"deadline", "48h"}});
    ASSERT_TRUE(std::holds_alternative<WaitForSignal>(review));
    EXPECT_EQ(std::get<WaitForSignal>(review).signal, "review");
    auto doctor = find_primary_doctor(index);
    EXPECT_EQ(scalar("SELECT assignee FROM review WHERE chart_id = '" + chart_id + "'"),
              doctor ? doctor->assignee : std::string(kDefaultFallbackQueue));

    // billing: one ledger entry per claim item (no MedicationAdministration in Synthea).
    ASSERT_EQ(up.event["has_billable"], true);
    std::size_t items = 0;
    for (const Json* claim : index.of_type("Claim")) items += (*claim)["item"].size();
    expected_items[chart_id] = items;
    const Json billing =
        output_of(run_step(*handlers->find("billing"), run_id, "billing", up.event));
    EXPECT_EQ(billing["entries_added"], items);
    EXPECT_EQ(billing["entries_total"], items);

    // insurance: delivers (retrying through the insurer's failures).
    const Json insurance =
        output_of(run_until_done(*handlers->find("insurance"), run_id, "insurance", up.event));
    EXPECT_FALSE(insurance["payor"].is_null());

    // discharge: only a released patient's bill is closed.
    if (up.event["released"] == true) {
      ++released_charts;
      const Json discharge =
          output_of(run_until_done(*handlers->find("discharge"), run_id, "discharge", up.event));
      EXPECT_EQ(discharge["released"], true);
      // What discharge queued goes out in the steps after it.
      output_of(run_until_done(*handlers->find("insurance"), run_id, "final_notice", up.event,
                               {{"kind", "final"}}));
      const Json sent =
          output_of(run_until_done(*handlers->find("bill_send"), run_id, "send_bill", up.event));
      EXPECT_EQ(sent["delivered"], Json::array({"folder"}));
      EXPECT_TRUE(std::filesystem::exists(bill_dir_ / (chart_id + "-invoice.txt")));
    } else {
      const Json discharge =
          output_of(run_step(*handlers->find("discharge"), run_id, "discharge", up.event));
      EXPECT_EQ(discharge["released"], false);
    }
  }

  EXPECT_EQ(released_charts, 12U);
  EXPECT_EQ(count("SELECT count(*) FROM invoice"), 12);
  EXPECT_EQ(count("SELECT count(*) FROM bill_delivery"), 12);
  EXPECT_EQ(count("SELECT count(*) FROM review"), 35);
  EXPECT_EQ(count("SELECT count(*) FROM ledger_entry"), 664);
  for (const auto& [chart_id, items] : expected_items) {
    EXPECT_EQ(count("SELECT count(*) FROM ledger_entry WHERE chart_id = '" + chart_id + "'"),
              static_cast<std::int64_t>(items))
        << chart_id;
  }
  // Invoice totals equal the ledger; ledger per claim equals the Claim totals (Synthea).
  EXPECT_EQ(count("SELECT count(*) FROM invoice i WHERE i.total <> (SELECT sum(amount) FROM "
                  "ledger_entry l WHERE l.chart_id = i.chart_id)"),
            0);
  // Every notification was delivered or (no_insurance) skipped; none pending or failed.
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status IN ('pending', 'failed')"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status = 'skipped'"), 1);
  // One final notification per payor of each released chart (full-fletcher-hyatt has two).
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE kind = 'final'"), 13);
  std::set<std::string> delivered_keys;
  for (const auto& r : insurer.requests()) delivered_keys.insert(r.header("Idempotency-Key"));
  EXPECT_EQ(static_cast<std::int64_t>(delivered_keys.size()),
            count("SELECT count(*) FROM insurer_outbox WHERE status = 'delivered'"));
  for (const auto& r : insurer.requests()) {
    EXPECT_EQ(r.header("Content-Type"), "application/fhir+json");
    Json claim = Json::parse(r.body);
    EXPECT_EQ(claim["resourceType"], "Claim");
    EXPECT_EQ(r.body.find("Hodkiewicz"), std::string::npos);  // no patient names
  }
  // Attempts are recorded for delivered rows.
  EXPECT_GE(count("SELECT count(*) FROM insurer_delivery_attempt"),
            count("SELECT count(*) FROM insurer_outbox WHERE status = 'delivered'"));
}

TEST_F(ChartHandlersTest, ReuploadsAndRerunsChangeNothing) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 200; });
  auto handlers = registry(insurer.url("/claims"));
  const auto file = testing::charts_dir() /
                    "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json";
  const std::string raw = testing::read_file(file);
  auto up = upload("lemuel", raw);
  auto run_all = [&](std::int64_t run_id) {
    for (const auto& [step, name, input] : chart_update_steps())
      run_step(*handlers->find(name), run_id, step, up.event, input);
  };
  const std::vector<std::string> tables = {
      "chart_revision", "chart_question",        "review",
      "ledger_entry",   "insurer_outbox",        "invoice",
      "bill_delivery",  "bill_delivery_attempt", "insurer_delivery_attempt"};
  auto snapshot = [&] {
    std::map<std::string, std::int64_t> counts;
    for (const auto& t : tables) counts[t] = count("SELECT count(*) FROM " + t);
    return counts;
  };
  run_all(1);
  const auto first = snapshot();
  EXPECT_EQ(first.at("ledger_entry"), 2);
  EXPECT_EQ(first.at("invoice"), 1);
  EXPECT_EQ(first.at("chart_revision"), 2);  // upload + write-back

  // The identical content again: a duplicate, nothing stored.
  auto again = upload("lemuel", raw);
  EXPECT_TRUE(again.stored.duplicate);
  EXPECT_EQ(again.stored.revision, 1);
  EXPECT_EQ(again.stored.content_hash, up.stored.content_hash);

  // Re-running every step of the same run changes nothing.
  run_all(1);
  EXPECT_EQ(snapshot(), first);
  // A second run for the same event (an operator's replay) bills nothing twice; only the new
  // run's own review is added.
  run_all(2);
  auto after = snapshot();
  EXPECT_EQ(after.at("review"), first.at("review") + 1);
  after["review"] = first.at("review");
  EXPECT_EQ(after, first);
  EXPECT_EQ(insurer.requests().size(), 2U);  // one claim + one final notification
}

TEST_F(ChartHandlersTest, LaterUploadThatSuppliesTheFieldsClosesTheQuestions) {
  auto handlers = registry("");
  auto& scan = *handlers->find("missing_field_scan");
  const std::string raw =
      testing::read_file(testing::charts_dir() /
                         "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json");
  auto up = upload("garrett", raw);
  output_of(run_step(scan, 1, "scan", up.event));
  const std::string encounter_ref = "Encounter/516ed05c-b485-4c95-a975-c0ba265549dd";
  EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'open' AND rule_id = "
                  "'encounter-practitioner' AND resource_ref = '" +
                  encounter_ref + "'"),
            1);

  // The written-back chart carries one requested Task per open question.
  auto written = with_sql([](Sql& sql) { return get_revision(sql, "garrett", 2); });
  ASSERT_TRUE(written.has_value());
  std::size_t tasks = 0;
  const Json written_bundle = Json::parse(*written);
  for (const auto& e : written_bundle["entry"]) tasks += e["resource"]["resourceType"] == "Task";
  EXPECT_EQ(static_cast<std::int64_t>(tasks),
            count("SELECT count(*) FROM chart_question WHERE status = 'open'"));

  // The nurse supplies a practitioner and a Coverage.
  Json bundle = Json::parse(raw);
  for (auto& e : bundle["entry"]) {
    if (e["resource"]["resourceType"] == "Encounter") {
      e["resource"]["participant"] = {{{"individual", {{"reference", "Practitioner/123"}}}}};
    }
  }
  bundle["entry"].push_back(
      {{"fullUrl", "urn:uuid:cov-1"},
       {"resource", {{"resourceType", "Coverage"}, {"id", "cov-1"}, {"status", "active"}}}});
  auto fixed = upload("garrett", bundle.dump());
  EXPECT_EQ(fixed.stored.revision, 3);
  const Json out = output_of(run_step(scan, 2, "scan", fixed.event));
  EXPECT_EQ(out["closed"], 2);
  EXPECT_EQ(out["writeback_revision"], 4);
  EXPECT_EQ(scalar("SELECT status FROM chart_question WHERE rule_id = 'encounter-practitioner'"),
            "closed");
  EXPECT_EQ(scalar("SELECT closed_revision FROM chart_question WHERE rule_id = 'coverage'"), "3");

  // An older scan finishing late does not reopen them.
  const Json stale = output_of(run_step(scan, 1, "scan", up.event));
  EXPECT_EQ(stale["stale"], true);
  EXPECT_EQ(count("SELECT count(*) FROM chart_question WHERE status = 'open' AND rule_id IN "
                  "('encounter-practitioner', 'coverage')"),
            0);

  Json questions = with_sql([](Sql& sql) { return list_questions(sql, "garrett"); });
  std::size_t closed = 0;
  for (const auto& q : questions["questions"]) closed += q["status"] == "closed" ? 1 : 0;
  EXPECT_EQ(closed, 2U);

  auto chart = with_sql([](Sql& sql) { return get_chart(sql, "garrett"); });
  ASSERT_TRUE(chart.has_value());
  EXPECT_EQ((*chart)["revisions"].size(), 4U);
  EXPECT_EQ((*chart)["revisions"][1]["source"], "writeback");
  EXPECT_EQ((*chart)["revisions"][0]["uploaded_by"], "nurse-tablet-7");
  for (const auto& q : (*chart)["open_questions"]) EXPECT_NE(q["rule_id"], "coverage");
}

TEST_F(ChartHandlersTest, ReviewDecisionsAndEscalation) {
  auto handlers = registry("");
  auto& review = *handlers->find("doctor_review");
  const std::string raw =
      testing::read_file(testing::charts_dir() /
                         "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  auto up = upload("lemuel", raw);

  auto wait = run_step(review, 7, "review", up.event, {{"deadline", "2h"}});
  ASSERT_TRUE(std::holds_alternative<WaitForSignal>(wait));
  const auto due = std::get<WaitForSignal>(wait).deadline;
  ASSERT_TRUE(due.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*due - Clock::now()).count(), 7200, 60);
  // A re-run finds the same review and the same deadline.
  auto rerun = run_step(review, 7, "review", up.event, {{"deadline", "2h"}});
  ASSERT_TRUE(std::holds_alternative<WaitForSignal>(rerun));
  EXPECT_NEAR(
      std::chrono::duration<double>(*std::get<WaitForSignal>(rerun).deadline - *due).count(), 0,
      0.01);
  EXPECT_EQ(count("SELECT count(*) FROM review"), 1);

  Json listed = with_sql([](Sql& sql) { return list_reviews(sql, "pending", "580", 10); });
  ASSERT_EQ(listed["reviews"].size(), 1U);
  const Json& r = listed["reviews"][0];
  EXPECT_EQ(r["chart_id"], "lemuel");
  EXPECT_EQ(r["run_id"], 7);
  EXPECT_EQ(r["status"], "pending");
  EXPECT_EQ(r["summary"]["patient"], "Lemuel Hodkiewicz");
  EXPECT_EQ(r["summary"]["encounter"], "Encounter Inpatient");
  // The doctor by name, as the chart names the practitioner the review is assigned to.
  const std::string doctor_name =
      scalar("SELECT task->'owner'->>'display' FROM review WHERE run_id = 7");
  EXPECT_FALSE(doctor_name.empty());
  EXPECT_EQ(r["assignee_name"], doctor_name);
  const std::int64_t review_id = r["id"];

  using Status = DecisionResult::Status;
  EXPECT_EQ(
      with_sql([&](Sql& sql) { return decide_review(sql, review_id, "maybe", {}, "dr"); }).status,
      Status::kBadRequest);
  EXPECT_EQ(
      with_sql([&](Sql& sql) { return decide_review(sql, 999999, "approve", {}, "dr"); }).status,
      Status::kNotFound);
  auto decided = with_sql(
      [&](Sql& sql) { return decide_review(sql, review_id, "approve", "looks fine", "dr-580"); });
  ASSERT_EQ(decided.status, Status::kOk);
  EXPECT_EQ(decided.run_id, 7);
  EXPECT_EQ(decided.step, "review");
  EXPECT_EQ(
      with_sql([&](Sql& sql) { return decide_review(sql, review_id, "reject", {}, "dr"); }).status,
      Status::kConflict);

  auto stored_review = with_sql([&](Sql& sql) { return get_review(sql, review_id); });
  ASSERT_TRUE(stored_review.has_value());
  EXPECT_EQ((*stored_review)["status"], "approved");
  EXPECT_EQ((*stored_review)["comment"], "looks fine");
  EXPECT_EQ((*stored_review)["decided_by"], "dr-580");
  EXPECT_EQ((*stored_review)["task"]["resourceType"], "Task");
  EXPECT_EQ((*stored_review)["task"]["owner"]["identifier"]["value"], "580");
  EXPECT_EQ(with_sql([](Sql& sql) { return get_review(sql, 999999); }), std::nullopt);

  Wake signal{Wake::Kind::kSignal, "review", decided.signal_payload};
  const Json done = output_of(run_step(review, 7, "review", up.event, {}, &signal));
  EXPECT_EQ(done["decision"], "approve");
  EXPECT_EQ(done["assignee"], "580");
  EXPECT_EQ(done["review_id"], review_id);

  // Another run: nobody answers before the deadline, so the review escalates and waits again.
  run_step(review, 8, "review", up.event, {{"deadline", "1h"}});
  Wake deadline{Wake::Kind::kDeadline, "", Json::object()};
  auto escalated = run_step(review, 8, "review", up.event,
                            {{"deadline", "1h"}, {"escalation_queue", "queue:chief"}}, &deadline);
  ASSERT_TRUE(std::holds_alternative<WaitForSignal>(escalated));
  EXPECT_EQ(scalar("SELECT assignee FROM review WHERE run_id = 8"), "queue:chief");
  EXPECT_EQ(scalar("SELECT original_assignee FROM review WHERE run_id = 8"), "580");
  EXPECT_EQ(scalar("SELECT escalations FROM review WHERE run_id = 8"), "1");
  listed = with_sql([](Sql& sql) { return list_reviews(sql, "pending", "queue:chief", 10); });
  ASSERT_EQ(listed["reviews"].size(), 1U);
  EXPECT_TRUE(listed["reviews"][0]["assignee_name"].is_null()) << "a queue has no doctor's name";
  // A decision carried only by a signal's body decides nothing (issue #14: a run signal is not
  // a credential); the step keeps waiting until the decision route records one.
  Wake forged{Wake::Kind::kSignal,
              "review",
              {{"decision", "reject"}, {"comment", "no"}, {"decided_by", "Practitioner/580"}}};
  auto still = run_step(review, 8, "review", up.event, {}, &forged);
  ASSERT_TRUE(std::holds_alternative<WaitForSignal>(still));
  EXPECT_EQ(scalar("SELECT status FROM review WHERE run_id = 8"), "pending");
  const auto review8 = std::stoll(scalar("SELECT id FROM review WHERE run_id = 8"));
  auto rejected =
      with_sql([&](Sql& sql) { return decide_review(sql, review8, "reject", "no", "dr-580"); });
  ASSERT_EQ(rejected.status, Status::kOk);
  Wake reject{Wake::Kind::kSignal, "review", rejected.signal_payload};
  EXPECT_EQ(output_of(run_step(review, 8, "review", up.event, {}, &reject))["decision"], "reject");
  EXPECT_EQ(scalar("SELECT status FROM review WHERE run_id = 8"), "rejected");

  auto chart = with_sql([](Sql& sql) { return get_chart(sql, "lemuel"); });
  ASSERT_TRUE(chart.has_value());
  EXPECT_EQ((*chart)["review"]["run_id"], 8);
  EXPECT_EQ((*chart)["review"]["status"], "rejected");
  EXPECT_TRUE((*chart)["bill"].is_null());
}

TEST_F(ChartHandlersTest, DeathCertificationGoesToTheFallbackQueue) {
  auto handlers = registry("");
  const std::string raw =
      testing::read_file(testing::charts_dir() /
                         "enc-garrett-thompson-19730719-amb-death-certification-516ed05c.json");
  auto up = upload("garrett", raw);
  run_step(*handlers->find("doctor_review"), 1, "review", up.event,
           {{"fallback_queue", "queue:records-office"}});
  EXPECT_EQ(scalar("SELECT assignee FROM review"), "queue:records-office");
}

TEST_F(ChartHandlersTest, ApiViewsOfAClosedChart) {
  FakeHttpServer insurer([](const ReceivedRequest&, int) { return 202; });
  auto handlers = registry(insurer.url("/claims"));
  const auto file = testing::charts_dir() /
                    "enc-jordan-cruickshank-20170624-emer-emergency-room-admission-b3fa30ba.json";
  const std::string raw = testing::read_file(file);
  auto up = upload("jordan", raw);
  for (const auto& [step, name, input] : chart_update_steps())
    run_step(*handlers->find(name), 1, step, up.event, input);
  auto chart = with_sql([](Sql& sql) { return get_chart(sql, "jordan"); });
  ASSERT_TRUE(chart.has_value());
  EXPECT_EQ((*chart)["latest_revision"], 2);
  EXPECT_EQ((*chart)["bill"]["status"], "issued");
  EXPECT_EQ((*chart)["bill"]["deliveries"], Json::array({"folder"}));
  EXPECT_EQ((*chart)["ledger_entries"], 19);
  EXPECT_DOUBLE_EQ((*chart)["ledger_total"].get<double>(), (*chart)["bill"]["total"].get<double>());
  EXPECT_EQ((*chart)["ledger_currency"], (*chart)["bill"]["currency"]);
  // The patient beside the chart id: the latest revision's Patient.
  std::string birth_date;
  const Json bundle = Json::parse(raw);
  for (const auto& e : bundle.at("entry"))
    if (e.at("resource").value("resourceType", "") == "Patient")
      birth_date = e.at("resource").value("birthDate", "");
  ASSERT_FALSE(birth_date.empty());
  EXPECT_EQ((*chart)["patient"],
            Json({{"name", "Jordan Cruickshank"}, {"birth_date", birth_date}}));
  EXPECT_EQ(with_sql([](Sql& sql) { return get_chart(sql, "nobody"); }), std::nullopt);

  auto revision = with_sql([](Sql& sql) { return get_revision(sql, "jordan", 1); });
  ASSERT_TRUE(revision.has_value());
  EXPECT_EQ(*revision, raw);  // byte for byte
  EXPECT_EQ(with_sql([](Sql& sql) { return get_revision(sql, "jordan", 9); }), std::nullopt);

  Json ledger = with_sql([](Sql& sql) { return list_ledger(sql, "jordan"); });
  EXPECT_EQ(ledger["count"], 19);
  EXPECT_EQ(ledger["entries"][0]["currency"], "USD");
  EXPECT_EQ(ledger["entries"][0]["payor"], "medicaid");

  Json deliveries = with_sql([](Sql& sql) { return list_deliveries(sql, "jordan"); });
  ASSERT_EQ(deliveries["outbox"].size(), 2U);  // claim + final, both to medicaid
  for (const auto& o : deliveries["outbox"]) {
    EXPECT_EQ(o["status"], "delivered");
    EXPECT_EQ(o["payor"], "medicaid");
    EXPECT_EQ(o["attempts_detail"].size(), 1U);
    EXPECT_EQ(o["attempts_detail"][0]["status_code"], 202);
  }
  ASSERT_EQ(deliveries["bill_deliveries"].size(), 1U);
  const Json& bill_delivery = deliveries["bill_deliveries"][0];
  EXPECT_EQ(bill_delivery["status"], "delivered");
  EXPECT_EQ(bill_delivery["idempotency_key"], "bill:jordan:folder");
  ASSERT_EQ(bill_delivery["attempts_detail"].size(), 1U);
  EXPECT_FALSE(bill_delivery["attempts_detail"][0]["answered_at"].is_null());

  const std::string bill = testing::read_file(bill_dir_ / "jordan-invoice.txt");
  EXPECT_NE(bill.find("PATIENT BILL"), std::string::npos);
  EXPECT_NE(bill.find("Total"), std::string::npos);
}

TEST_F(ChartHandlersTest, ConcurrentUploadsOfOneChartTakeDistinctRevisions) {
  const std::string raw =
      testing::read_file(testing::charts_dir() / "full-clemente-kreiger-1484a42d.json");
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::vector<StoredRevision> results;
  threads.reserve(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      store::Store s(dsn());
      // Threads 0-2 upload distinct content, 3-5 the same content as each other.
      Json bundle = Json::parse(raw);
      bundle["id"] = i < 3 ? "variant-" + std::to_string(i) : std::string("shared");
      const std::string body = bundle.dump();
      StoredRevision stored;
      for (int attempt = 0; attempt < 5; ++attempt) {
        try {
          s.with_sql(
              [&](Sql& sql) { stored = store_revision(sql, "clemente", body, bundle, "t"); });
          break;
        } catch (const store::TransientError&) {
        } catch (const store::ConflictError&) {  // lost the race on the unique hash index
        }
      }
      std::lock_guard lock(mutex);
      results.push_back(stored);
    });
  }
  for (auto& t : threads) t.join();
  std::set<int> revisions;
  int duplicates = 0;
  for (const auto& r : results) {
    if (r.duplicate) {
      ++duplicates;
    } else {
      EXPECT_TRUE(revisions.insert(r.revision).second) << r.revision;
    }
  }
  EXPECT_EQ(duplicates, 2);
  EXPECT_EQ(revisions, (std::set<int>{1, 2, 3, 4}));
  EXPECT_EQ(scalar("SELECT latest_revision FROM chart WHERE chart_id = 'clemente'"), "4");
}

TEST_F(ChartHandlersTest, WorkflowFileRunsThroughTheEngine) {
  FakeHttpServer insurer([](const ReceivedRequest&, int i) { return i == 0 ? 500 : 200; });
  auto handlers = registry(insurer.url("/claims"));
  const std::string workflow = testing::read_file(testing::workflows_dir() / "chart-update.yaml");
  chartflow::testing::EngineHarness h(dsn(), {workflow}, handlers);
  h.start();

  const std::string raw =
      testing::read_file(testing::charts_dir() /
                         "enc-lemuel-hodkiewicz-20000223-imp-encounter-inpatient-8ca871d7.json");
  Json bundle = Json::parse(raw);
  StoredRevision stored;
  h.store().with_sql(
      [&](Sql& sql) { stored = store_revision(sql, "lemuel-e2e", raw, bundle, "tablet"); });
  const Json event = chart_event_body(bundle, "lemuel-e2e", stored.revision);
  const auto run_id = h.start_run("chart.uploaded", event);
  ASSERT_TRUE(chartflow::testing::wait_until(
      [&] { return h.step(run_id, "review").value("status", "") == "waiting"; }));

  Json reviews;
  h.store().with_sql([&](Sql& sql) { reviews = list_reviews(sql, "pending", "580", 10); });
  ASSERT_EQ(reviews["reviews"].size(), 1U);
  DecisionResult decided;
  h.store().with_sql([&](Sql& sql) {
    decided = decide_review(sql, reviews["reviews"][0]["id"].get<std::int64_t>(), "approve",
                            std::nullopt, "dr-580");
  });
  ASSERT_EQ(decided.status, DecisionResult::Status::kOk);
  std::string message;
  EXPECT_EQ(h.store().signal(decided.run_id, "review", decided.signal_payload, &message),
            store::Store::CommandResult::kOk)
      << message;
  ASSERT_TRUE(h.wait_status(run_id, "succeeded")) << h.run(run_id).dump();
  EXPECT_EQ(h.step(run_id, "billing")["output"]["entries_added"], 2);
  EXPECT_EQ(h.step(run_id, "discharge")["output"]["released"], true);
  EXPECT_EQ(h.step(run_id, "send_bill")["output"]["delivered"], Json::array({"folder"}));
  EXPECT_EQ(h.step(run_id, "review")["output"]["decision"], "approve");
  EXPECT_EQ(count("SELECT count(*) FROM insurer_outbox WHERE status = 'delivered'"), 2);

  // A chart without a discharge skips the discharge step.
  const std::string raw2 = testing::read_file(
      testing::charts_dir() /
      "enc-liz-conn-20120929-imp-admission-to-surgical-department-b262dced.json");
  Json bundle2 = Json::parse(raw2);
  h.store().with_sql(
      [&](Sql& sql) { stored = store_revision(sql, "liz-e2e", raw2, bundle2, "tablet"); });
  const auto run2 = h.start_run("chart.uploaded", chart_event_body(bundle2, "liz-e2e", 1));
  ASSERT_TRUE(chartflow::testing::wait_until(
      [&] { return h.step(run2, "insurance").value("status", "") == "succeeded"; }));
  // The discharge step is decided once insurance is done, possibly a moment after.
  EXPECT_TRUE(chartflow::testing::wait_until([&] {
    return h.step(run2, "discharge").value("status", "") == "skipped";
  })) << h.run(run2).dump();
  EXPECT_EQ(h.step(run2, "discharge").value("status", ""), "skipped");
}

}  // namespace
}  // namespace chartflow::handlers
