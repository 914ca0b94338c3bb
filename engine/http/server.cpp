#include "http/server.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>

#include "runtime/log.hpp"

namespace chartflow::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kReadTimeout = std::chrono::seconds(30);
constexpr std::uint32_t kHeaderLimit = 16 * 1024;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, const Router& router, std::size_t body_limit)
      : stream_(std::move(socket)), router_(router), body_limit_(body_limit) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(body_limit_);
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(kReadTimeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::eof) {
      return close();
    }
    if (ec == bhttp::error::body_limit) {
      return send_error(
          413, "request body exceeds the limit of " + std::to_string(body_limit_) + " bytes");
    }
    if (ec == bhttp::error::header_limit) return send_error(431, "request headers too large");
    if (ec) return send_error(400, "malformed HTTP request");
    auto req = parser_->release();
    Request r;
    r.method = std::string(req.method_string());
    const std::string target(req.target());
    const auto qpos = target.find('?');
    r.path = url_decode(target.substr(0, qpos), false);
    if (qpos != std::string::npos) r.query = parse_query(target.substr(qpos + 1));
    for (const auto& h : req) {
      std::string name(h.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(h.value());
    }
    r.body = std::move(req.body());
    beast::error_code rec;
    auto ep = stream_.socket().remote_endpoint(rec);
    if (!rec) r.remote = ep.address().to_string();
    Response resp = router_.handle(r);
    send(resp, req.keep_alive(), req.method() == bhttp::verb::head);
  }

  void send_error(int status, const std::string& message) {
    send(Response::error(status, message), false, false);
  }

  void send(const Response& resp, bool keep_alive, bool head) {
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
    bhttp::async_write(
        stream_, *res_,
        beast::bind_front_handler(&Session::on_write, shared_from_this(), res_->keep_alive()));
  }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    if (ec) return close();
    res_.reset();
    if (!keep_alive) return close();
    do_read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  const Router& router_;
  std::size_t body_limit_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<bhttp::response<bhttp::string_body>> res_;
};

}  // namespace

struct Server::Impl {
  Impl(ServerSettings s, const Router& r) : settings(std::move(s)), router(r), acceptor(ioc) {}

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (!ec) std::make_shared<Session>(std::move(socket), router, settings.body_limit)->run();
      if (acceptor.is_open()) accept();
    });
  }

  ServerSettings settings;
  const Router& router;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
};

Server::Server(ServerSettings settings, const Router& router)
    : impl_(std::make_unique<Impl>(std::move(settings), router)) {}

Server::~Server() { stop(); }

void Server::start() {
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
  beast::error_code ec;
  net::post(impl_->ioc, [this] {
    beast::error_code e;
    impl_->acceptor.close(e);
  });
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
}

unsigned short Server::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace chartflow::http
