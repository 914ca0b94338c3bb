// Dashboard sessions end to end: sign-in with a password, a token or the first-start code; the
// HttpOnly SameSite=Strict cookie; CSRF protection on every state change made with the cookie
// (bearer requests are exempt); sign-out; expiry; and `chartflow users create` reading the
// password from stdin.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "auth/sessions.hpp"
#include "store/store.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using ::testing::HasSubstr;

class AuthSessionTest : public PgTest {
 protected:
  int count(const std::string& sql) { return std::stoi("0" + scalar(sql)); }

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

  static std::string session_cookie(const HttpResponse& r) {
    const std::string set = r.header("set-cookie");
    const auto start = set.find("cf_session=");
    if (start == std::string::npos) return "";
    return set.substr(start, set.find(';', start) - start);
  }
};

TEST_F(AuthSessionTest, PasswordSignInOpensACookieSessionThatNeedsCsrfForChanges) {
  AppServer app(dsn());
  ASSERT_EQ(create_user("nurse.joy", "operator", "correct horse battery"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM app_user WHERE password_hash LIKE '$argon2id$%'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM app_user WHERE password_hash LIKE '%horse%'"), 0);
  EXPECT_NE(create_user("short", "operator", "too short"), 0) << "passwords of 12+ characters";
  EXPECT_NE(create_user("nurse.joy", "operator", "another long password"), 0) << "name taken";

  auto wrong = app.call("POST", "/v1/auth/signin", "",
                        R"({"username": "nurse.joy", "password": "wrong horse battery"})");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.header("set-cookie"), "");
  EXPECT_EQ(
      app.call("POST", "/v1/auth/signin", "", R"({"username": "nobody", "password": "x"})").status,
      401);
  EXPECT_EQ(app.call("POST", "/v1/auth/signin", "", R"({"username": "nurse.joy"})").status, 400);
  EXPECT_EQ(
      app.call("POST", "/v1/auth/signin", "", R"({"token": "x"})", {{"Content-Type", "text/plain"}})
          .status,
      415)
      << "a cross-site form cannot sign anyone in";

  auto ok = app.call("POST", "/v1/auth/signin", "",
                     R"({"username": "nurse.joy", "password": "correct horse battery"})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  const std::string set = ok.header("set-cookie");
  EXPECT_THAT(set, HasSubstr("HttpOnly"));
  EXPECT_THAT(set, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(set, HasSubstr("Path=/"));
  EXPECT_THAT(set, ::testing::Not(HasSubstr("Secure"))) << "no TLS in this test";
  const std::string cookie = session_cookie(ok);
  ASSERT_FALSE(cookie.empty());
  const std::string csrf = ok.json().at("csrf_token").get<std::string>();
  EXPECT_EQ(ok.json().at("role"), "operator");
  EXPECT_EQ(count("SELECT count(*) FROM web_session WHERE id_hash = '" +
                  cookie.substr(std::string("cf_session=").size()) + "'"),
            0)
      << "the session id is stored only as a hash";

  // Reads need the cookie only; the session route hands the CSRF token back after a reload.
  auto me = app.call("GET", "/v1/auth/session", "", "", {{"Cookie", cookie}});
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json().at("name"), "nurse.joy");
  EXPECT_EQ(me.json().at("csrf_token"), csrf);
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", cookie}}).status, 200);

  // Changes need the CSRF token as well.
  auto forged = app.call("POST", "/v1/events/demo.diamond", "", "{}", {{"Cookie", cookie}});
  EXPECT_EQ(forged.status, 403);
  EXPECT_THAT(forged.body, HasSubstr("X-CSRF-Token"));
  EXPECT_EQ(app.call("POST", "/v1/events/demo.diamond", "", "{}",
                     {{"Cookie", cookie}, {"X-CSRF-Token", csrf + "0"}})
                .status,
            403);
  EXPECT_EQ(app.call("POST", "/v1/events/demo.diamond", "", "{}",
                     {{"Cookie", cookie}, {"X-CSRF-Token", csrf}})
                .status,
            202);
  // A bearer token is not sent by browsers on their own: no CSRF token needed.
  EXPECT_EQ(
      app.call("POST", "/v1/events/demo.diamond", create_token(dsn(), "operator"), "{}").status,
      202);

  // Sign-out ends the session on the server, not only in the browser.
  auto out =
      app.call("POST", "/v1/auth/signout", "", "{}", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}});
  ASSERT_EQ(out.status, 200) << out.body;
  EXPECT_THAT(out.header("set-cookie"), HasSubstr("Max-Age=0"));
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", cookie}}).status, 401);

  // Sessions expire.
  auto again = app.call("POST", "/v1/auth/signin", "",
                        R"({"username": "nurse.joy", "password": "correct horse battery"})");
  const std::string cookie2 = session_cookie(again);
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", cookie2}}).status, 200);
  scalar("UPDATE web_session SET expires_at = now() - interval '1 second'");
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", cookie2}}).status, 401);

  // Failed sign-ins are counted per source and minute (one record once the minute is over).
  EXPECT_EQ(count("SELECT sum(count) FROM audit_refusal WHERE action = 'auth.signin' AND "
                  "outcome = 'failure'"),
            2);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'auth.signin' AND outcome = "
                  "'success' AND actor = 'user:nurse.joy'"),
            2);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'user.create'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE action = 'auth.csrf' AND actor = "
                  "'user:nurse.joy' AND outcome = 'denied'"),
            2);
  EXPECT_EQ(count("SELECT count(*) FROM audit_event WHERE detail::text LIKE '%horse%'"), 0);
}

// Password guessing slows down per (user name, address) pair with growing delays, not per user
// name (which let anyone lock a user out): see Finding12 in auth_hardening_pgtest.cpp. Here: the
// refusal is a 429 with Retry-After, audited, and other users are not held up.
TEST_F(AuthSessionTest, RepeatedFailedSignInsOfOnePairAreDelayed) {
  AppServer app(dsn());
  ASSERT_EQ(create_user("dr.house", "operator", "vicodin and puzzles"), 0);
  ASSERT_EQ(create_user("dr.wilson", "operator", "oncology and patience"), 0);
  auto sign_in = [&](const std::string& user, const std::string& password) {
    return app.call("POST", "/v1/auth/signin", "",
                    Json{{"username", user}, {"password", password}}.dump());
  };
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(sign_in("dr.house", "guess " + std::to_string(i)).status, 401);
  auto refused = sign_in("dr.house", "vicodin and puzzles");
  EXPECT_EQ(refused.status, 429);
  EXPECT_THAT(refused.body, HasSubstr("too many failed sign-ins"));
  EXPECT_EQ(refused.header("retry-after").empty(), false);
  EXPECT_EQ(refused.header("set-cookie"), "");
  EXPECT_EQ(count("SELECT sum(count) FROM audit_refusal WHERE action = 'auth.signin' AND outcome "
                  "= 'denied' AND 'dr.house' = ANY (names)"),
            1);
  // Another user from the same address still signs in.
  EXPECT_EQ(sign_in("dr.wilson", "oncology and patience").status, 200);
  // The delay passes: sign-in works again, and success forgets the pair's failures.
  scalar("UPDATE signin_failure SET last_failure_at = last_failure_at - interval '16 seconds'");
  EXPECT_EQ(sign_in("dr.house", "vicodin and puzzles").status, 200);
  EXPECT_EQ(count("SELECT count(*) FROM signin_failure WHERE name = 'dr.house'"), 0);
}

TEST_F(AuthSessionTest, TokenSignInAndTheFirstStartCodeWhichWorksOnce) {
  AppServer app(dsn());
  std::optional<std::string> code;
  {
    store::Store s(dsn());
    s.with_sql([&](Sql& sql) { code = auth::first_start_code(sql); });
    ASSERT_TRUE(code);
    // Restarting before anyone signed in makes a new code and retires the old one.
    std::optional<std::string> second;
    s.with_sql([&](Sql& sql) { second = auth::first_start_code(sql); });
    ASSERT_TRUE(second);
    EXPECT_EQ(app.call("POST", "/v1/auth/signin", "", Json{{"code", *code}}.dump()).status, 401);
    code = second;
  }
  EXPECT_EQ(count("SELECT count(*) FROM signin_code WHERE code_hash = '" + *code + "'"), 0);
  auto first = app.call("POST", "/v1/auth/signin", "", Json{{"code", *code}}.dump());
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.json().at("role"), "admin");
  EXPECT_EQ(app.call("POST", "/v1/auth/signin", "", Json{{"code", *code}}.dump()).status, 401)
      << "a code works once";
  {
    store::Store s(dsn());
    std::optional<std::string> none;
    s.with_sql([&](Sql& sql) { none = auth::first_start_code(sql); });
    EXPECT_FALSE(none) << "someone has signed in: no more first-start codes";
  }

  const std::string token = create_token(dsn(), "billing");
  auto with_token = app.call("POST", "/v1/auth/signin", "", Json{{"token", token}}.dump());
  ASSERT_EQ(with_token.status, 200);
  EXPECT_EQ(with_token.json().at("role"), "billing");
  EXPECT_EQ(app.call("GET", "/v1/runs", "", "", {{"Cookie", session_cookie(with_token)}}).status,
            403)
      << "a session has its credential's role";
}

}  // namespace
}  // namespace chartflow::testing
