// The server's upload slots over real HTTP: with one slot, many large uploads sent at once are
// read one after another, and every one of them is still accepted and stored. Their clients
// wait longer than the body timeout, which must not count against them.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/app_server.hpp"
#include "tests/support/auth_support.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/pg_fixture.hpp"

namespace chartflow::testing {
namespace {

// 1 MB: over the large-body threshold, so each upload needs the slot.
const std::string kLargeChart =
    std::string(CHARTFLOW_SOURCE_DIR) + "/tests/data/charts/full-adan-portillo-22bbe238.json";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Sends the headers and half of `body` now and the rest after `pause`, on a raw connection, so
// the upload holds the server's slot for that long; returns the response's status line.
std::string slow_upload(unsigned short port, const std::string& target, const std::string& token,
                        const std::string& body, std::chrono::milliseconds pause,
                        std::promise<void>& headers_sent) {
  namespace net = boost::asio;
  net::io_context ioc;
  net::ip::tcp::socket socket(ioc);
  socket.connect({net::ip::make_address("127.0.0.1"), port});
  const std::string head =
      "PUT " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "Authorization: Bearer " + token +
      "\r\nContent-Type: application/fhir+json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  const std::size_t half = body.size() / 2;
  net::write(socket, net::buffer(head));
  net::write(socket, net::buffer(body.data(), half));
  headers_sent.set_value();
  std::this_thread::sleep_for(pause);
  net::write(socket, net::buffer(body.data() + half, body.size() - half));
  net::streambuf reply;
  net::read_until(socket, reply, "\r\n");
  std::istream in(&reply);
  std::string status;
  std::getline(in, status);
  return status;
}

using UploadSlotsTest = PgTest;

TEST_F(UploadSlotsTest, OneSlotStillAcceptsAndStoresEveryConcurrentLargeUpload) {
  const std::string body = read_file(kLargeChart);
  ASSERT_GT(body.size(), http::kDefaultLargeBodyBytes);
  constexpr int kUploads = 6;
  http::ServerSettings settings = test_server_settings();
  settings.upload_slots = 1;
  // The slow upload holds the slot for most of this; the others, queued behind it and each
  // other, wait longer than it (checked below), so a timer running while they wait would cut
  // them off.
  settings.limits.body_timeout = std::chrono::milliseconds(1000);
  AppServer app(dsn(), settings);
  const std::string admin = create_token(dsn(), "admin");

  std::promise<void> headers_sent;
  std::string slow_status;
  std::thread slow([&] {
    slow_status = slow_upload(app.port(), "/v1/charts/slot-slow", admin, body,
                              std::chrono::milliseconds(800), headers_sent);
  });
  headers_sent.get_future().wait();
  // The server has read the slow upload's headers and given it the slot: it is first in line.
  ASSERT_TRUE(wait_until([&] { return app.server().upload_stats().in_use == 1; }))
      << "the slow upload never took the slot";
  EXPECT_EQ(app.server().upload_stats().waiting, 0);

  std::vector<int> status(kUploads, 0);
  std::vector<std::string> answer(kUploads);
  std::vector<std::thread> clients;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kUploads; ++i) {
    clients.emplace_back([&, i] {
      try {
        auto r = app.call("PUT", "/v1/charts/slot-" + std::to_string(i), admin, body,
                          {{"Content-Type", "application/fhir+json"}});
        status[i] = r.status;
        answer[i] = r.body;
      } catch (const std::exception& e) {
        answer[i] = e.what();
      }
    });
  }
  for (auto& c : clients) c.join();
  const auto took = std::chrono::steady_clock::now() - started;
  slow.join();
  EXPECT_EQ(slow_status, "HTTP/1.1 202 Accepted\r");

  for (int i = 0; i < kUploads; ++i)
    EXPECT_EQ(status[i], 202) << "upload " << i << ": " << answer[i];
  EXPECT_EQ(scalar("SELECT count(DISTINCT chart_id) FROM chart_revision WHERE chart_id LIKE "
                   "'slot-%' AND revision = 1"),
            std::to_string(kUploads + 1));
  EXPECT_EQ(scalar("SELECT count(*) FROM event WHERE type = 'chart.uploaded'"),
            std::to_string(kUploads + 1));
  EXPECT_EQ(app.server().upload_stats().in_use, 0) << "every slot came back";
  EXPECT_GT(took, settings.limits.body_timeout)
      << "the uploads finished within the body timeout, so none waited past it";
}

}  // namespace
}  // namespace chartflow::testing
