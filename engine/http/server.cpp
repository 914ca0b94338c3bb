#include "http/server.hpp"

#include <openssl/ssl.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

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
              UploadSlots& slots)
      : buffer_(std::move(buffer)), router_(router), limits_(limits), slots_(slots) {}

 protected:
  beast::flat_buffer buffer_;

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
    if (length ? *length <= limits_.large_body_bytes : limit <= limits_.large_body_bytes)
      return read_body();
    // Waiting for a slot is the server's doing, not a slow client's: no timeout until it is ours.
    beast::get_lowest_layer(derived().stream()).expires_never();
    slots_.acquire([self = derived().shared_from_this()](UploadSlot slot) {
      net::post(self->stream().get_executor(), [self, slot = std::move(slot)]() mutable {
        self->upload_slot_ = std::move(slot);
        self->read_body();
      });
    });
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
    std::string remote;
    beast::error_code rec;
    auto ep = beast::get_lowest_layer(derived().stream()).socket().remote_endpoint(rec);
    if (!rec) remote = ep.address().to_string();
    Response resp;
    bool head = false;
    {
      // Scoped so the body is freed, and the upload slot handed on, before the response is sent.
      Request r;
      try {
        r = to_request(parser_->release(), std::move(remote));
      } catch (const HttpError& e) {
        return send(Response::error(e.status, e.message), keep_alive, false);
      }
      if (auto problem = check_body(r, limits_))
        return send(Response::error(problem->status, problem->message), keep_alive, false);
      resp = router_.handle(r);
      head = r.method == "HEAD";
    }
    send(resp, keep_alive, head);
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
  UploadSlot upload_slot_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<bhttp::response<bhttp::string_body>> res_;
};

class PlainSession : public HttpSession<PlainSession>,
                     public std::enable_shared_from_this<PlainSession> {
 public:
  PlainSession(beast::tcp_stream&& stream, beast::flat_buffer buffer, const Router& router,
               const InputLimits& limits, UploadSlots& slots)
      : HttpSession(std::move(buffer), router, limits, slots), stream_(std::move(stream)) {}

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
  TlsSession(beast::tcp_stream&& stream, ssl::context& ctx, beast::flat_buffer buffer,
             const Router& router, const InputLimits& limits, UploadSlots& slots)
      : HttpSession(std::move(buffer), router, limits, slots), stream_(std::move(stream), ctx) {
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
                const InputLimits& limits, UploadSlots& slots)
      : stream_(std::move(socket)), ctx_(ctx), router_(router), limits_(limits), slots_(slots) {}

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
      std::make_shared<TlsSession>(std::move(stream_), ctx_, std::move(buffer_), router_, limits_,
                                   slots_)
          ->run();
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
  beast::flat_buffer buffer_;
};

ssl::context make_tls_context(const TlsFiles& files) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
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
        slots(settings.upload_slots),
        accept_strand(net::make_strand(ioc)),
        acceptor(accept_strand) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (!ec) {
        if (tls)
          std::make_shared<DetectSession>(std::move(socket), *tls, router, settings.limits, slots)
              ->run();
        else
          std::make_shared<PlainSession>(beast::tcp_stream(std::move(socket)), beast::flat_buffer(),
                                         router, settings.limits, slots)
              ->run();
      }
      if (acceptor.is_open()) accept();
    });
  }

  ServerSettings settings;
  const Router& router;
  // Before ioc: sessions destroyed with the io_context still return their slots here.
  UploadSlots slots;
  net::io_context ioc;
  // The acceptor's handlers and its close at shutdown run on one strand: with several I/O
  // threads, a close racing the handler that re-arms the accept was undefined behaviour (UBSan
  // caught a null reactor descriptor in the re-armed accept).
  net::strand<net::io_context::executor_type> accept_strand;
  tcp::acceptor acceptor;
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
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  impl_->slots.close();
}

unsigned short Server::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace chartflow::http
