// Issue #14, the authentication findings 8, 10, 12, 16, 17, 18, 19 and 20: one test each, named
// after its finding, against a real server and PostgreSQL. Each failed on the code before the
// fix: sessions outlived their token and user and never went idle; every bogus bearer token wrote
// an audit record with its whole path; ten wrong passwords from anywhere locked a user out
// everywhere, and X-Forwarded-For was never believed; `audit verify` missed the removal of the
// newest records; sign-in took any content type containing "application/json"; the first-start
// code outlived the first admin credential; password salts were 16 hex digits; the TLS server
// sent no HSTS, took OpenSSL's default ciphers, and the cookie was never Secure behind a proxy.
#include <argon2.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <fstream>

#include "app/modules.hpp"
#include "auth/audit.hpp"
#include "auth/audit_sealer.hpp"
#include "auth/sessions.hpp"
#include "auth/users.hpp"
#include "config/workflow_loader.hpp"
#include "http/api_routes.hpp"
#include "http/auth_routes.hpp"
#include "http/module_services.hpp"
#include "runtime/handler_setup.hpp"
#include "store/audit_store.hpp"
#include "store/store.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/pg_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The application's engine routes and authentication, with the AuthSettings a test chooses (as
// `chartflow serve` builds them from its flags).
class AuthServer {
 public:
  AuthServer(const std::string& dsn, http::AuthSettings auth = {},
             http::ServerSettings server = test_server_settings()) {
    const std::string workflows = std::string(CHARTFLOW_SOURCE_DIR) + "/workflows";
    modules_ = app::make_modules(workflows);
    auto handlers = modules_->handler_registry();
    auto loaded = config::load_workflow_dir(workflows, runtime::handler_check(*handlers));
    auto registry = std::make_shared<runtime::WorkflowRegistry>();
    {
      store::Store s(dsn);
      registry->publish(s, loaded.workflows);
    }
    runtime::EngineSettings settings;
    settings.dsn = dsn;
    settings.poll_interval = 200ms;
    engine_ = std::make_unique<runtime::Engine>(settings, handlers, registry);
    engine_->start();
    services_ = std::make_unique<http::ModuleServices>(*engine_, &metrics_);
    http::add_auth(router_, *engine_, std::move(auth));
    http::add_engine_routes(router_, *engine_, metrics_);
    http::add_module_routes(router_, *services_, *modules_);
    server_ = std::make_unique<http::Server>(std::move(server), router_);
    server_->start();
  }
  ~AuthServer() {
    server_->stop();
    engine_->drain();
  }
  unsigned short port() const { return server_->port(); }
  HttpResponse call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "", std::map<std::string, std::string> headers = {}) {
    if (!token.empty()) headers = with_bearer(token, std::move(headers));
    return request(method, "127.0.0.1", port(), target, body, headers);
  }
  HttpResponse sign_in(const Json& body, std::map<std::string, std::string> headers = {}) {
    return call("POST", "/v1/auth/signin", "", body.dump(), std::move(headers));
  }

 private:
  metrics::Metrics metrics_;
  http::Router router_;
  std::unique_ptr<ModuleRegistry> modules_;
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<http::ModuleServices> services_;
  std::unique_ptr<http::Server> server_;
};

struct CliResult {
  std::optional<int> exit;
  std::string out, err;
};

std::string cookie_of(const HttpResponse& r) {
  const std::string set = r.header("set-cookie");
  const auto start = set.find("cf_session=");
  if (start == std::string::npos) return "";
  return set.substr(start, set.find(';', start) - start);
}

class AuthHardeningTest : public PgTest {
 protected:
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }

  CliResult cli(std::vector<std::string> args) {
    static int n = 0;
    const auto base = fs::path(CHARTFLOW_BINARY).parent_path() / "test-logs" / "auth-hardening" /
                      (schema() + "-" + std::to_string(++n));
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

  // `chartflow users create` with the password on stdin; returns the exit status.
  int create_user(const std::string& name, const std::string& role, const std::string& password) {
    const std::string cmd = std::string(CHARTFLOW_BINARY) + " users create --name " + name +
                            " --role " + role + " --database-url '" + dsn() + "' >/dev/null 2>&1";
    FILE* p = ::popen(cmd.c_str(), "w");
    if (p == nullptr) return -1;
    std::fputs((password + "\n").c_str(), p);
    const int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  void with_sql(const std::function<void(Sql&)>& fn) {
    store::Store s(dsn());
    s.with_sql(fn);
  }
};

// Finding 8: a session ends with the token it was opened with, with its user (`chartflow users
// disable`; `enable` lets the user sign in again but revives no old session), and after an idle
// time (default 15 minutes, configurable).
TEST_F(AuthHardeningTest, Finding08_SessionsEndWithTheirTokenTheirUserAndAfterIdleTime) {
  AuthServer app(dsn());
  const std::string token = create_token(dsn(), "operator", std::nullopt, "ops-laptop");
  auto by_token = app.sign_in({{"token", token}});
  ASSERT_EQ(by_token.status, 200) << by_token.body;
  const std::string c1 = cookie_of(by_token);
  const std::string csrf1 = by_token.json().at("csrf_token");
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c1}}).status, 200);
  EXPECT_EQ(app.call("POST", "/v1/events/demo.diamond", "", "{}",
                     {{"Cookie", c1}, {"X-CSRF-Token", csrf1}})
                .status,
            202);

  auto revoked = cli({"tokens", "revoke", "ops-laptop"});
  ASSERT_EQ(revoked.exit, std::optional<int>(0)) << revoked.err;
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c1}}).status, 401)
      << "the session ended with its token";
  EXPECT_EQ(app.call("POST", "/v1/events/demo.diamond", "", "{}",
                     {{"Cookie", c1}, {"X-CSRF-Token", csrf1}})
                .status,
            401);

  // A user: disabled, its session ends and it cannot sign in; enabled, it signs in afresh.
  ASSERT_EQ(create_user("nurse.joy", "operator", "correct horse battery"), 0);
  const Json password{{"username", "nurse.joy"}, {"password", "correct horse battery"}};
  auto by_password = app.sign_in(password);
  ASSERT_EQ(by_password.status, 200) << by_password.body;
  const std::string c2 = cookie_of(by_password);
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c2}}).status, 200);
  auto disabled = cli({"users", "disable", "nurse.joy"});
  ASSERT_EQ(disabled.exit, std::optional<int>(0)) << disabled.err;
  EXPECT_THAT(disabled.out, HasSubstr("disabled user 'nurse.joy'"));
  EXPECT_EQ(cli({"users", "disable", "nurse.joy"}).exit, std::optional<int>(1)) << "already";
  EXPECT_EQ(cli({"users", "disable", "nobody"}).exit, std::optional<int>(1));
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c2}}).status, 401);
  EXPECT_EQ(app.sign_in(password).status, 401);
  auto enabled = cli({"users", "enable", "nurse.joy"});
  ASSERT_EQ(enabled.exit, std::optional<int>(0)) << enabled.err;
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c2}}).status, 401)
      << "enabling the user revives no old session";
  auto again = app.sign_in(password);
  ASSERT_EQ(again.status, 200) << again.body;
  const std::string c3 = cookie_of(again);

  // A user disabled behind the server's back (another process, plain SQL) is caught as well.
  scalar("UPDATE app_user SET disabled_at = now() WHERE name = 'nurse.joy'");
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c3}}).status, 401);
  scalar("UPDATE app_user SET disabled_at = NULL WHERE name = 'nurse.joy'");
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c3}}).status, 200);

  // Idle time: use resets it; 15 minutes without use end the session.
  scalar("UPDATE web_session SET last_seen_at = now() - interval '14 minutes'");
  auto session = app.call("GET", "/v1/auth/session", "", "", {{"Cookie", c3}});
  EXPECT_EQ(session.status, 200);
  EXPECT_EQ(session.json().value("idle_timeout_seconds", 0), 900);
  EXPECT_EQ(count("SELECT count(*) FROM web_session WHERE ended_at IS NULL AND last_seen_at > "
                  "now() - interval '1 minute'"),
            1)
      << "using the session reset its idle time";
  scalar("UPDATE web_session SET last_seen_at = now() - interval '16 minutes'");
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", c3}}).status, 401)
      << "automatic log-off after 15 idle minutes";

  // The idle time is the server's setting (serve --session-idle).
  http::AuthSettings longer;
  longer.session_idle = 30min;
  AuthServer patient(dsn(), longer);
  auto fourth = patient.sign_in(password);
  ASSERT_EQ(fourth.status, 200);
  scalar(
      "UPDATE web_session SET last_seen_at = now() - interval '16 minutes' WHERE ended_at IS "
      "NULL");
  EXPECT_EQ(patient.call("GET", "/v1/runs", "", "", {{"Cookie", cookie_of(fourth)}}).status, 200);

  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'user.disable' AND "
                  "resource_id = 'nurse.joy'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'user.enable'"), 1);
}

// Finding 10: unauthenticated attempts no longer write a record each into the undeletable audit
// table: they are counted per (action, outcome, source, minute) and folded into one record once
// the minute is over, and whatever path is stored is cut to 256 bytes.
TEST_F(AuthHardeningTest, Finding10_RefusedAttemptsAreCountedPerSourceAndMinuteWithClippedPaths) {
  AuthServer app(dsn());
  const int before = count("SELECT count(*) FROM audit_event");
  const std::string long_path = "/v1/runs/" + std::string(12000, 'a');
  const std::string bogus = "cft_" + std::string(64, '0');
  for (int i = 0; i < 40; ++i) ASSERT_EQ(app.call("GET", long_path, bogus).status, 401);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(
        app.sign_in({{"username", "nobody"}, {"password", "guess " + std::to_string(i)}}).status,
        401);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event"), before) << "no record per refused attempt";
  EXPECT_EQ(count("SELECT count FROM audit_refusal WHERE action = 'auth.token'"), 40);
  EXPECT_LE(count("SELECT max(length(path)) FROM audit_refusal"), 256);
  EXPECT_EQ(count("SELECT count FROM audit_refusal WHERE action = 'auth.signin'"), 3);

  // While the minute runs, sealing leaves the buckets alone; once it is over, one record each.
  with_sql([](Sql& sql) { auth::seal(sql); });
  EXPECT_EQ(count("SELECT count(*) FROM audit_event"), before);
  scalar("UPDATE audit_refusal SET minute = minute - interval '1 minute'");
  with_sql([](Sql& sql) { auth::seal(sql); });
  EXPECT_EQ(count("SELECT count(*) FROM audit_event"), before + 2);
  EXPECT_EQ(count("SELECT count(*) FROM audit_refusal"), 0);
  EXPECT_EQ(scalar("SELECT detail->>'count' FROM audit_event WHERE action = 'auth.token'"), "40");
  EXPECT_EQ(scalar("SELECT outcome || ' ' || actor || ' ' || remote FROM audit_event WHERE "
                   "action = 'auth.token'"),
            "failure anonymous 127.0.0.1");
  EXPECT_LE(count("SELECT length(detail->>'path') FROM audit_event WHERE action = 'auth.token'"),
            256);
  EXPECT_LT(count("SELECT length(detail::text) FROM audit_event WHERE action = 'auth.token'"), 600);
  EXPECT_EQ(scalar("SELECT detail->>'count' || ' ' || (detail->'names')::text FROM audit_event "
                   "WHERE action = 'auth.signin'"),
            "3 [\"nobody\"]");
  EXPECT_EQ(scalar("SELECT actor_name FROM audit_event WHERE action = 'auth.signin'"), "nobody");
  auth::VerifyResult verified;
  with_sql([&](Sql& sql) { verified = auth::verify_chain(sql); });
  EXPECT_TRUE(verified.ok);

  // Any record's path (a refused role, a refused CSRF token) is cut at 256 bytes, between UTF-8
  // characters.
  with_sql([](Sql& sql) {
    auth::AuditEntry e;
    e.actor = "token:1";
    e.action = "access.denied";
    e.outcome = "denied";
    e.detail = {
        {"path", "/v1/" + std::string(251, 'x') + "\xC3\xA9\xC3\xA9" + std::string(9000, 'y')}};
    auth::record(sql, e);
  });
  EXPECT_EQ(count("SELECT octet_length(detail->>'path') FROM audit_event WHERE action = "
                  "'access.denied'"),
            255)
      << "4 + 251 bytes, and the next 2-byte character would cross 256";
}

// Finding 12: failed sign-ins slow down the (user name, client address) pair with growing
// delays, so an attacker cannot lock a user out by name; behind a --trusted-proxy the client
// address is the forwarded one (for throttling and audit), and X-Forwarded-For from anyone else
// is ignored.
TEST_F(AuthHardeningTest, Finding12_SignInThrottlesPerUserAndAddressPairBehindATrustedProxy) {
  http::AuthSettings settings;
  settings.trusted_proxies = http::TrustedProxies::parse("10.0.0.0/8, 127.0.0.1");
  AuthServer app(dsn(), settings);
  ASSERT_EQ(create_user("dr.house", "operator", "vicodin and puzzles"), 0);
  ASSERT_EQ(create_user("dr.wilson", "operator", "oncology and patience"), 0);
  const std::map<std::string, std::string> attacker{{"X-Forwarded-For", "203.0.113.7"}};
  const std::map<std::string, std::string> doctor{{"X-Forwarded-For", "6.6.6.6, 198.51.100.20"}};
  auto sign_in = [&](const std::string& user, const std::string& password,
                     const std::map<std::string, std::string>& from) {
    return app.sign_in({{"username", user}, {"password", password}}, from);
  };

  // Ten wrong passwords for dr.house from the attacker: five are checked, then the pair waits.
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(sign_in("dr.house", "guess " + std::to_string(i), attacker).status, 401);
  for (int i = 5; i < 10; ++i) {
    auto r = sign_in("dr.house", "guess " + std::to_string(i), attacker);
    EXPECT_EQ(r.status, 429);
    EXPECT_THAT(r.header("retry-after"), ::testing::MatchesRegex("[0-9]+"));
    EXPECT_LE(std::stoi("0" + r.header("retry-after")), 15);
  }
  EXPECT_EQ(sign_in("dr.house", "vicodin and puzzles", attacker).status, 429)
      << "while the pair waits even the right password is not checked";
  // The doctor, from elsewhere, is not locked out; nor is a colleague at the attacker's address.
  auto doctor_in = sign_in("dr.house", "vicodin and puzzles", doctor);
  EXPECT_EQ(doctor_in.status, 200) << doctor_in.body;
  EXPECT_EQ(sign_in("dr.wilson", "oncology and patience", attacker).status, 200);

  // The delays grow: after the first one has passed, one more failure doubles it.
  scalar("UPDATE signin_failure SET last_failure_at = last_failure_at - interval '16 seconds'");
  EXPECT_EQ(sign_in("dr.house", "guess 10", attacker).status, 401);
  auto longer = sign_in("dr.house", "guess 11", attacker);
  EXPECT_EQ(longer.status, 429);
  EXPECT_GT(std::stoi("0" + longer.header("retry-after")), 15);
  EXPECT_LE(std::stoi("0" + longer.header("retry-after")), 30);

  // Throttling, and the audit trail, saw the forwarded addresses.
  EXPECT_EQ(count("SELECT failures FROM signin_failure WHERE name = 'dr.house' AND remote = "
                  "'203.0.113.7'"),
            6);
  EXPECT_EQ(count("SELECT count(*) FROM signin_failure WHERE remote = '127.0.0.1'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'auth.signin' AND outcome = "
                  "'success' AND remote = '198.51.100.20' AND actor = 'user:dr.house'"),
            1)
      << "the rightmost address that is not a trusted proxy";
  EXPECT_EQ(count("SELECT sum(count) FROM audit_refusal WHERE action = 'auth.signin' AND remote "
                  "= '203.0.113.7'"),
            13);

  // One address trying many names is held up as a whole beyond 100 failures.
  scalar(
      "INSERT INTO signin_failure SELECT 'user' || g, '192.0.2.1', 5, now() FROM "
      "generate_series(1, 20) g");
  EXPECT_EQ(
      sign_in("dr.wilson", "oncology and patience", {{"X-Forwarded-For", "192.0.2.1"}}).status,
      429);

  // X-Forwarded-For from a peer that is not a trusted proxy is ignored.
  http::AuthSettings untrusting;
  untrusting.trusted_proxies = http::TrustedProxies::parse("10.0.0.0/8");
  AuthServer direct(dsn(), untrusting);
  auto spoofed = direct.sign_in({{"username", "dr.wilson"}, {"password", "wrong"}},
                                {{"X-Forwarded-For", "198.51.100.99"}});
  EXPECT_EQ(spoofed.status, 401);
  EXPECT_EQ(count("SELECT count(*) FROM signin_failure WHERE remote = '198.51.100.99'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM signin_failure WHERE name = 'dr.wilson' AND remote = "
                  "'127.0.0.1'"),
            1);
  EXPECT_THROW(http::TrustedProxies::parse("10.0.0.0/33"), std::invalid_argument);
  EXPECT_THROW(http::TrustedProxies::parse("proxy.example"), std::invalid_argument);
}

// Finding 16: removing the newest records leaves an intact chain, so `audit verify` alone cannot
// see it; `audit verify --expect-head HASH` with a head noted outside the database can, and the
// server exports the head (a file, a log line) periodically.
TEST_F(AuthHardeningTest, Finding16_AnExpectedHeadCatchesTheRemovalOfTheNewestRecords) {
  TempDir dir("chartflow-audit-head");
  const fs::path head_file = dir.path() / "audit-head.jsonl";
  std::vector<auth::AuditHead> logged;
  std::mutex mu;
  {
    AuthServer app(dsn());
    store::Store sealer_store(dsn());
    auth::AuditSealer sealer(
        [&](const std::function<void(Sql&)>& fn) { sealer_store.with_sql(fn); }, nullptr, 50ms);
    sealer.export_head({head_file.string(), 100ms, [&](const auth::AuditHead& h) {
                          std::lock_guard lock(mu);
                          logged.push_back(h);
                        }});
    sealer.start();
    const std::string admin = create_token(dsn(), "admin");
    for (int i = 0; i < 6; ++i)
      EXPECT_EQ(app.call("POST", "/v1/runs/" + std::to_string(100 + i) + "/cancel", admin).status,
                404);
    ASSERT_TRUE(wait_until([&] {
      std::lock_guard lock(mu);
      return !logged.empty() && logged.back().count == 6;
    }));
    sealer.stop();
  }
  const std::string head = scalar("SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1");
  // The export: one JSON line per change of the head, the last one the head now.
  std::ifstream in(head_file);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  ASSERT_FALSE(last.empty()) << "no head exported to " << head_file;
  const Json exported = Json::parse(last);
  EXPECT_EQ(exported.at("head"), head);
  EXPECT_EQ(exported.at("count"), 6);
  EXPECT_TRUE(exported.contains("at"));

  auto ok = cli({"audit", "verify", "--expect-head", head});
  EXPECT_EQ(ok.exit, std::optional<int>(0)) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("expected head found: record 6"));

  // Someone switches the trigger off and deletes the newest three records.
  scalar("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only");
  scalar("DELETE FROM audit_event WHERE seq > 3");
  scalar("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only");
  auto plain = cli({"audit", "verify"});
  EXPECT_EQ(plain.exit, std::optional<int>(0)) << "the chain alone cannot tell";
  auto anchored = cli({"audit", "verify", "--expect-head", head});
  EXPECT_EQ(anchored.exit, std::optional<int>(3));
  EXPECT_THAT(anchored.err, HasSubstr("no record has the expected head hash " + head));
  // New records after the removal do not hide it.
  with_sql([](Sql& sql) {
    auth::AuditEntry e;
    e.actor = "test";
    e.action = "test.write";
    auth::record(sql, e);
  });
  EXPECT_EQ(cli({"audit", "verify", "--expect-head", head}).exit, std::optional<int>(3));
  EXPECT_NE(cli({"audit", "verify", "--expect-head", "not-a-hash"}).exit, std::optional<int>(0));
}

// Finding 17: sign-in takes the media type application/json only, parsed as a media type.
TEST_F(AuthHardeningTest, Finding17_SignInParsesTheContentTypeAsAMediaType) {
  AuthServer app(dsn());
  const std::string token = create_token(dsn(), "billing");
  auto with_type = [&](const std::string& type) {
    return app.sign_in({{"token", token}}, {{"Content-Type", type}}).status;
  };
  EXPECT_EQ(with_type("text/plain; charset=application/json"), 415);
  EXPECT_EQ(with_type("text/plain;application/json"), 415);
  EXPECT_EQ(with_type("application/jsonp"), 415);
  EXPECT_EQ(with_type("multipart/form-data; boundary=application/json"), 415);
  EXPECT_EQ(with_type("application/json; charset=utf-8"), 200);
  EXPECT_EQ(with_type("application/json ;charset=UTF-8"), 200);
  EXPECT_TRUE(http::is_json_media_type("application/json"));
  EXPECT_FALSE(http::is_json_media_type("application/json-patch+json"));
  EXPECT_TRUE(http::is_json_media_type(" Application/JSON "));
}

// Finding 18: the first-start admin code stops working once an admin credential exists.
TEST_F(AuthHardeningTest, Finding18_TheFirstStartCodeStopsWorkingOnceAnAdminCredentialExists) {
  AuthServer app(dsn());
  std::optional<std::string> code;
  with_sql([&](Sql& sql) { code = auth::first_start_code(sql); });
  ASSERT_TRUE(code);
  // An admin token made on the command line: the bootstrap is over.
  create_token(dsn(), "admin", std::nullopt, "root-token");
  EXPECT_EQ(app.sign_in({{"code", *code}}).status, 401);
  // Revoking that token does not bring the code back.
  ASSERT_EQ(cli({"tokens", "revoke", "root-token"}).exit, std::optional<int>(0));
  EXPECT_EQ(app.sign_in({{"code", *code}}).status, 401);
  EXPECT_EQ(count("SELECT count(*) FROM signin_code WHERE used_at IS NOT NULL"), 0);
}

// Finding 18, the other admin credential: an admin user made on the command line.
TEST_F(AuthHardeningTest, Finding18_TheFirstStartCodeStopsWorkingOnceAnAdminUserExists) {
  AuthServer app(dsn());
  std::optional<std::string> code;
  with_sql([&](Sql& sql) { code = auth::first_start_code(sql); });
  ASSERT_TRUE(code);
  ASSERT_EQ(create_user("chief", "admin", "a long admin password"), 0);
  EXPECT_EQ(app.sign_in({{"code", *code}}).status, 401);
}

// Finding 19: Argon2id salts are 16 random bytes (not 16 hex digits), and hashes made with the
// old salts still verify.
TEST_F(AuthHardeningTest, Finding19_PasswordSaltsAre16RandomBytesAndOldHashesStillVerify) {
  auto decode_b64 = [](const std::string& in) {
    static const std::string kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : in) {
      const auto v = kAlphabet.find(c);
      if (v == std::string::npos) break;
      buffer = (buffer << 6) | static_cast<unsigned>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += static_cast<char>((buffer >> bits) & 0xFF);
      }
    }
    return out;
  };
  int non_hex_salts = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "user" + std::to_string(i);
    ASSERT_EQ(create_user(name, "operator", "a long enough password"), 0);
    const std::string encoded =
        scalar("SELECT password_hash FROM app_user WHERE name = '" + name + "'");
    // $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
    const auto salt_start = encoded.find('$', encoded.find("p=")) + 1;
    const std::string salt =
        decode_b64(encoded.substr(salt_start, encoded.find('$', salt_start) - salt_start));
    EXPECT_EQ(salt.size(), 16u) << encoded;
    if (salt.find_first_not_of("0123456789abcdef") != std::string::npos) ++non_hex_salts;
  }
  EXPECT_EQ(non_hex_salts, 3) << "salts drawn from 256 values per byte, not 16 hex digits";

  // A hash as the earlier versions made it (the salt 16 hex characters) still signs in.
  const std::string password = "an old but long password";
  const std::string hex_salt = "0123456789abcdef";
  std::string old(argon2_encodedlen(2, 19456, 1, 16, 32, Argon2_id), '\0');
  ASSERT_EQ(argon2id_hash_encoded(2, 19456, 1, password.data(), password.size(), hex_salt.data(),
                                  16, 32, old.data(), old.size()),
            ARGON2_OK);
  old.resize(old.find('\0'));
  EXPECT_TRUE(auth::verify_password(old, password));
  scalar("UPDATE app_user SET password_hash = '" + old + "' WHERE name = 'user0'");
  AuthServer app(dsn());
  EXPECT_EQ(app.sign_in({{"username", "user0"}, {"password", password}}).status, 200);
}

// Finding 20: under TLS every answer carries HSTS and the server takes Mozilla's intermediate
// ciphers only (ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2); behind a trusted proxy
// that says the client used https the session cookie is Secure, and only then.
TEST_F(AuthHardeningTest, Finding20_HstsOwnCipherListAndSecureCookiesBehindATrustedProxy) {
  namespace beast = boost::beast;
  namespace bhttp = beast::http;
  namespace net = boost::asio;
  namespace ssl = net::ssl;
  TempDir dir("chartflow-tls-auth");
  const std::string cert = (dir.path() / "cert.pem").string();
  const std::string key = (dir.path() / "key.pem").string();
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout " +
      key + " -out " + cert + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto server = test_server_settings();
  server.tls = http::TlsFiles{cert, key};
  http::AuthSettings over_tls;
  over_tls.secure_cookie = true;
  AuthServer tls(dsn(), over_tls, server);

  // GET /healthz over TLS 1.2 offering only `ciphers`: the response, or throws on a refusal.
  auto tls_get = [&](const std::string& ciphers) {
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(cert);
    ctx.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx.native_handle(), (ciphers + ":@SECLEVEL=0").c_str());
    net::io_context ioc;
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    beast::get_lowest_layer(stream).expires_after(10s);
    beast::get_lowest_layer(stream).connect(
        net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), tls.port()));
    stream.handshake(ssl::stream_base::client);
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/healthz", 11};
    req.set(bhttp::field::host, "localhost");
    bhttp::write(stream, req);
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buf, res);
    beast::error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    return res;
  };
  auto good = tls_get("ECDHE-ECDSA-AES256-GCM-SHA384");
  EXPECT_EQ(good.result_int(), 200);
  EXPECT_EQ(std::string(good[bhttp::field::strict_transport_security]), "max-age=31536000");
  EXPECT_EQ(tls_get("ECDHE-ECDSA-CHACHA20-POLY1305").result_int(), 200);
  EXPECT_ANY_THROW(tls_get("ECDHE-ECDSA-AES128-SHA")) << "CBC suites are not in the list";
  EXPECT_ANY_THROW(tls_get("ECDHE-ECDSA-AES256-SHA384"));

  // Plain HTTP answers carry no HSTS.
  AuthServer plain(dsn());
  EXPECT_EQ(plain.call("GET", "/healthz", "").header("strict-transport-security"), "");

  // Behind a trusted proxy terminating TLS.
  const std::string token = create_token(dsn(), "billing");
  http::AuthSettings behind_proxy;
  behind_proxy.trusted_proxies = http::TrustedProxies::parse("127.0.0.1");
  AuthServer proxied(dsn(), behind_proxy);
  auto https = proxied.sign_in({{"token", token}}, {{"X-Forwarded-Proto", "https"}});
  ASSERT_EQ(https.status, 200) << https.body;
  EXPECT_THAT(https.header("set-cookie"), HasSubstr("; Secure"));
  auto http_only = proxied.sign_in({{"token", token}}, {{"X-Forwarded-Proto", "http"}});
  EXPECT_THAT(http_only.header("set-cookie"), Not(HasSubstr("Secure")));
  // The same header from a client that is not a trusted proxy changes nothing.
  auto spoofed = plain.sign_in({{"token", token}}, {{"X-Forwarded-Proto", "https"}});
  ASSERT_EQ(spoofed.status, 200);
  EXPECT_THAT(spoofed.header("set-cookie"), Not(HasSubstr("Secure")));
}

}  // namespace
}  // namespace chartflow::testing
