#include "http/client_address.hpp"

#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace chartflow::http {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The address as 16 bytes (IPv4 mapped into IPv6), or nullopt when it is not one.
std::optional<std::array<unsigned char, 16>> address_bytes(std::string_view text) {
  text = trim(text);
  // "[::1]" and "1.2.3.4:5678" as some proxies write them.
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    text = text.substr(1, close - 1);
  } else if (const auto colon = text.find(':');
             colon != std::string_view::npos &&
             text.find(':', colon + 1) == std::string_view::npos) {
    text = text.substr(0, colon);
  }
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (a.is_v4())
    return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, a.to_v4()).to_bytes();
  return a.to_v6().to_bytes();
}

std::string canonical(const std::array<unsigned char, 16>& bytes) {
  const boost::asio::ip::address_v6 v6(bytes);
  if (v6.is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  return v6.to_string();
}

}  // namespace

TrustedProxies TrustedProxies::parse(std::string_view spec) {
  TrustedProxies out;
  std::size_t i = 0;
  while (i < spec.size()) {
    std::size_t j = spec.find_first_of(", ", i);
    if (j == std::string_view::npos) j = spec.size();
    const std::string_view entry = spec.substr(i, j - i);
    i = j + 1;
    if (entry.empty()) continue;
    const auto slash = entry.find('/');
    const auto bytes = address_bytes(entry.substr(0, slash));
    if (!bytes || entry.front() == '[')
      throw std::invalid_argument("--trusted-proxy: '" + std::string(entry) +
                                  "' is not an IP address or CIDR block");
    Net net{*bytes, 128};
    const bool v4 = boost::asio::ip::address_v6(*bytes).is_v4_mapped();
    if (slash != std::string_view::npos) {
      const std::string_view len = entry.substr(slash + 1);
      int prefix = -1;
      auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
      if (ec != std::errc() || p != len.data() + len.size() || prefix < 0 ||
          prefix > (v4 ? 32 : 128))
        throw std::invalid_argument("--trusted-proxy: bad prefix length in '" + std::string(entry) +
                                    "'");
      net.prefix = v4 ? prefix + 96 : prefix;
    }
    out.nets_.push_back(net);
  }
  return out;
}

bool TrustedProxies::contains(std::string_view address) const {
  const auto bytes = address_bytes(address);
  if (!bytes) return false;
  for (const auto& net : nets_) {
    bool match = true;
    for (int bit = 0; bit < net.prefix && match; bit += 8) {
      const int bits = std::min(8, net.prefix - bit);
      const unsigned mask = (0xFFu << (8 - bits)) & 0xFFu;
      match = ((*bytes)[bit / 8] & mask) == (net.bytes[bit / 8] & mask);
    }
    if (match) return true;
  }
  return false;
}

void TrustedProxies::apply(Request& req) const {
  if (!contains(req.remote)) {
    req.headers.erase("x-forwarded-for");
    req.headers.erase("x-forwarded-proto");
    return;
  }
  auto xff = req.header("x-forwarded-for");
  if (!xff) return;
  // Each proxy appends the address it received from: walk from the right past our own proxies.
  std::string_view rest = *xff;
  while (!rest.empty()) {
    const auto comma = rest.rfind(',');
    const std::string_view hop =
        trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    const auto bytes = address_bytes(hop);
    if (!bytes) return;  // garbage from the proxy: keep the proxy's own address
    const std::string address = canonical(*bytes);
    req.remote = address;
    if (!contains(address)) return;
  }
}

std::optional<std::string> forwarded_proto(const Request& req) {
  auto h = req.header("x-forwarded-proto");
  if (!h) return std::nullopt;
  // The first proxy's view of the scheme comes first.
  std::string_view first = trim(std::string_view(*h).substr(0, h->find(',')));
  std::string out;
  for (char c : first) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace chartflow::http
