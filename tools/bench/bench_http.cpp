#include "tools/bench/bench_http.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>

extern char** environ;

namespace chartflow::bench {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::size_t kReplyLimit = 64 * 1024 * 1024;

}  // namespace

struct KeepAliveClient::Impl {
  std::string host;
  std::string bearer;
  unsigned short port;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  HttpReply exchange(const bhttp::request<bhttp::string_body>& req) {
    if (!stream) {
      stream.emplace(ioc);
      stream->connect(tcp::endpoint(net::ip::make_address(host), port));
      buffer.clear();
    }
    bhttp::write(*stream, req);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kReplyLimit);
    bhttp::read(*stream, buffer, parser);
    if (!parser.get().keep_alive()) stream.reset();
    return HttpReply{static_cast<int>(parser.get().result_int()), parser.get().body()};
  }
};

KeepAliveClient::KeepAliveClient(std::string host, unsigned short port, std::string bearer)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->bearer = std::move(bearer);
  impl_->port = port;
}

KeepAliveClient::~KeepAliveClient() = default;

HttpReply KeepAliveClient::send(const std::string& method, const std::string& target,
                                const std::string& body, const std::string& content_type) {
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
  req.set(bhttp::field::host, impl_->host);
  if (!impl_->bearer.empty()) req.set(bhttp::field::authorization, "Bearer " + impl_->bearer);
  req.keep_alive(true);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(bhttp::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
  }
  try {
    return impl_->exchange(req);
  } catch (const beast::system_error&) {
    // The server may close an idle keep-alive connection; one fresh connection is fair.
    impl_->stream.reset();
    return impl_->exchange(req);
  }
}

Sink::Sink() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0)
    throw std::runtime_error("sink: cannot listen on 127.0.0.1");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { loop(); });
}

Sink::~Sink() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void Sink::loop() {
  static const std::string kReply =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
      "Connection: close\r\n\r\n{}";
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    // Read the head, then as many body bytes as Content-Length says; the content is ignored.
    std::string in;
    char buf[16384];
    std::size_t need = std::string::npos;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (true) {
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      const auto head_end = in.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      if (need == std::string::npos) {
        std::size_t length = 0;
        std::string head = in.substr(0, head_end);
        for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (auto at = head.find("content-length:"); at != std::string::npos)
          length = std::stoul(head.substr(at + 15));
        need = head_end + 4 + length;
      }
      if (in.size() >= need) break;
    }
    ::send(fd, kReply.data(), kReply.size(), MSG_NOSIGNAL);
    ::close(fd);
    ++requests_;
  }
}

unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

ServerProcess::ServerProcess(const std::vector<std::string>& args,
                             const std::vector<std::string>& extra_env,
                             const std::filesystem::path& log,
                             const std::filesystem::path& binary) {
  // The server under test is the real `chartflow` binary, built beside this one.
  std::vector<std::string> argv = {
      binary.empty()
          ? (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "chartflow").string()
          : binary.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  std::vector<std::string> env_store(extra_env);
  for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
  std::vector<char*> env;
  for (auto& e : env_store) env.push_back(e.data());
  env.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  // The child inherits our signal mask; serve blocks the stop signals itself.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&pid_, raw[0], &fa, &attr, raw.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start chartflow serve");
}

bool ServerProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

ServerProcess::~ServerProcess() {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 300 && running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (running()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void wait_ready(unsigned short port, ServerProcess& server) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!server.running()) throw std::runtime_error("chartflow serve exited during start-up");
    try {
      KeepAliveClient c("127.0.0.1", port);
      if (c.send("GET", "/readyz").status == 200) return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("chartflow serve did not become ready within 60 s");
}

namespace {

struct ProcStat {
  pid_t ppid = 0;
  double self_s = 0, reaped_children_s = 0;
};

std::optional<ProcStat> proc_stat(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name, in parentheses, may hold spaces; the fields after it do not.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x && f.size() < 15;) f.push_back(x);
  if (f.size() < 15) return std::nullopt;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
  return ProcStat{static_cast<pid_t>(std::stol(f[1])), (std::stod(f[11]) + std::stod(f[12])) / tick,
                  (std::stod(f[13]) + std::stod(f[14])) / tick};
}

}  // namespace

double cpu_seconds(pid_t pid, bool with_children) {
  auto self = proc_stat(std::to_string(pid));
  if (!self) return 0;
  double total = self->self_s;
  if (!with_children) return total;
  total += self->reaped_children_s;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    if (auto child = proc_stat(name); child && child->ppid == pid) total += child->self_s;
  }
  return total;
}

Rss read_rss(pid_t pid) {
  Rss r;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long kb = 0;
  std::string unit;
  while (in >> key) {
    if (key == "VmRSS:" && in >> kb >> unit) r.current = kb * 1024;
    if (key == "VmHWM:" && in >> kb >> unit) r.peak = kb * 1024;
  }
  return r;
}

void reset_peak_rss(pid_t pid) {
  std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
  out << "5";
}

}  // namespace chartflow::bench
