#include "engine/util/http_post.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/fake_http_server.hpp"

namespace chartflow::util {
namespace {

TEST(HttpPostTest, PostsBodyAndHeadersAndReportsStatus) {
  testing::FakeHttpServer server(
      [](const testing::ReceivedRequest&, int i) { return i == 0 ? 503 : 201; });
  HttpResult first = http_post(server.url("/claims"), "{\"a\":1}", {{"Idempotency-Key", "k-1"}});
  EXPECT_EQ(first.status, 503);
  EXPECT_FALSE(first.ok());
  EXPECT_TRUE(first.error.empty());
  HttpResult second =
      http_post(server.url("/claims"), "{\"a\":1}",
                {{"Idempotency-Key", "k-1"}, {"Content-Type", "application/fhir+json"}});
  EXPECT_EQ(second.status, 201);
  EXPECT_TRUE(second.ok());
  EXPECT_EQ(second.body, "{}");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[0].head.rfind("POST /claims HTTP/1.1\r\n", 0), 0U);
  EXPECT_EQ(requests[0].header("Idempotency-Key"), "k-1");
  EXPECT_EQ(requests[0].header("Content-Type"), "application/json");
  EXPECT_EQ(requests[1].header("Content-Type"), "application/fhir+json");
  EXPECT_EQ(requests[1].head.find("application/json"), std::string::npos);
  EXPECT_EQ(requests[1].body, "{\"a\":1}");
}

TEST(HttpPostTest, ConnectionErrorsAreValuesNotExceptions) {
  int port = 0;
  {
    testing::FakeHttpServer server([](const testing::ReceivedRequest&, int) { return 200; });
    port = server.port();  // closed below: nothing listens there afterwards
  }
  HttpResult refused = http_post("http://127.0.0.1:" + std::to_string(port) + "/", "{}", {},
                                 std::chrono::milliseconds(500));
  EXPECT_EQ(refused.status, 0);
  EXPECT_FALSE(refused.error.empty());
  EXPECT_FALSE(refused.ok());
  EXPECT_FALSE(http_post("ftp://example.org/", "{}", {}).error.empty());
  EXPECT_FALSE(http_post("http://host.invalid./", "{}", {}, std::chrono::milliseconds(500)).ok());
  EXPECT_EQ(http_post("http://127.0.0.1:1/", "{}", {{"X-Bad", "a\r\nb"}}).status, 0);
}

TEST(HttpPostTest, ParsesHttpUrls) {
  auto u = parse_http_url("http://insurer.test:8080/claims?x=1");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "insurer.test");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->target, "/claims?x=1");
  u = parse_http_url("HTTP://h");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->target, "/");
  u = parse_http_url("http://[::1]:9000/x");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "9000");
  u = parse_http_url("https://payer.example/fhir/Claim");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/fhir/Claim");
  for (const char* bad :
       {"", "http://", "https://", "ftp://h", "http://user@h/", "http://h:/", "http://h:99999999/",
        "http://h:abc/", "http://h/a b", "h:80/x", "https://u:p@h/", "http://h/a\r\nb"}) {
    EXPECT_FALSE(parse_http_url(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace chartflow::util
