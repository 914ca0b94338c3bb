// The server over TLS with a self-signed certificate made for the test: a TLS 1.2+ request is
// answered, a TLS 1.1 client is refused by the server (its protocol_version alert, not a client
// that could not even offer 1.1), and plain HTTP on the TLS port gets a clean 400 and a close.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <filesystem>

#include "http/server.hpp"

namespace chartflow::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;

template <class Stream>
bhttp::response<bhttp::string_body> get_healthz(Stream& stream) {
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/healthz", 11};
  req.set(bhttp::field::host, "localhost");
  bhttp::write(stream, req);
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buf, res);
  return res;
}

class ServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("chartflow-tls-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout " +
        (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string() + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
    router_.add("GET", "/healthz", "healthz", Access::open(), [](Request&) {
      return Response::json(200, Json{{"ok", true}});
    });
    ServerSettings s;
    s.port = 0;
    s.threads = 2;
    s.tls = TlsFiles{(dir_ / "cert.pem").string(), (dir_ / "key.pem").string()};
    server_ = std::make_unique<Server>(s, router_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::filesystem::remove_all(dir_);
  }

  // A client context trusting the test certificate, limited to [min, max] protocol versions.
  ssl::context client_context(int min_version, int max_version) {
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file((dir_ / "cert.pem").string());
    ctx.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), min_version);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version);
    // Security level 0 lets this client really offer TLS 1.0/1.1, so a refusal is the server's.
    SSL_CTX_set_cipher_list(ctx.native_handle(), "DEFAULT:@SECLEVEL=0");
    return ctx;
  }

  // GET /healthz over TLS; returns the status, or throws the handshake/IO error.
  int tls_get(ssl::context& ctx) {
    net::io_context ioc;
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    stream.set_verify_callback(ssl::host_name_verification("localhost"));
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(stream).connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
    stream.handshake(ssl::stream_base::client);
    return static_cast<int>(get_healthz(stream).result_int());
  }

  std::filesystem::path dir_;
  Router router_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTlsTest, TlsRequestIsAnswered) {
  auto ctx = client_context(TLS1_2_VERSION, TLS1_3_VERSION);
  EXPECT_EQ(tls_get(ctx), 200);
  auto tls12 = client_context(TLS1_2_VERSION, TLS1_2_VERSION);
  EXPECT_EQ(tls_get(tls12), 200);
}

TEST_F(ServerTlsTest, Tls11IsRefusedByTheServer) {
  auto ctx = client_context(TLS1_VERSION, TLS1_1_VERSION);
  try {
    tls_get(ctx);
    ADD_FAILURE() << "a TLS 1.1 client was served";
  } catch (const boost::system::system_error& e) {
    // The server's alert; "no protocols available" would mean the client never offered 1.1.
    EXPECT_THAT(e.what(), HasSubstr("protocol version")) << e.what();
  }
  auto ok = client_context(TLS1_2_VERSION, TLS1_3_VERSION);
  EXPECT_EQ(tls_get(ok), 200) << "the server stopped serving after a refused handshake";
}

TEST_F(ServerTlsTest, PlainHttpOnTheTlsPortGetsACleanRefusal) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  const auto res = get_healthz(stream);
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_THAT(res.body(), HasSubstr("HTTPS"));
  beast::error_code ec;
  char byte = 0;
  stream.read_some(net::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec) << "the connection stayed open after the refusal";
  auto ctx = client_context(TLS1_2_VERSION, TLS1_3_VERSION);
  EXPECT_EQ(tls_get(ctx), 200);
}

TEST_F(ServerTlsTest, UnreadableCertificateStopsStartup) {
  ServerSettings s;
  s.port = 0;
  s.tls = TlsFiles{(dir_ / "missing.pem").string(), (dir_ / "key.pem").string()};
  Server bad(s, router_);
  try {
    bad.start();
    ADD_FAILURE() << "started without its certificate";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--tls-cert " + (dir_ / "missing.pem").string()));
  }
}

}  // namespace
}  // namespace chartflow::http
