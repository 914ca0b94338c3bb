// Issue #15 items 4 and 5: a frozen or lost database never hangs chartflow, and looks like an
// outage (503 with Retry-After), not like a bug (500). The database sits behind a TCP proxy
// that freezes (as a SIGSTOPped server looks from the same machine: the kernel acknowledges,
// nothing answers), cuts connections (a restart, a failover) or refuses them (a server down).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <regex>

#include "runtime/store_pool.hpp"
#include "store/errors.hpp"
#include "store/store.hpp"
#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/fault_proxy.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

using Steady = std::chrono::steady_clock;

// The deadlines under test, and the slack a loaded two-core machine needs beyond them: each bound
// is "the deadline held", not a speed. The connect timeout is the one chartflow adds to every
// database URL (store/network_timeouts.cpp); /readyz's budget is its own (api_routes.cpp).
constexpr std::chrono::seconds kCallTimeout{2};
constexpr std::chrono::seconds kConnectTimeout{5};
constexpr std::chrono::seconds kReadyzBudget{2};
constexpr double kMargin = 4.0;
double seconds(std::chrono::seconds s) { return static_cast<double>(s.count()); }

class DatabaseOutageTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    std::smatch m;
    const std::string d = dsn();
    ASSERT_TRUE(std::regex_search(d, m, std::regex(R"(@([0-9.]+):([0-9]+)/)")))
        << "the test DSN must name a host and port";
    proxy_ = std::make_unique<FaultProxy>(m[1].str(), std::stoi(m[2].str()));
    proxied_ = m.prefix().str() + "@" + m[1].str() + ":" + std::to_string(proxy_->port()) + "/" +
               m.suffix().str();
    saved_timeout_ = store::Store::call_timeout();
    store::Store::set_call_timeout(kCallTimeout);
  }
  void TearDown() override {
    proxy_->heal();
    store::Store::set_call_timeout(saved_timeout_);
    PgTest::TearDown();
  }

  // Runs fn on another thread; the seconds it took, or -1 when it had not returned after
  // `limit` (the proxy is healed then, so the thread can end).
  template <typename Fn>
  double seconds_for(Fn fn, std::chrono::seconds limit = std::chrono::seconds(15)) {
    const auto t0 = Steady::now();
    auto f = std::async(std::launch::async, std::move(fn));
    if (f.wait_for(limit) != std::future_status::ready) {
      proxy_->heal();
      f.wait();
      return -1;
    }
    return std::chrono::duration<double>(Steady::now() - t0).count();
  }

  std::unique_ptr<FaultProxy> proxy_;
  std::string proxied_;
  std::chrono::milliseconds saved_timeout_{};
};

// Finding: with the primary SIGSTOPped, calls on open connections blocked in poll(-1) until it
// woke (128 s), holding every HTTP thread, the dispatcher and the workers.
TEST_F(DatabaseOutageTest, ACallToAFrozenServerIsCutOffAtItsDeadline) {
  store::Store s(proxied_);
  s.probe();
  proxy_->freeze();
  bool transient = false;
  const double took = seconds_for([&] {
    try {
      s.probe();
    } catch (const store::TransientError&) {
      transient = true;
    }
  });
  ASSERT_GE(took, 0) << "the call waited on the frozen server";
  EXPECT_TRUE(transient) << "a cut-off call is a lost connection";
  EXPECT_LT(took, seconds(kCallTimeout) + kMargin);
}

// Finding: StorePool::acquire connected with no connect_timeout.
TEST_F(DatabaseOutageTest, ConnectingToAFrozenServerGivesUp) {
  proxy_->freeze();
  bool failed = false;
  const double took = seconds_for([&] {
    try {
      store::Store s(proxied_);
    } catch (const store::TransientError&) {
      failed = true;
    }
  });
  ASSERT_GE(took, 0) << "the connection attempt waited on the frozen server";
  EXPECT_TRUE(failed);
  EXPECT_LT(took, seconds(kConnectTimeout) + kMargin);
}

// Finding: one broken session left its idle siblings in the pool, each to fail a request of
// its own after a failover.
TEST_F(DatabaseOutageTest, ABrokenSessionTakesItsIdleSiblingsWithIt) {
  runtime::StorePool pool(proxied_, 4);
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    auto c = pool.acquire();
  }
  ASSERT_EQ(pool.stats().idle, 3);
  proxy_->cut();
  EXPECT_THROW(pool.with([](store::Store& s) { return s.probe(); }), store::TransientError);
  EXPECT_EQ(pool.stats().idle, 0);
  EXPECT_NO_THROW(pool.with([](store::Store& s) { return s.probe(); }));
}

// Findings: /readyz and every request hung with the database frozen; a lost database answered
// 500 "internal error" (527 uploads and 1,637 review decisions in one run).
TEST_F(DatabaseOutageTest, HealthAnswersAtOnceAndRequestsGet503WhileTheDatabaseIsFrozen) {
  const std::string admin = create_token(dsn(), "admin");
  AppServer app(proxied_);
  ASSERT_EQ(app.call("GET", "/v1/runs", admin).status, 200);
  proxy_->freeze();
  HttpResponse health, ready, runs;
  EXPECT_GE(seconds_for([&] { health = app.call("GET", "/healthz", ""); }), 0);
  EXPECT_EQ(health.status, 200);
  const double ready_took = seconds_for([&] { ready = app.call("GET", "/readyz", ""); });
  ASSERT_GE(ready_took, 0) << "/readyz waited on the frozen database";
  EXPECT_LT(ready_took, seconds(kReadyzBudget) + kMargin);
  EXPECT_EQ(ready.status, 503);
  ASSERT_GE(seconds_for([&] { runs = app.call("GET", "/v1/runs", admin); }), 0)
      << "GET /v1/runs waited on the frozen database";
  EXPECT_EQ(runs.status, 503) << runs.body;
  EXPECT_EQ(runs.header("retry-after"), "5");
  proxy_->heal();
  EXPECT_TRUE(wait_until([&] { return app.call("GET", "/readyz", "").status == 200; }));
}

TEST_F(DatabaseOutageTest, ALostDatabaseAnswers503WithRetryAfterNot500) {
  const std::string admin = create_token(dsn(), "admin");
  AppServer app(proxied_);
  ASSERT_EQ(app.call("GET", "/v1/runs", admin).status, 200);
  proxy_->refuse();
  const auto events = app.call("POST", "/v1/events/demo.outage", admin, R"({"n":1})",
                               {{"Content-Type", "application/json"}});
  EXPECT_EQ(events.status, 503) << events.body;
  EXPECT_EQ(events.header("retry-after"), "5");
  EXPECT_NE(events.body.find("retry"), std::string::npos) << events.body;
}

// Expected: a read is retried once on a fresh connection inside the server, so a failover's
// broken sessions are not the client's problem.
TEST_F(DatabaseOutageTest, AReadAfterAFailoverIsRetriedOnAFreshConnection) {
  const std::string admin = create_token(dsn(), "admin");
  AppServer app(proxied_);
  ASSERT_EQ(app.call("GET", "/v1/runs", admin).status, 200);
  proxy_->cut();  // every pooled session is now dead
  EXPECT_EQ(app.call("GET", "/v1/runs", admin).status, 200);
}

}  // namespace
}  // namespace chartflow::testing
