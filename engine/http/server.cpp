#include "http/server.hpp"

#include <openssl/ssl.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <utility>

#include "http/connection_limits.hpp"
#include "http/upload_slots.hpp"
#include "runtime/log.hpp"

namespace chartflow::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

// How long a TLS close_notify exchange may take before the socket is simply dropped.
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);
// How long a closing plain connection keeps reading what the client still sends.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// Strict-Transport-Security on every answer over TLS.
constexpr const char* kHsts = "max-age=31536000";
// Mozilla's "intermediate" server configuration: TLS 1.2 with ECDHE key exchange and AEAD
// ciphers only (AES-GCM, ChaCha20-Poly1305), TLS 1.3 with its three suites, the client's
// preference among them.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kTlsGroups = "X25519:prime256v1:secp384r1";

// Retry-After of a 503 when every upload slot is taken and the queue full or the wait too long.
constexpr int kBusyRetryAfterSeconds = 5;
// How long accept() rests after failing (EMFILE: out of file descriptors), instead of spinning.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

// Errors after which there is no client left to answer.
bool is_gone(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
         ec == net::error::connection_reset || ec == net::error::eof ||
         ec == net::error::operation_aborted || ec == ssl::error::stream_truncated ||
         ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category();
}

// The HTTP exchange, written once for plain and TLS streams (CRTP as in Beast's
// advanced_server_flex example): Derived supplies stream(), shared_from_this() and do_close().
// All of a session's handlers run on its strand, so it needs no locking.
template <class Derived>
class HttpSession {
 public:
  HttpSession(beast::flat_buffer buffer, const Router& router, const InputLimits& limits,
              UploadSlots& slots, net::thread_pool& handlers)
      : buffer_(std::move(buffer)),
        router_(router),
        limits_(limits),
        slots_(slots),
        handlers_(handlers) {}

 public:
  // Held while the connection is open (see ConnectionLimits).
  void hold(std::shared_ptr<void> connection) { connection_ = std::move(connection); }

 protected:
  beast::flat_buffer buffer_;
  std::shared_ptr<void> connection_;

  void do_read() {
    parser_.emplace();
    parser_->header_limit(limits_.header_bytes);
    // Raised for uploads and lowered for everything else once the target is known.
    parser_->body_limit(std::max(limits_.body_bytes, limits_.upload_body_bytes));
    beast::get_lowest_layer(derived().stream()).expires_after(limits_.header_timeout);
    bhttp::async_read_header(
        derived().stream(), buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::on_header, derived().shared_from_this()));
  }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  std::size_t body_limit() const {
    const auto target = parser_->get().target();
    return limits_.body_limit_for(std::string_view(target.data(), target.size()));
  }

  void on_header(beast::error_code ec, std::size_t header_bytes) {
    if (ec) return on_read_error(ec);
    // Beast applies its header limit to the fields after the request line, so the exact limit
    // on the whole header is checked here.
    if (header_bytes > limits_.header_bytes) return send_error(headers_too_large());
    const std::size_t limit = body_limit();
    // Refused before the body is sent; the connection closes as the body may still be coming.
    if (auto length = parser_->content_length(); length && *length > limit)
      return send_error(body_too_large(limit));
    parser_->body_limit(limit);
    const auto length = parser_->content_length();
    // A request without a body (most GETs) has nothing to wait for.
    const bool has_body = (length && *length > 0) || parser_->chunked();
    admitted_ = false;
    if (!has_body) return read_body();
    // Route and credential from the headers first: a body nobody may send is never read, and
    // never waits for a slot. The credential lookup may wait on the database: on the handler
    // threads, as handle() does.
    BeastRequest head;
    head.base() = parser_->get().base();
    auto self = derived().shared_from_this();
    net::post(handlers_, [self, head = std::move(head), remote = remote_address()]() mutable {
      auto admission = std::make_shared<Admission>(self->admit(std::move(head), remote));
      net::post(self->stream().get_executor(), [self, admission] { self->on_admit(*admission); });
    });
  }

  struct Admission {
    std::optional<Response> refusal;
    std::optional<Principal> principal;
  };

  // Router::admit over the request's headers (any thread: touches no session state).
  Admission admit(BeastRequest head, const std::string& remote) const {
    Request r;
    try {
      r = to_request(std::move(head), remote);
    } catch (const HttpError& e) {
      return Admission{Response::error(e.status, e.message), std::nullopt};
    }
    if (auto refusal = router_.admit(r)) return Admission{std::move(refusal), std::nullopt};
    return Admission{std::nullopt, std::move(r.principal)};
  }

  void on_admit(Admission& admission) {
    // The connection closes, as the body may still be coming.
    if (admission.refusal) return send(*admission.refusal, false, false);
    admitted_ = true;
    admitted_principal_ = std::move(admission.principal);
    const auto length = parser_->content_length();
    const std::size_t limit = body_limit();
    if (length ? *length <= limits_.large_body_bytes : limit <= limits_.large_body_bytes)
      return read_body();
    // Waiting for a slot is the server's doing, not a slow client's: no read timeout while
    // queued, but a bounded wait (then 503, as when the queue is full).
    beast::get_lowest_layer(derived().stream()).expires_never();
    auto self = derived().shared_from_this();
    const auto ticket = slots_.acquire([self](UploadSlot slot) {
      net::post(self->stream().get_executor(), [self, slot = std::move(slot)]() mutable {
        if (self->wait_timer_) self->wait_timer_->cancel();
        self->upload_slot_ = std::move(slot);
        self->read_body();
      });
    });
    if (ticket < 0) return send(busy(), false, false);
    if (ticket == 0) return;
    wait_timer_.emplace(derived().stream().get_executor());
    wait_timer_->expires_after(limits_.upload_wait);
    wait_timer_->async_wait([self, ticket](beast::error_code ec) {
      if (!ec && self->slots_.withdraw(ticket)) self->send(self->busy(), false, false);
    });
  }

  Response busy() const {
    Response r = Response::error(503, "the server is busy with other uploads; try again shortly");
    r.headers.emplace_back("Retry-After", std::to_string(kBusyRetryAfterSeconds));
    return r;
  }

  std::string remote_address() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(derived().stream()).socket().remote_endpoint(ec);
    return ec ? std::string() : ep.address().to_string();
  }

  void read_body() {
    beast::get_lowest_layer(derived().stream()).expires_after(limits_.body_timeout);
    bhttp::async_read(
        derived().stream(), buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::on_read, derived().shared_from_this()));
  }

  void on_read_error(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) return send_error(body_too_large(body_limit()));
    if (ec == bhttp::error::header_limit) return send_error(headers_too_large());
    if (is_gone(ec)) return derived().do_close();
    send_error(HttpError{400, "malformed HTTP request"});
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    const bool keep_alive = parser_->get().keep_alive();
    auto r = std::make_shared<Request>();
    try {
      *r = to_request(parser_->release(), remote_address());
    } catch (const HttpError& e) {
      return send(Response::error(e.status, e.message), keep_alive, false);
    }
    if (auto problem = check_body(*r, limits_))
      return send(Response::error(problem->status, problem->message), keep_alive, false);
    if (admitted_) r->principal = std::move(admitted_principal_);
    const bool admitted = std::exchange(admitted_, false);
    const bool head = r->method == "HEAD";
    if (router_.answers_at_once(*r)) return send(router_.handle(*r, admitted), keep_alive, head);
    // A handler may wait on the database for up to its call deadline: it runs on the handler
    // threads, and the answer comes back to this session's strand.
    auto self = derived().shared_from_this();
    net::post(handlers_, [self, r = std::move(r), admitted, keep_alive, head]() mutable {
      auto resp = std::make_shared<Response>(self->router_.handle(*r, admitted));
      r.reset();  // the body is freed before the answer is sent
      net::post(self->stream().get_executor(),
                [self, resp, keep_alive, head] { self->send(*resp, keep_alive, head); });
    });
  }

  HttpError headers_too_large() const {
    return HttpError{431, "request headers exceed the limit of " +
                              std::to_string(limits_.header_bytes) + " bytes"};
  }

  void send_error(const HttpError& e) { send(Response::error(e.status, e.message), false, false); }

  void send(const Response& resp, bool keep_alive, bool head) {
    parser_.reset();
    upload_slot_.reset();
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(resp.status));
    res->set(bhttp::field::server, "chartflow");
    res->set(bhttp::field::content_type, resp.content_type);
    res->set("X-Content-Type-Options", "nosniff");
    // Under TLS, browsers are told to come back over TLS only (a year, renewed with each answer).
    if constexpr (Derived::kTls) res->set(bhttp::field::strict_transport_security, kHsts);
    for (const auto& [k, v] : resp.headers) res->set(k, v);
    res->keep_alive(keep_alive);
    if (head) {
      res->content_length(resp.body.size());
    } else {
      res->body() = resp.body;
      res->prepare_payload();
    }
    res_ = res;
    beast::get_lowest_layer(derived().stream()).expires_after(limits_.body_timeout);
    bhttp::async_write(derived().stream(), *res_,
                       beast::bind_front_handler(&HttpSession::on_write,
                                                 derived().shared_from_this(), keep_alive));
  }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    res_.reset();
    if (ec || !keep_alive) return derived().do_close();
    do_read();
  }

  const Router& router_;
  const InputLimits& limits_;
  UploadSlots& slots_;
  net::thread_pool& handlers_;
  UploadSlot upload_slot_;
  std::optional<net::steady_timer> wait_timer_;
  bool admitted_ = false;
  std::optional<Principal> admitted_principal_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<bhttp::response<bhttp::string_body>> res_;
};

class PlainSession : public HttpSession<PlainSession>,
                     public std::enable_shared_from_this<PlainSession> {
 public:
  static constexpr bool kTls = false;
  PlainSession(beast::tcp_stream&& stream, beast::flat_buffer buffer, const Router& router,
               const InputLimits& limits, UploadSlots& slots, net::thread_pool& handlers)
      : HttpSession(std::move(buffer), router, limits, slots, handlers),
        stream_(std::move(stream)) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&PlainSession::do_read, shared_from_this()));
  }
  beast::tcp_stream& stream() { return stream_; }
  // A lingering close (as nginx does): after our half-close, what the client still sends (the
  // rest of a refused body) is read and dropped for a moment, since closing with unread data
  // makes the kernel send a reset that can destroy the error response before the client reads it.
  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    stream_.expires_after(kLingerTimeout);
    linger();
  }

 private:
  void linger() {
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec) self->linger();
                            });
  }

  beast::tcp_stream stream_;
  std::array<char, 4096> discard_{};
};

class TlsSession : public HttpSession<TlsSession>, public std::enable_shared_from_this<TlsSession> {
 public:
  static constexpr bool kTls = true;
  TlsSession(beast::tcp_stream&& stream, ssl::context& ctx, beast::flat_buffer buffer,
             const Router& router, const InputLimits& limits, UploadSlots& slots,
             net::thread_pool& handlers)
      : HttpSession(std::move(buffer), router, limits, slots, handlers),
        stream_(std::move(stream), ctx) {
    header_timeout_ = limits.header_timeout;
  }

  // Called on the session's strand (by the detector) with the bytes it already read in buffer_.
  void run() {
    beast::get_lowest_layer(stream_).expires_after(header_timeout_);
    stream_.async_handshake(
        ssl::stream_base::server, buffer_.data(),
        beast::bind_front_handler(&TlsSession::on_handshake, shared_from_this()));
  }
  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }
  void do_close() {
    beast::get_lowest_layer(stream_).expires_after(kTlsShutdownTimeout);
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

 private:
  void on_handshake(beast::error_code ec, std::size_t used) {
    if (ec) {
      // Old protocol versions, wrong certificates and scanners end here; not worth a warning.
      runtime::Log::write(LogLevel::kDebug, "tls_handshake_failed", {{"error", ec.message()}},
                          false);
      return;
    }
    buffer_.consume(used);
    do_read();
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  std::chrono::milliseconds header_timeout_;
};

// On a TLS listener: looks at the first bytes; a TLS ClientHello goes on to a TlsSession, plain
// HTTP gets a 400 saying the port wants HTTPS (as nginx does) and the connection closes.
class DetectSession : public std::enable_shared_from_this<DetectSession> {
 public:
  DetectSession(tcp::socket&& socket, ssl::context& ctx, const Router& router,
                const InputLimits& limits, UploadSlots& slots, net::thread_pool& handlers)
      : stream_(std::move(socket)),
        ctx_(ctx),
        router_(router),
        limits_(limits),
        slots_(slots),
        handlers_(handlers) {}

  void hold(std::shared_ptr<void> connection) { connection_ = std::move(connection); }
  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&DetectSession::on_run, shared_from_this()));
  }

 private:
  void on_run() {
    stream_.expires_after(limits_.header_timeout);
    beast::async_detect_ssl(
        stream_, buffer_, beast::bind_front_handler(&DetectSession::on_detect, shared_from_this()));
  }

  void on_detect(beast::error_code ec, bool tls) {
    if (ec) return;
    if (tls) {
      auto session = std::make_shared<TlsSession>(std::move(stream_), ctx_, std::move(buffer_),
                                                  router_, limits_, slots_, handlers_);
      session->hold(std::move(connection_));
      session->run();
      return;
    }
    static const std::string kBody = R"({"error":"this port speaks HTTPS only: use https://"})";
    static const std::string kResponse =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
        "Content-Length: " +
        std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
    net::async_write(stream_, net::buffer(kResponse),
                     [self = shared_from_this()](beast::error_code, std::size_t) {
                       beast::error_code ignored;
                       self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                     });
  }

  beast::tcp_stream stream_;
  ssl::context& ctx_;
  const Router& router_;
  const InputLimits& limits_;
  UploadSlots& slots_;
  net::thread_pool& handlers_;
  beast::flat_buffer buffer_;
  std::shared_ptr<void> connection_;
};

ssl::context make_tls_context(const TlsFiles& files) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx.native_handle(), kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx.native_handle(), kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx.native_handle(), kTlsGroups) != 1)
    throw std::runtime_error("this OpenSSL lacks the TLS ciphers chartflow requires");
  beast::error_code ec;
  ctx.use_certificate_chain_file(files.cert_file, ec);
  if (ec)
    throw std::runtime_error("cannot use --tls-cert " + files.cert_file + ": " + ec.message());
  ctx.use_private_key_file(files.key_file, ssl::context::pem, ec);
  if (ec) throw std::runtime_error("cannot use --tls-key " + files.key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw std::runtime_error("--tls-key " + files.key_file + " does not match --tls-cert " +
                             files.cert_file);
  return ctx;
}

}  // namespace

struct Server::Impl {
  Impl(ServerSettings s, const Router& r)
      : settings(std::move(s)),
        router(r),
        slots(settings.upload_slots, settings.upload_queue),
        connections(settings.max_connections, settings.max_connections_per_client),
        handlers(static_cast<std::size_t>(std::max(1, settings.handler_threads))),
        accept_strand(net::make_strand(ioc)),
        acceptor(accept_strand),
        backoff(accept_strand) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        // Out of file descriptors (EMFILE) or another failure that would recur at once: rest
        // instead of spinning on a full core, then try again.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_accept_warning > std::chrono::seconds(10)) {
          last_accept_warning = now;
          runtime::Log::warn("http_accept_failed", {{"error", ec.message()}});
        }
        backoff.expires_after(kAcceptBackoff);
        backoff.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec && acceptor.is_open()) accept();
        });
        return;
      }
      beast::error_code rec;
      const auto ep = socket.remote_endpoint(rec);
      auto ticket = connections.admit(rec ? std::string() : ep.address().to_string());
      if (!ticket) {
        // Over a cap: closed at once, before any byte is read.
        socket.close(rec);
      } else if (tls) {
        auto session = std::make_shared<DetectSession>(std::move(socket), *tls, router,
                                                       settings.limits, slots, handlers);
        session->hold(std::move(ticket));
        session->run();
      } else {
        auto session = std::make_shared<PlainSession>(beast::tcp_stream(std::move(socket)),
                                                      beast::flat_buffer(), router, settings.limits,
                                                      slots, handlers);
        session->hold(std::move(ticket));
        session->run();
      }
      if (acceptor.is_open()) accept();
    });
  }

  ServerSettings settings;
  const Router& router;
  // Before ioc: sessions destroyed with the io_context still return their slots here.
  UploadSlots slots;
  ConnectionLimits connections;
  net::io_context ioc;
  // Route handlers and credential checks run here, never on the io threads (see
  // ServerSettings::handler_threads). After ioc, so it is joined first and the sessions its
  // tasks hold are released while their executors still exist.
  net::thread_pool handlers;
  // The acceptor's handlers and its close at shutdown run on one strand: with several I/O
  // threads, a close racing the handler that re-arms the accept was undefined behaviour (UBSan
  // caught a null reactor descriptor in the re-armed accept).
  net::strand<net::io_context::executor_type> accept_strand;
  tcp::acceptor acceptor;
  net::steady_timer backoff;
  std::chrono::steady_clock::time_point last_accept_warning{};
  std::optional<ssl::context> tls;
  std::vector<std::thread> threads;
};

Server::Server(ServerSettings settings, const Router& router)
    : impl_(std::make_unique<Impl>(std::move(settings), router)) {}

Server::~Server() { stop(); }

void Server::start() {
  if (impl_->settings.tls) impl_->tls.emplace(make_tls_context(*impl_->settings.tls));
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->settings.host, ec);
  if (ec) throw std::runtime_error("invalid listen address '" + impl_->settings.host + "'");
  tcp::endpoint ep(address, impl_->settings.port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + impl_->settings.host + ":" +
                             std::to_string(impl_->settings.port) + ": " + ec.message());
  impl_->accept();
  for (int i = 0; i < std::max(1, impl_->settings.threads); ++i)
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
}

void Server::stop() {
  if (!impl_) return;
  net::post(impl_->accept_strand, [this] {
    beast::error_code e;
    impl_->acceptor.close(e);
    impl_->backoff.cancel();
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  // Handlers still running finish (each within the database call deadline); their answers go
  // nowhere, as the io threads have stopped.
  impl_->handlers.join();
  impl_->slots.close();
}

unsigned short Server::port() const { return impl_->acceptor.local_endpoint().port(); }

Server::UploadStats Server::upload_stats() const {
  return {std::max(1, impl_->settings.upload_slots), impl_->slots.in_use(), impl_->slots.waiting()};
}

}  // namespace chartflow::http
