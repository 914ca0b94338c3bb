// Issue #14 item 4: two unauthenticated connections froze every GET. Slow clients may hold
// every upload slot and many sockets; requests without a body, and refusals decided from the
// headers, never wait behind them, the queue for slots is bounded in length and time, and
// connections are capped per client address.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "http/server.hpp"

namespace chartflow::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

class Client {
 public:
  explicit Client(unsigned short port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  void send(const std::string& bytes) {
    boost::system::error_code ec;
    net::write(socket_, net::buffer(bytes), ec);
  }
  // The status line's code of the first response within `timeout`; 0 when none came (or the
  // server closed without answering).
  int status(std::chrono::milliseconds timeout = 5s) {
    socket_.non_blocking(true);
    std::string out;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      char buf[2048];
      boost::system::error_code ec;
      const auto n = socket_.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) {
        std::this_thread::sleep_for(2ms);
        continue;
      }
      out.append(buf, n);
      if (out.find("\r\n\r\n") != std::string::npos || ec) break;
    }
    last_ = out;
    return out.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(out.substr(9, 3)) : 0;
  }
  const std::string& last() const { return last_; }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  std::string last_;
};

class SlowClientsTest : public ::testing::Test {
 protected:
  void start(int slots, int queue, std::chrono::milliseconds wait, int per_client = 0) {
    router_.authenticate = [](const Request& req) -> std::optional<Principal> {
      if (req.header("authorization") == std::optional<std::string>("Bearer good"))
        return Principal{"t1", "operator", Role::kOperator, {}, false};
      return std::nullopt;
    };
    router_.add("GET", "/healthz", "healthz", Access::open(), [](Request&) {
      return Response::json(200, Json{{"ok", true}});
    });
    router_.add("GET", "/v1/runs", "runs", Access::of({Role::kOperator}), [](Request&) {
      return Response::json(200, Json{{"runs", Json::array()}});
    });
    router_.add("PUT", "/v1/charts/{id}", "upload", Access::of({Role::kOperator}),
                [](Request& req) {
                  return Response::json(202, Json{{"bytes", req.body.size()}});
                });
    ServerSettings s;
    s.port = 0;
    s.threads = 2;
    s.upload_slots = slots;
    s.upload_queue = queue;
    s.limits.large_body_bytes = 10;
    s.limits.upload_wait = wait;
    s.limits.body_timeout = 30s;
    s.max_connections_per_client = per_client;
    server_ = std::make_unique<Server>(s, router_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  // An authenticated upload that sends its headers and then trickles nothing: it holds (or waits
  // for) a slot.
  std::unique_ptr<Client> slow_upload() {
    auto c = std::make_unique<Client>(server_->port());
    c->send(
        "PUT /v1/charts/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
        "Content-Length: 100000\r\n\r\n{");
    return c;
  }
  int get(const std::string& target, const std::string& auth = "") {
    Client c(server_->port());
    c.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
           (auth.empty() ? "" : "Authorization: " + auth + "\r\n") + "\r\n");
    return c.status(1s);
  }

  Router router_;
  std::unique_ptr<Server> server_;
};

TEST_F(SlowClientsTest, TwoTricklingClientsHoldingEverySlotFreezeNoGet) {
  start(/*slots=*/2, /*queue=*/8, 30s);
  // Two unauthenticated clients trickling chunked bodies, as in the finding.
  std::vector<std::unique_ptr<Client>> trickle;
  for (int i = 0; i < 2; ++i) {
    trickle.push_back(std::make_unique<Client>(server_->port()));
    trickle.back()->send(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n");
  }
  // And two authenticated uploads holding both slots.
  auto a = slow_upload();
  auto b = slow_upload();
  const auto t0 = Clock::now();
  EXPECT_EQ(get("/healthz"), 200);
  EXPECT_EQ(get("/v1/runs", "Bearer good"), 200);
  EXPECT_LT(Clock::now() - t0, 2s);
  // The tricklers were answered from their headers (no POST route), without their bodies.
  for (auto& t : trickle) EXPECT_EQ(t->status(1s), 405) << t->last();
}

TEST_F(SlowClientsTest, ABodyWithoutAValidCredentialIsRefusedBeforeItIsRead) {
  start(1, 8, 30s);
  auto holder = slow_upload();  // the only slot is taken: a queued request would hang
  Client anonymous(server_->port());
  anonymous.send("PUT /v1/charts/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_EQ(anonymous.status(1s), 401) << anonymous.last();
  Client forged(server_->port());
  forged.send(
      "PUT /v1/charts/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad\r\n"
      "Content-Length: 100000\r\n\r\n");
  EXPECT_EQ(forged.status(1s), 401) << forged.last();
  Client nowhere(server_->port());
  nowhere.send("PUT /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_EQ(nowhere.status(1s), 404) << nowhere.last();
}

TEST_F(SlowClientsTest, AQueuedUploadWaitsABoundedTimeAndTheQueueABoundedLength) {
  start(/*slots=*/1, /*queue=*/1, /*wait=*/300ms);
  auto holder = slow_upload();
  // Once the holder has the slot, the next upload queues; the one after finds the queue full.
  std::this_thread::sleep_for(50ms);  // ordering of two sockets, not a condition on the server
  auto waiting = slow_upload();
  std::this_thread::sleep_for(50ms);
  auto refused = slow_upload();
  EXPECT_EQ(refused->status(1s), 503) << refused->last();
  EXPECT_NE(refused->last().find("Retry-After: 5"), std::string::npos) << refused->last();
  // The queued one gives up after its bounded wait.
  EXPECT_EQ(waiting->status(2s), 503) << waiting->last();
  EXPECT_EQ(get("/healthz"), 200);
}

TEST_F(SlowClientsTest, OneClientAddressCannotTakeEveryConnection) {
  start(2, 8, 30s, /*per_client=*/4);
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(std::make_unique<Client>(server_->port()));
  // The fifth connection from the same address is closed without an answer.
  Client fifth(server_->port());
  fifth.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fifth.status(1s), 0);
  // One leaves: there is room again.
  idle.pop_back();
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    status = get("/healthz");
    if (status != 200) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(status, 200);
}

// Issue #15 item 4 (fault suite): with the database frozen, /healthz gave no answer for 2 s:
// every io thread was inside a handler or a credential lookup waiting on the database. Those
// wait on the handler threads now; a health check is answered on an io thread at once.
TEST(HealthWhileHandlersWait, HealthChecksAnswerWhileEveryHandlerWaitsOnTheDatabase) {
  std::promise<void> thaw;
  std::shared_future<void> thawed = thaw.get_future().share();
  Router router;
  router.authenticate = [thawed](const Request& req) -> std::optional<Principal> {
    if (req.header("authorization") == std::optional<std::string>("Bearer frozen"))
      thawed.wait_for(10s);  // a credential lookup on a frozen database
    return Principal{"t1", "operator", Role::kOperator, {}, false};
  };
  router.add("GET", "/healthz", "healthz", Access::open(), [](Request&) {
    return Response::json(200, Json{{"ok", true}});
  });
  router.add("GET", "/v1/frozen", "frozen", Access::open(), [thawed](Request&) {
    thawed.wait_for(10s);  // a query on a frozen database
    return Response::json(200, Json::object());
  });
  router.add("PUT", "/v1/charts/{id}", "upload", Access::of({Role::kOperator}),
             [](Request&) { return Response::json(202, Json::object()); });
  router.answer_at_once("/healthz");
  ServerSettings settings;
  settings.port = 0;
  settings.threads = 2;
  Server server(settings, router);
  server.start();

  std::vector<std::unique_ptr<Client>> waiting;
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(std::make_unique<Client>(server.port()));
    waiting.back()->send("GET /v1/frozen HTTP/1.1\r\nHost: x\r\n\r\n");
    waiting.push_back(std::make_unique<Client>(server.port()));
    waiting.back()->send(
        "PUT /v1/charts/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer frozen\r\n"
        "Content-Length: 2\r\n\r\n{}");
  }
  std::this_thread::sleep_for(200ms);  // every one of them is waiting by now
  for (int i = 0; i < 3; ++i) {
    Client health(server.port());
    const auto t0 = Clock::now();
    health.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(health.status(1s), 200) << "no answer while handlers wait on the database";
    EXPECT_LT(Clock::now() - t0, 1s);
  }
  thaw.set_value();
  for (std::size_t i = 0; i < waiting.size(); ++i)
    EXPECT_EQ(waiting[i]->status(5s), i % 2 == 0 ? 200 : 202) << waiting[i]->last();
  server.stop();
}

}  // namespace
}  // namespace chartflow::http
