// Authentication, roles and the audit trail end to end: tokens made by the real `chartflow
// tokens` command, a chart uploaded by an uploader, reviewed by the one doctor it is assigned
// to, seen redacted by an operator, and every step of it in a hash-chained audit trail that
// `chartflow audit verify` checks and that tampering breaks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "auth/audit.hpp"
#include "auth/audit_sealer.hpp"
#include "engine/util/hash.hpp"
#include "store/store.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

namespace fs = std::filesystem;

const std::string kChart = std::string(CHARTFLOW_SOURCE_DIR) +
                           "/tests/data/charts/"
                           "enc-abdul-koepp-20170321-emer-emergency-room-admission-procedure-"
                           "8b7f6202.json";

fs::path log_dir() { return fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" / "auth"; }

struct CliResult {
  std::optional<int> exit;
  std::string out, err;
};

class AuthTest : public PgTest {
 protected:
  CliResult cli(std::vector<std::string> args) {
    static int n = 0;
    const auto base = log_dir() / (schema() + "-" + std::to_string(++n));
    args.insert(args.begin(), CHARTFLOW_BINARY);
    args.push_back("--database-url");
    args.push_back(dsn());
    ChildProcess p(args, base.string() + ".out", fs::path(base.string() + ".err"));
    CliResult r;
    r.exit = p.wait_exit(60s);
    r.out = read_file(base.string() + ".out");
    r.err = read_file(base.string() + ".err");
    return r;
  }
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }
};

TEST_F(AuthTest, TokensAreCreatedShownOnceStoredHashedAndRevoked) {
  AppServer app(dsn());
  const std::string token = create_token_cli({"--database-url", dsn()}, "operator", "ops-script",
                                             log_dir() / (schema() + "-create.out"));
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(token.size(), 4u + 64u) << "cft_ and 32 random bytes in hex";
  // Only the hash is stored.
  EXPECT_EQ(
      count("SELECT count(*) FROM api_token WHERE token_hash = '" + util::sha256_hex(token) + "'"),
      1);
  EXPECT_EQ(
      count("SELECT count(*) FROM api_token t WHERE t::text LIKE '%" + token.substr(4) + "%'"), 0);
  EXPECT_EQ(app.call("GET", "/v1/runs", token).status, 200);

  auto list = cli({"tokens", "list"});
  ASSERT_EQ(list.exit, std::optional<int>(0)) << list.err;
  EXPECT_THAT(list.out, HasSubstr("ops-script\toperator\tlive"));
  EXPECT_THAT(list.out, ::testing::Not(HasSubstr(token.substr(4, 16))));

  // A name names one live token.
  auto dup = cli({"tokens", "create", "--role", "operator", "--name", "ops-script"});
  EXPECT_EQ(dup.exit, std::optional<int>(1));
  EXPECT_THAT(dup.err, HasSubstr("exists"));
  auto bad_role = cli({"tokens", "create", "--role", "root", "--name", "x"});
  EXPECT_EQ(bad_role.exit, std::optional<int>(1));
  EXPECT_THAT(bad_role.err, HasSubstr("role must be one of"));
  auto no_assignee = cli({"tokens", "create", "--role", "reviewer", "--name", "doc"});
  EXPECT_EQ(no_assignee.exit, std::optional<int>(1));
  EXPECT_THAT(no_assignee.err, HasSubstr("--assignee"));

  auto revoke = cli({"tokens", "revoke", "ops-script"});
  ASSERT_EQ(revoke.exit, std::optional<int>(0)) << revoke.err;
  auto after = app.call("GET", "/v1/runs", token);
  EXPECT_EQ(after.status, 401);
  EXPECT_EQ(after.json(), Json({{"error", "authentication required"}}));
  EXPECT_EQ(cli({"tokens", "revoke", "ops-script"}).exit, std::optional<int>(1));

  // Expired tokens stop working.
  auto expiring =
      cli({"tokens", "create", "--role", "operator", "--name", "short", "--expires", "1m"});
  ASSERT_EQ(expiring.exit, std::optional<int>(0)) << expiring.err;
  const std::string short_token = expiring.out.substr(0, expiring.out.find('\n'));
  EXPECT_EQ(app.call("GET", "/v1/runs", short_token).status, 200);
  scalar("UPDATE api_token SET expires_at = now() - interval '1 second' WHERE name = 'short'");
  EXPECT_EQ(app.call("GET", "/v1/runs", short_token).status, 401);
  EXPECT_EQ(
      cli({"tokens", "create", "--role", "operator", "--name", "y", "--expires", "soon"}).exit,
      std::optional<int>(1));

  // Not a bearer credential at all, or garbage: 401 as well.
  EXPECT_EQ(
      app.call("GET", "/v1/runs", "", "", {{"Authorization", "Basic YWRtaW46YWRtaW4="}}).status,
      401);
  EXPECT_EQ(app.call("GET", "/v1/runs", "Bearer").status, 401);
  // Refused tokens are counted per source and minute (folded into one record once the minute
  // is over), not recorded one by one.
  EXPECT_GE(count("SELECT sum(count) FROM audit_refusal WHERE action = 'auth.token' AND outcome "
                  "= 'failure'"),
            3);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action IN ('token.create', "
                  "'token.revoke') AND actor LIKE 'cli:%'"),
            3);
}

// The doctor sees and decides only what is assigned to them; the operator sees the run without
// what its steps made of the chart; billing reads the ledger; every read and change is audited.
TEST_F(AuthTest, RolesScopeWhatEachCredentialSeesAndEverythingIsAudited) {
  AppServer app(dsn());
  const std::string admin = create_token(dsn(), "admin");
  const std::string uploader = create_token(dsn(), "uploader", std::nullopt, "nurse-tablet-7");
  const std::string operator_token = create_token(dsn(), "operator");
  const std::string billing = create_token(dsn(), "billing");
  const std::string chart = read_file(kChart);
  ASSERT_FALSE(chart.empty());

  auto up = app.call("PUT", "/v1/charts/chart-a", uploader, chart,
                     {{"Content-Type", "application/fhir+json"}});
  ASSERT_EQ(up.status, 202) << up.body;
  const auto run_id = up.json().at("runs")[0].get<std::int64_t>();
  EXPECT_EQ(app.call("GET", "/v1/charts/chart-a", uploader).status, 403)
      << "an uploader uploads, nothing else";

  Json review;
  ASSERT_TRUE(wait_until([&] {
    auto r = app.call("GET", "/v1/reviews?status=pending", admin);
    if (r.status != 200 || r.json().at("reviews").empty()) return false;
    review = r.json().at("reviews")[0];
    return true;
  }));
  const std::string assignee = review.at("assignee").get<std::string>();
  const std::string review_id = review.at("id").dump();
  const std::string doctor = create_token(dsn(), "reviewer", assignee);
  const std::string other_doctor = create_token(dsn(), "reviewer", "Practitioner/someone-else");

  // Worklists are per doctor, whatever the query asks for.
  auto mine = app.call("GET", "/v1/reviews?assignee=Practitioner/someone-else", doctor);
  ASSERT_EQ(mine.status, 200) << mine.body;
  ASSERT_EQ(mine.json().at("reviews").size(), 1u);
  auto theirs = app.call("GET", "/v1/reviews", other_doctor);
  ASSERT_EQ(theirs.status, 200);
  EXPECT_TRUE(theirs.json().at("reviews").empty()) << theirs.body;
  // Charts behind my reviews only, naming the credential that uploaded each revision (#16: a
  // doctor saw `token:N`).
  auto doctors_view = app.call("GET", "/v1/charts/chart-a", doctor);
  ASSERT_EQ(doctors_view.status, 200);
  const Json revisions = doctors_view.json().at("revisions");
  ASSERT_FALSE(revisions.empty());
  EXPECT_EQ(revisions[0].at("source"), "upload");
  EXPECT_EQ(revisions[0].value("uploaded_by_name", ""), "nurse-tablet-7") << revisions.dump();
  EXPECT_EQ(app.call("GET", "/v1/charts/chart-a/revisions/1", doctor).status, 200);
  auto refused = app.call("GET", "/v1/charts/chart-a", other_doctor);
  EXPECT_EQ(refused.status, 403);
  EXPECT_THAT(refused.body, ::testing::Not(HasSubstr("Koepp")));
  EXPECT_EQ(app.call("GET", "/v1/charts/chart-a/revisions/1", other_doctor).status, 403);
  auto not_mine = app.call("POST", "/v1/reviews/" + review_id + "/decision", other_doctor,
                           R"({"decision": "reject"})");
  EXPECT_EQ(not_mine.status, 403) << not_mine.body;

  // The operator sees the run's shape but not what its steps made of the chart.
  ASSERT_TRUE(wait_until([&] {
    auto r = app.call("GET", "/v1/runs/" + std::to_string(run_id), operator_token);
    if (r.status != 200) return false;
    const Json run = r.json();  // kept alive for the loop
    for (const auto& step : run.at("steps"))
      if (step.at("status") == "waiting") return true;
    return false;
  })) << app.call("GET", "/v1/runs/" + std::to_string(run_id), admin).body;
  auto redacted = app.call("GET", "/v1/runs/" + std::to_string(run_id), operator_token);
  const Json redacted_run = redacted.json();  // kept alive for the loop
  EXPECT_EQ(redacted_run.value("redacted", false), true);
  for (const auto& step : redacted_run.at("steps"))
    if (step.at("status") == "succeeded") {
      EXPECT_EQ(step.at("output"), Json({{"redacted", "chart content is not shown to operators"}}));
    }
  auto full = app.call("GET", "/v1/runs/" + std::to_string(run_id), admin);
  EXPECT_FALSE(full.json().contains("redacted"));
  EXPECT_EQ(app.call("GET", "/v1/charts/chart-a", operator_token).status, 403);

  auto decided = app.call("POST", "/v1/reviews/" + review_id + "/decision", doctor,
                          R"({"decision": "approve", "comment": "fine"})");
  ASSERT_EQ(decided.status, 200) << decided.body;
  EXPECT_EQ(count("SELECT count(*) FROM review WHERE decided_by LIKE 'token:%'"), 1);
  ASSERT_TRUE(wait_until([&] {
    return app.call("GET", "/v1/runs/" + std::to_string(run_id), admin)
               .json()
               .value("status", "") == "succeeded";
  }));
  EXPECT_EQ(app.call("GET", "/v1/charts/chart-a/ledger", billing).status, 200);
  const Json billing_view = app.call("GET", "/v1/charts/chart-a", billing).json();
  EXPECT_TRUE(billing_view.contains("ledger_total")) << billing_view.dump();
  EXPECT_FALSE(billing_view.contains("open_questions")) << "no clinical detail for billing";
  EXPECT_FALSE(billing_view.contains("patient")) << "billing sees no patient name or birth date";
  EXPECT_FALSE(billing_view.at("review").contains("comment"));
  const Json admin_view = app.call("GET", "/v1/charts/chart-a", admin).json();
  EXPECT_TRUE(admin_view.at("review").contains("comment"));
  EXPECT_TRUE(admin_view.at("patient").is_object()) << admin_view.dump();
  EXPECT_EQ(app.call("GET", "/v1/charts/chart-a/revisions/1", billing).status, 403)
      << "billing reads no clinical Bundle";
  auto cancel = app.call("POST", "/v1/runs/" + std::to_string(run_id) + "/cancel", operator_token);
  EXPECT_EQ(cancel.status, 409) << "the run is done; the refusal is audited too";

  // The trail: who, role, what, which resource, from where, outcome; never content.
  auto trail = app.call("GET", "/v1/audit?limit=1000", admin);
  ASSERT_EQ(trail.status, 200) << trail.body;
  std::map<std::string, int> actions;
  const Json events = trail.json();  // kept alive for the loops
  for (const auto& e : events.at("events")) {
    actions[e.at("action").get<std::string>() + "/" + e.at("outcome").get<std::string>()]++;
    EXPECT_EQ(e.at("remote"), "127.0.0.1") << e.dump();
  }
  EXPECT_EQ(actions["chart.upload/success"], 1);
  EXPECT_EQ(actions["review.decide/success"], 1);
  EXPECT_EQ(actions["review.decide/denied"], 1);
  EXPECT_EQ(actions["chart.read/success"], 3);
  EXPECT_EQ(actions["chart.read/denied"], 1);
  EXPECT_EQ(actions["chart_revision.read/success"], 1);
  EXPECT_EQ(actions["chart_revision.read/denied"], 1);
  EXPECT_EQ(actions["ledger.read/success"], 1);
  EXPECT_EQ(actions["run.cancel/failure"], 1);
  EXPECT_GE(actions["access.denied/denied"], 3);
  EXPECT_THAT(trail.body, ::testing::Not(HasSubstr("Koepp")));
  EXPECT_THAT(trail.body, ::testing::Not(HasSubstr("fine")));
  const Json upload = *std::find_if(events.at("events").begin(), events.at("events").end(),
                                    [](const Json& e) { return e.at("action") == "chart.upload"; });
  EXPECT_EQ(upload.at("resource_type"), "chart");
  EXPECT_EQ(upload.at("resource_id"), "chart-a");
  EXPECT_EQ(upload.at("role"), "uploader");
  EXPECT_THAT(upload.at("actor").get<std::string>(), ::testing::StartsWith("token:"));

  auto uploads = app.call("GET", "/v1/audit?action=chart.upload&format=fhir", admin);
  ASSERT_EQ(uploads.status, 200) << uploads.body;
  EXPECT_EQ(uploads.header("content-type"), "application/fhir+json");
  const Json bundle = uploads.json();
  EXPECT_EQ(bundle.at("resourceType"), "Bundle");
  ASSERT_EQ(bundle.at("entry").size(), 1u);
  // The mapping itself is unit-tested (engine/auth/audit_test.cpp); here: the filter applies.
  const Json& event = bundle.at("entry")[0].at("resource");
  EXPECT_EQ(event.at("subtype")[0].at("code"), "chart.upload");
  EXPECT_EQ(event.at("entity")[0].at("what").at("identifier").at("value"), "chart-a");
  EXPECT_EQ(app.call("GET", "/v1/audit?format=xml", admin).status, 400);
  EXPECT_EQ(app.call("GET", "/v1/audit?since=yesterday", admin).status, 400);
  EXPECT_EQ(app.call("GET", "/v1/audit", operator_token).status, 403);
}

TEST_F(AuthTest, AuditTrailIsAppendOnlyAndVerifyNamesTheFirstTamperedRecord) {
  {
    AppServer app(dsn());
    const std::string admin = create_token(dsn(), "admin");
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(app.call("POST", "/v1/runs/" + std::to_string(100 + i) + "/cancel", admin).status,
                404);
  }
  ASSERT_EQ(count("SELECT count(*) FROM audit_event"), 4);
  auto ok = cli({"audit", "verify"});
  EXPECT_EQ(ok.exit, std::optional<int>(0)) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("intact: 4 record(s)"));

  // chartflow never updates or deletes a record, and the database refuses to.
  EXPECT_ANY_THROW(scalar("UPDATE audit_event SET outcome = 'success'"));
  EXPECT_ANY_THROW(scalar("DELETE FROM audit_event"));
  EXPECT_ANY_THROW(scalar("TRUNCATE audit_event"));

  // Someone with the power to switch the trigger off changes record 2 behind our back.
  const std::string second = scalar("SELECT id FROM audit_event ORDER BY id OFFSET 1 LIMIT 1");
  scalar("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only");
  scalar("UPDATE audit_event SET resource_id = '999' WHERE id = " + second);
  auto broken = cli({"audit", "verify"});
  EXPECT_EQ(broken.exit, std::optional<int>(3));
  EXPECT_THAT(broken.err, HasSubstr("BROKEN at record " + second));

  // Put back, then remove a record instead: the next one no longer chains.
  scalar("UPDATE audit_event SET resource_id = '101' WHERE id = " + second);
  EXPECT_EQ(cli({"audit", "verify"}).exit, std::optional<int>(0));
  scalar("DELETE FROM audit_event WHERE id = " + second);
  const std::string third = scalar("SELECT id FROM audit_event ORDER BY id OFFSET 1 LIMIT 1");
  auto gap = cli({"audit", "verify"});
  EXPECT_EQ(gap.exit, std::optional<int>(3));
  EXPECT_THAT(gap.err, HasSubstr("BROKEN at record " + third));
}

auth::AuditEntry test_entry(const std::string& resource_id = "") {
  auth::AuditEntry e;
  e.actor = "test";
  e.action = "test.write";
  if (!resource_id.empty()) e.resource_id = resource_id;
  return e;
}

// A record committed after a later-numbered one is sealed after it: the chain follows the
// order records became visible, so an open transaction never holds up the others' records.
TEST_F(AuthTest, RecordsCommittedOutOfOrderAreSealedInTheOrderTheyBecameVisible) {
  store::Store slow(dsn());
  store::Store fast(dsn());
  std::promise<void> recorded, fast_done;
  std::thread open_transaction([&] {
    slow.with_sql([&](Sql& sql) {
      auth::record(sql, test_entry("slow"));  // draws the lower id, commits last
      recorded.set_value();
      fast_done.get_future().wait();
    });
  });
  recorded.get_future().wait();
  // Not blocked by the open transaction: the writer no longer queues behind a chain lock.
  fast.with_sql([&](Sql& sql) {
    auth::record(sql, test_entry("fast"));
    EXPECT_EQ(auth::seal(sql), 1);  // only what is committed (and its own record) is sealed
  });
  fast_done.set_value();
  open_transaction.join();
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE seq IS NULL"), 1);
  auth::VerifyResult r;
  fast.with_sql([&](Sql& sql) { r = auth::verify_chain(sql); });
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.checked, 2);
  EXPECT_EQ(scalar("SELECT string_agg(resource_id, ',' ORDER BY seq) FROM audit_event"),
            "fast,slow");
  EXPECT_LT(std::stoll(scalar("SELECT id FROM audit_event WHERE resource_id = 'slow'")),
            std::stoll(scalar("SELECT id FROM audit_event WHERE resource_id = 'fast'")));
}

// The server's sealer chains what this process recorded within a period or two, and what is
// left at stop; without new records it sends nothing.
TEST_F(AuthTest, TheBackgroundSealerChainsRecordsSoonAfterTheyCommit) {
  store::Store s(dsn());
  std::atomic<int> runs{0};
  auth::AuditSealer sealer(
      [&](const std::function<void(Sql&)>& fn) {
        ++runs;
        s.with_sql(fn);
      },
      nullptr, 100ms);
  const auth::AuditEntry e = test_entry();
  s.with_sql([&](Sql& sql) { auth::record(sql, e); });
  sealer.start();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (count("SELECT count(*) FROM audit_event WHERE seq IS NULL") > 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE seq IS NULL"), 0);
  const int after_seal = runs.load();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(runs.load(), after_seal) << "an idle sealer queried the database";
  store::Store other(dsn());
  other.with_sql([&](Sql& sql) { auth::record(sql, e); });
  sealer.stop();
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE seq IS NULL"), 0);
  auth::VerifyResult r;
  s.with_sql([&](Sql& sql) { r = auth::verify_chain(sql); });
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.checked, 2);
}

// Sealing is the one change a record may see, once, and only its seq and hash.
TEST_F(AuthTest, OnlyTheSealMayChangeARecordAndOnlyOnce) {
  store::Store s(dsn());
  s.with_sql([&](Sql& sql) { auth::record(sql, test_entry()); });
  // Unsealed: a change that also touches content is refused, as is forging a seal by hand
  // together with a content change.
  EXPECT_ANY_THROW(scalar("UPDATE audit_event SET actor = 'someone-else'"));
  EXPECT_ANY_THROW(scalar("UPDATE audit_event SET seq = 1, hash = 'x', actor = 'someone-else'"));
  s.with_sql([&](Sql& sql) { EXPECT_EQ(auth::seal(sql), 1); });
  const std::string sealed = scalar("SELECT hash FROM audit_event");
  EXPECT_EQ(sealed.size(), 64u);
  // Sealed: no second seal, no change at all.
  EXPECT_ANY_THROW(scalar("UPDATE audit_event SET seq = 2, hash = 'y'"));
  s.with_sql([&](Sql& sql) { EXPECT_EQ(auth::seal(sql), 0); });
  EXPECT_EQ(scalar("SELECT hash FROM audit_event"), sealed);
  // A writer cannot pick its own id, seq or hash.
  scalar(
      "INSERT INTO audit_event (id, actor, action, outcome, seq, hash) VALUES (999999, 'x', "
      "'test.write', 'success', 7, 'forged') RETURNING id");
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE id = 999999 OR seq = 7 OR hash = "
                  "'forged'"),
            0);
}

// Writers racing each other still build one unbroken chain, sealed in the order their
// records became visible.
TEST_F(AuthTest, ConcurrentAuditWritersKeepTheChainIntact) {
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      store::Store s(dsn());
      for (int i = 0; i < kEach; ++i) {
        s.with_sql([&](Sql& sql) {
          auth::AuditEntry e;
          e.actor = "thread:" + std::to_string(t);
          e.action = "test.write";
          e.resource_id = std::to_string(i);
          auth::record(sql, e);
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(count("SELECT count(*) FROM audit_event"), kThreads * kEach);
  auth::VerifyResult r;
  store::Store s(dsn());
  s.with_sql([&](Sql& sql) { r = auth::verify_chain(sql); });
  EXPECT_TRUE(r.ok) << "broken at " << r.first_broken.value_or(0);
  EXPECT_EQ(r.checked, kThreads * kEach);
}

// `chartflow upload` sends CHARTFLOW_TOKEN; without one it says what is missing.
TEST_F(AuthTest, UploadClientSendsTheTokenFromTheEnvironment) {
  AppServer app(dsn());
  const std::string server = "http://127.0.0.1:" + std::to_string(app.port());
  auto upload = [&](const std::string& token, const std::string& name) {
    if (token.empty())
      ::unsetenv("CHARTFLOW_TOKEN");
    else
      ::setenv("CHARTFLOW_TOKEN", token.c_str(), 1);
    ChildProcess p({CHARTFLOW_BINARY, "upload", kChart, "--server", server},
                   log_dir() / (schema() + name));
    const auto rc = p.wait_exit(60s);
    ::unsetenv("CHARTFLOW_TOKEN");
    return std::make_pair(rc, p.log());
  };
  auto [rc, out] = upload("", "-upload-anon.out");
  EXPECT_EQ(rc, std::optional<int>(1));
  EXPECT_THAT(out, HasSubstr("401"));
  EXPECT_THAT(out, HasSubstr("CHARTFLOW_TOKEN"));
  auto [rc2, out2] = upload(create_token(dsn(), "uploader"), "-upload.out");
  EXPECT_EQ(rc2, std::optional<int>(0)) << out2;
  EXPECT_THAT(out2, HasSubstr(": 202 "));
  // The anonymous upload stored nothing (the run may have written a question back since).
  EXPECT_EQ(count("SELECT count(*) FROM chart_revision WHERE source = 'upload'"), 1);
}

// Without a server on the data dir, the command starts the embedded cluster for itself and
// stops it again.
TEST(AuthDataDirTest, TokensCommandRunsItsOwnClusterWhenNoServerHoldsTheDataDir) {
  std::string pattern = "/tmp/cf-auth-data-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path data = pattern;
  // As root, the cluster runs as `postgres`, which must get through to it.
  fs::permissions(data, fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
  const std::string token =
      create_token_cli({"--data-dir", data.string()}, "uploader", "tablet-7", log_dir() / "dd.out");
  EXPECT_FALSE(token.empty());
  EXPECT_FALSE(fs::exists(data / "pg" / "data" / "postmaster.pid")) << "cluster left running";
  ChildProcess list({CHARTFLOW_BINARY, "tokens", "list", "--data-dir", data.string()},
                    log_dir() / "dd-list.out", log_dir() / "dd-list.err");
  EXPECT_EQ(list.wait_exit(60s), std::optional<int>(0)) << read_file(log_dir() / "dd-list.err");
  EXPECT_THAT(read_file(log_dir() / "dd-list.out"), HasSubstr("tablet-7\tuploader\tlive"));
  EXPECT_FALSE(fs::exists(data / "pg" / "data" / "postmaster.pid")) << "cluster left running";
  std::error_code ignored;
  fs::remove_all(data, ignored);
}

}  // namespace
}  // namespace chartflow::testing
