// Test-only: a certificate authority made for the test (the `openssl` CLI, in a temp dir) and a
// small HTTPS/1.1 server on 127.0.0.1 (Boost.Beast over an OpenSSL ssl_stream) that answers each
// request through a callback and records what it received; optionally it requires a client
// certificate from a given CA (mTLS). One request per connection, served on one background
// thread until destruction. Header-only; tests only.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace chartflow::testing {

// Keys and certificates in a temp dir, made with the openssl CLI:
//   ca.pem / ca.key              the test's CA
//   server.pem / server.key      CN=localhost, SAN localhost and 127.0.0.1, signed by ca
//   client.pem / client.key      CN=chartflow-client, signed by ca (for mTLS)
//   other-ca.pem, other-server.pem / other-server.key   the same names, from another CA
//   rsa.key / rsa.pub            RSA 2048 (RS384 client assertions)
//   ec384.key / ec384.pub        EC P-384 (ES384 client assertions)
class TestPki {
 public:
  TestPki() : dir_("chartflow-pki") {
    write("ca.cnf",
          "[req]\ndistinguished_name=dn\nx509_extensions=v3_ca\nprompt=no\n[dn]\nCN=chartflow "
          "test CA\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,"
          "cRLSign\nsubjectKeyIdentifier=hash\n");
    write("leaf.cnf", "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=leaf\n");
    write("server.ext",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage="
          "serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n");
    write("client.ext",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage="
          "clientAuth\n");
    make_ca("ca");
    make_ca("other-ca");
    make_leaf("server", "ca", "localhost", "server.ext");
    make_leaf("client", "ca", "chartflow-client", "client.ext");
    make_leaf("other-server", "other-ca", "localhost", "server.ext");
    run("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + p("rsa.key"));
    run("pkey -in " + p("rsa.key") + " -pubout -out " + p("rsa.pub"));
    run("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out " + p("ec384.key"));
    run("pkey -in " + p("ec384.key") + " -pubout -out " + p("ec384.pub"));
  }

  std::string p(const std::string& name) const { return (dir_.path() / name).string(); }
  const std::filesystem::path& dir() const { return dir_.path(); }

  void write(const std::string& name, const std::string& content) const {
    std::ofstream(dir_.path() / name, std::ios::binary) << content;
  }

 private:
  void run(const std::string& args) const {
    const std::string cmd = "openssl " + args + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl failed: " + cmd);
  }
  void make_ca(const std::string& name) const {
    run("req -x509 -config " + p("ca.cnf") +
        " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj \"/CN=" + name +
        "\" -keyout " + p(name + ".key") + " -out " + p(name + ".pem"));
  }
  void make_leaf(const std::string& name, const std::string& ca, const std::string& cn,
                 const std::string& ext) const {
    run("req -new -config " + p("leaf.cnf") +
        " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj \"/CN=" + cn + "\" -keyout " +
        p(name + ".key") + " -out " + p(name + ".csr"));
    run("x509 -req -in " + p(name + ".csr") + " -CA " + p(ca + ".pem") + " -CAkey " +
        p(ca + ".key") + " -CAcreateserial -days 2 -extfile " + p(ext) + " -out " +
        p(name + ".pem"));
  }

  TempDir dir_;
};

struct SeenRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string client_cn;  // the client certificate's CN, "" without one
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct TlsServerOptions {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // set: a client certificate from this CA is required
  int max_version = 0;         // e.g. TLS1_1_VERSION: an outdated server; 0 = OpenSSL's newest
};

class TlsTestServer {
 public:
  struct Answer {
    int status = 200;
    std::string body = "{}";
  };
  using Respond = std::function<Answer(const SeenRequest&, int)>;

  TlsTestServer(const TlsServerOptions& options, Respond respond)
      : respond_(std::move(respond)), ssl_(boost::asio::ssl::context::tls_server), acceptor_(ioc_) {
    namespace net = boost::asio;
    SSL_CTX_set_min_proto_version(ssl_.native_handle(), TLS1_2_VERSION);
    if (options.max_version != 0) {
      SSL_CTX_set_min_proto_version(ssl_.native_handle(), TLS1_VERSION);
      SSL_CTX_set_max_proto_version(ssl_.native_handle(), options.max_version);
      SSL_CTX_set_cipher_list(ssl_.native_handle(), "DEFAULT:@SECLEVEL=0");
    }
    ssl_.use_certificate_chain_file(options.cert_file);
    ssl_.use_private_key_file(options.key_file, net::ssl::context::pem);
    if (!options.client_ca_file.empty()) {
      ssl_.load_verify_file(options.client_ca_file);
      ssl_.set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
    }
    const net::ip::tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    acceptor_.non_blocking(true);
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsTestServer() {
    stopping_ = true;
    thread_.join();
  }
  TlsTestServer(const TlsTestServer&) = delete;
  TlsTestServer& operator=(const TlsTestServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "https://localhost:" + std::to_string(port_) + path;
  }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int handshake_failures() const { return handshake_failures_; }
  // The server counts a refused handshake on its own thread, which may be after the client has
  // already returned its error: wait for the count rather than read it at once.
  int handshake_failures_within(std::chrono::milliseconds timeout) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (handshake_failures_ == 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return handshake_failures_;
  }

 private:
  void serve() {
    namespace net = boost::asio;
    while (!stopping_) {
      boost::system::error_code ec;
      net::ip::tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      socket.non_blocking(false, ec);
      handle(std::move(socket));
    }
  }

  void handle(boost::asio::ip::tcp::socket socket) {
    namespace beast = boost::beast;
    namespace bhttp = beast::http;
    beast::ssl_stream<boost::asio::ip::tcp::socket> stream(std::move(socket), ssl_);
    boost::system::error_code ec;
    stream.handshake(boost::asio::ssl::stream_base::server, ec);
    if (ec) {
      ++handshake_failures_;
      return;
    }
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> req;
    bhttp::read(stream, buffer, req, ec);
    if (ec) {
      ++handshake_failures_;  // a refusal after the handshake (TLS 1.3 client certificates)
      return;
    }
    SeenRequest seen;
    seen.method = std::string(req.method_string());
    seen.target = std::string(req.target());
    seen.body = req.body();
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      seen.headers[name] = std::string(field.value());
    }
    if (X509* peer = SSL_get1_peer_certificate(stream.native_handle())) {
      char cn[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
      seen.client_cn = cn;
      X509_free(peer);
    }
    int index = 0;
    {
      std::lock_guard lock(mutex_);
      index = static_cast<int>(requests_.size());
      requests_.push_back(seen);
    }
    const Answer answer = respond_(seen, index);
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(answer.status), 11};
    res.set(bhttp::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = answer.body;
    res.prepare_payload();
    bhttp::write(stream, res, ec);
    stream.next_layer().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  }

  Respond respond_;
  boost::asio::io_context ioc_;
  boost::asio::ssl::context ssl_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> handshake_failures_{0};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<SeenRequest> requests_;
};

}  // namespace chartflow::testing
