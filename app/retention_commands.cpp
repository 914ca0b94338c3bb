// `chartflow retention [status] | expire [--dry-run]` and `chartflow holds list | add SUBJECT
// --reason TEXT | release SUBJECT --reason TEXT`: clients of /v1/retention and /v1/holds (issue
// #17 item 5). Each prints what the server answered; exit 1 when it refused.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "app/client_request.hpp"
#include "app/commands.hpp"

namespace chartflow::cli {
namespace {

using nlohmann::json;

int refused(const Reply& reply) {
  std::cerr << "server answered " << reply.status << ": " << reply.body << credential_hint(reply)
            << "\n";
  return 1;
}

// Sizes as an operator reads them in a terminal.
std::string size_text(std::int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return out;
}

int status(const Args& args) {
  const auto reply = request(server_of(args), "GET", "/v1/retention", "", "");
  if (reply.status != 200) return refused(reply);
  const json r = json::parse(reply.body);
  const auto& s = r.at("settings");
  std::cout << "runs kept " << s.value("runs", "") << " (archived " << s.value("archive_after", "")
            << " after they finish), logs kept " << s.value("logs", "") << "\n";
  for (const auto& p : r.at("partitions")) {
    std::cout << p.value("partition", "") << "  " << size_text(p.value("bytes", 0)) << "  ~"
              << p.value("rows_estimate", 0) << " rows";
    if (p.value("held", false)) std::cout << "  (held: never expires)";
    std::cout << "\n";
  }
  std::cout << r.at("holds").size() << " hold(s)\n";
  return 0;
}

int expire(const Args& args) {
  const bool dry = args.get("dry-run").has_value();
  const auto reply = request(server_of(args), "POST", "/v1/retention/expire",
                             json{{"dry_run", dry}}.dump(), "application/json");
  if (reply.status != 200) return refused(reply);
  const json r = json::parse(reply.body);
  for (const auto& d : r.at("dropped")) {
    std::cout << (dry ? "would drop " : "dropped ") << d.value("partition", "") << "  "
              << size_text(d.value("bytes", 0));
    if (d.value("held_runs", 0) > 0)
      std::cout << "  (" << d.value("held_runs", 0) << " held run(s) kept)";
    std::cout << "\n";
  }
  std::cout << (dry ? "would free " : "freed ") << size_text(r.value("bytes", 0)) << " in "
            << r.at("dropped").size() << " partition(s)\n";
  return 0;
}

std::string required_reason(const Args& args) {
  auto reason = args.get("reason");
  if (!reason || reason->empty()) throw std::runtime_error("--reason TEXT is required");
  return json{{"reason", *reason}}.dump();
}

}  // namespace

int retention(const Args& args) {
  const std::string sub = args.positional.empty() ? "status" : args.positional[0];
  if (sub == "status" && args.positional.size() <= 1) return status(args);
  if (sub == "expire" && args.positional.size() == 1) return expire(args);
  throw std::runtime_error("usage: chartflow retention [status] | expire [--dry-run]");
}

int holds(const Args& args) {
  const std::string sub = args.positional.empty() ? "list" : args.positional[0];
  const auto n = args.positional.size();
  if (sub == "list" && n <= 1) {
    const auto reply = request(server_of(args), "GET", "/v1/holds", "", "");
    if (reply.status != 200) return refused(reply);
    const json listed = json::parse(reply.body);
    for (const auto& h : listed.at("holds"))
      std::cout << h.value("subject", "") << "  held since " << h.value("created_at", "") << " by "
                << h.value("held_by", "") << ": " << h.value("reason", "") << "\n";
    return 0;
  }
  if (sub == "add" && n == 2) {
    auto body = json::parse(required_reason(args));
    body["subject"] = args.positional[1];
    const auto reply =
        request(server_of(args), "POST", "/v1/holds", body.dump(), "application/json");
    if (reply.status != 201) return refused(reply);
    std::cout << "held " << args.positional[1] << ": its runs are kept past every expiry\n";
    return 0;
  }
  if (sub == "release" && n == 2) {
    const auto reply =
        request(server_of(args), "DELETE", "/v1/holds/" + url_encode(args.positional[1]),
                required_reason(args), "application/json");
    if (reply.status != 200) return refused(reply);
    std::cout << "released " << args.positional[1] << "\n";
    return 0;
  }
  throw std::runtime_error(
      "usage: chartflow holds list | add SUBJECT --reason TEXT | release SUBJECT --reason TEXT");
}

}  // namespace chartflow::cli
