// Client subcommands that talk to a running server: `chartflow logs` and `chartflow upload`.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/client_request.hpp"
#include "app/commands.hpp"
#include "http/router.hpp"

namespace chartflow::cli {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr const char* kDefaultServer = "http://127.0.0.1:8080";

}  // namespace

std::string server_of(const Args& args) {
  if (auto v = args.get("server")) return *v;
  if (const char* env = std::getenv("CHARTFLOW_SERVER"); env && *env) return env;
  return kDefaultServer;
}

std::string url_encode(const std::string& v) {
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Reply request(const std::string& server, const std::string& method_name, const std::string& target,
              const std::string& body, const std::string& content_type) {
  const bhttp::verb method = bhttp::string_to_verb(method_name);
  std::string rest = server;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string host = rest, port = "80";
  if (auto c = rest.rfind(':'); c != std::string::npos) {
    host = rest.substr(0, c);
    port = rest.substr(c + 1);
  }
  if (rest.rfind("https://", 0) == 0)
    throw std::runtime_error("cannot reach " + server +
                             ": this client speaks plain HTTP to a local server only; use curl "
                             "for an HTTPS server");
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  try {
    stream.connect(resolver.resolve(host, port));
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot reach " + server + ": " + e.code().message() +
                             " (is chartflow serve running there? --server URL or "
                             "CHARTFLOW_SERVER says where)");
  }
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, host);
  req.set(bhttp::field::user_agent, "chartflow-cli");
  if (const char* token = std::getenv("CHARTFLOW_TOKEN"); token && *token)
    req.set(bhttp::field::authorization, std::string("Bearer ") + token);
  if (!body.empty()) {
    req.set(bhttp::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
  }
  bhttp::write(stream, req);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::uint64_t{256} * 1024 * 1024);
  bhttp::read(stream, buffer, parser);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return Reply{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

std::string credential_hint(const Reply& reply) {
  if (reply.status == 401)
    return " (set CHARTFLOW_TOKEN to a token from `chartflow tokens create`)";
  if (reply.status == 403) return " (the token's role may not do this)";
  return "";
}

int logs(const Args& args) {
  std::string query;
  for (const char* name : {"level", "since", "until", "workflow", "run", "step", "q", "limit"}) {
    if (auto v = args.get(name))
      query += std::string(query.empty() ? "?" : "&") + name + "=" + url_encode(*v);
  }
  auto reply = request(server_of(args), "GET", "/v1/logs" + query, "", "");
  if (reply.status != 200) {
    std::cerr << "server answered " << reply.status << ": " << reply.body << credential_hint(reply)
              << "\n";
    return 1;
  }
  auto j = nlohmann::json::parse(reply.body);
  for (const auto& l : j.at("logs")) {
    std::cout << l.value("at", "") << " " << l.value("level", "");
    if (!l.at("workflow").is_null())
      std::cout << " workflow=" << l.at("workflow").get<std::string>();
    if (!l.at("run").is_null()) std::cout << " run=" << l.at("run").dump();
    if (!l.at("step").is_null()) std::cout << " step=" << l.at("step").get<std::string>();
    if (!l.at("attempt").is_null()) std::cout << " attempt=" << l.at("attempt").dump();
    std::cout << " " << l.value("message", "");
    if (l.contains("fields") && !l.at("fields").empty()) std::cout << " " << l.at("fields").dump();
    std::cout << "\n";
  }
  return 0;
}

int upload(const Args& args) {
  if (args.positional.empty()) throw std::runtime_error("upload needs one or more chart FILEs");
  int failures = 0;
  for (const auto& file : args.positional) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << file << ": cannot read\n";
      ++failures;
      continue;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string chart_id;
    if (auto id = args.get("chart-id")) {
      chart_id = *id;
    } else {
      std::string problem;
      try {
        auto bundle = nlohmann::json::parse(ss.str());
        const std::string type =
            bundle.is_object() ? bundle.value("resourceType", std::string()) : std::string();
        if (type != "Bundle") {
          problem = "is not a FHIR Bundle (resourceType " +
                    (type.empty() ? std::string("missing") : "'" + type + "'") +
                    "): a chart is a Bundle holding the Patient and their resources";
        } else {
          for (const auto& e : bundle.value("entry", nlohmann::json::array())) {
            const auto& r = e.value("resource", nlohmann::json::object());
            if (r.value("resourceType", "") == "Patient") {
              chart_id = r.value("id", "");
              break;
            }
          }
          if (chart_id.empty()) problem = "no Patient id in the Bundle; pass --chart-id";
        }
      } catch (const nlohmann::json::exception& e) {
        problem = std::string("is not JSON: ") + e.what();
      }
      if (!problem.empty()) {
        std::cerr << file << ": " << problem << "\n";
        ++failures;
        continue;
      }
    }
    auto reply = request(server_of(args), "PUT", "/v1/charts/" + url_encode(chart_id), ss.str(),
                         "application/fhir+json");
    std::cout << file << ": " << reply.status << " " << reply.body << credential_hint(reply)
              << "\n";
    if (reply.status >= 300) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace chartflow::cli
