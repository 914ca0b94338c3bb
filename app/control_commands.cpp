// Client subcommands that steer a running server: `chartflow workflows list | pause | resume |
// migrate` and `chartflow runs pause | resume | parked | retry | skip | fail`. Each says what the
// server answered; exit 1 when it refused.
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "app/client_request.hpp"
#include "app/commands.hpp"

namespace chartflow::cli {
namespace {

using nlohmann::json;

int report(const Reply& reply) {
  if (reply.status >= 300) {
    std::cerr << "server answered " << reply.status << ": " << reply.body << credential_hint(reply)
              << "\n";
    return 1;
  }
  std::cout << reply.body << "\n";
  return 0;
}

std::string reason_body(const Args& args) {
  auto reason = args.get("reason");
  return reason ? json{{"reason", *reason}}.dump() : std::string();
}

int list_workflows(const Args& args) {
  auto reply = request(server_of(args), "GET", "/v1/workflows", "", "");
  if (reply.status != 200) return report(reply);
  const json listed = json::parse(reply.body);
  for (const auto& w : listed.at("workflows")) {
    std::cout << w.at("name").get<std::string>() << " v" << w.at("latest_version").dump();
    const auto& p = w.value("paused", json());
    if (p.is_object()) {
      std::cout << " paused since " << p.value("paused_at", "") << " by "
                << p.value("paused_by", "") << ", " << p.value("queued_runs", 0)
                << " run(s) queued, " << p.value("running_steps", 0) << " step(s) finishing";
      if (p.contains("reason") && p.at("reason").is_string())
        std::cout << ": " << p.at("reason").get<std::string>();
    } else {
      std::cout << " running";
    }
    if (!w.value("debounce", json::array()).empty())
      std::cout << ", " << w.value("debounce_pending", 0) << " debounced start(s) pending";
    std::cout << "\n";
  }
  return 0;
}

// The parked view, a line per parked step: what an operator decides about.
int list_parked(const Args& args) {
  std::string target = "/v1/steps/parked";
  if (auto limit = args.get("limit")) target += "?limit=" + url_encode(*limit);
  auto reply = request(server_of(args), "GET", target, "", "");
  if (reply.status != 200) return report(reply);
  const json parked = json::parse(reply.body);
  for (const auto& p : parked.at("steps")) {
    std::cout << "run " << p.at("run_id").dump() << " " << p.value("workflow", "") << " step "
              << p.value("step", "") << " parked since " << p.value("parked_at", "") << " after "
              << p.value("attempts", 0) << " attempt(s)";
    if (p.contains("error") && p.at("error").is_string())
      std::cout << ": " << p.at("error").get<std::string>();
    std::cout << "\n";
  }
  std::cout << parked.value("total", 0) << " parked step(s)\n";
  return 0;
}

std::string joined(const json& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n.get<std::string>();
  return out;
}

std::string step_names(const json& steps) {
  std::string out;
  for (const auto& s : steps) {
    out += (out.empty() ? "" : ", ") + s.at("step").get<std::string>();
    if (s.contains("from")) out += " (was " + s.at("from").get<std::string>() + ")";
  }
  return out;
}

// One line per run, and for a run that moves one more with what its steps become.
void print_migration(const json& page, bool dry_run) {
  for (const auto& r : page.at("runs")) {
    std::cout << "run " << r.at("run_id").dump() << ": ";
    if (!r.value("movable", false)) {
      std::cout << "stays: " << r.value("reason", "") << "\n";
      continue;
    }
    std::cout << (dry_run ? "can move" : "moved") << "; next: "
              << (r.at("next").empty() ? "nothing until a waiting step ends" : joined(r.at("next")))
              << "\n    kept: " << step_names(r.at("kept"));
    if (!r.at("updated").empty()) std::cout << "; updated: " << step_names(r.at("updated"));
    if (!r.at("added").empty()) std::cout << "; added: " << step_names(r.at("added"));
    if (!r.at("dropped").empty()) std::cout << "; dropped: " << joined(r.at("dropped"));
    std::cout << "\n";
  }
}

// `workflows migrate`: pages through every candidate run (the server answers at most a
// thousand at a time), printing each page as it comes.
int migrate_workflow(const Args& args) {
  const auto workflow = args.get("workflow");
  const auto from = args.get("from");
  const auto to = args.get("to");
  if (!workflow || !from || !to)
    throw std::runtime_error(
        "usage: chartflow workflows migrate --workflow W --from N --to M [--map OLD=NEW]... "
        "[--dry-run]");
  json body = {{"dry_run", args.get("dry-run").has_value()}};
  try {
    body["from"] = std::stoi(*from);
    body["to"] = std::stoi(*to);
  } catch (const std::exception&) {
    throw std::runtime_error("--from and --to are version numbers (1, 2, ...)");
  }
  body["map"] = json::object();
  if (auto it = args.repeated.find("map"); it != args.repeated.end())
    for (const auto& m : it->second) {
      const auto eq = m.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
        throw std::runtime_error("--map takes OLD=NEW (a step of version " + *from +
                                 " and the step of version " + *to + " it became), not " + m);
      body["map"][m.substr(0, eq)] = m.substr(eq + 1);
    }
  const bool dry_run = body.at("dry_run").get<bool>();
  std::cout << *workflow << ": version " << *from << " -> " << *to
            << (dry_run ? " (dry run: nothing changes)" : "") << "\n";
  int candidates = 0, movable = 0, refused = 0;
  for (;;) {
    auto reply =
        request(server_of(args), "POST", "/v1/workflows/" + url_encode(*workflow) + "/migrate",
                body.dump(), "application/json");
    if (reply.status != 200) return report(reply);
    const json page = json::parse(reply.body);
    print_migration(page, dry_run);
    candidates += page.value("candidates", 0);
    movable += page.value("movable", 0);
    refused += page.value("refused", 0);
    if (!page.value("more", false) || page.at("runs").empty()) break;
    body["after"] = page.at("runs").back().at("run_id");
  }
  std::cout << (dry_run ? "would move " : "moved ") << movable << " of " << candidates
            << " run(s); " << refused << " stay at version " << *from << "\n";
  return 0;
}

}  // namespace

int workflows(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub == "list") return list_workflows(args);
  if (sub == "migrate") return migrate_workflow(args);
  if ((sub == "pause" || sub == "resume") && args.positional.size() == 2)
    return report(request(server_of(args), "POST",
                          "/v1/workflows/" + url_encode(args.positional[1]) + "/" + sub,
                          sub == "pause" ? reason_body(args) : "", "application/json"));
  throw std::runtime_error(
      "usage: chartflow workflows list | pause NAME [--reason TEXT] | resume NAME | migrate "
      "--workflow W --from N --to M [--map OLD=NEW]... [--dry-run]");
}

int runs(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  const auto n = args.positional.size();
  if ((sub == "pause" || sub == "resume") && n == 2)
    return report(request(server_of(args), "POST",
                          "/v1/runs/" + url_encode(args.positional[1]) + "/" + sub,
                          sub == "pause" ? reason_body(args) : "", "application/json"));
  if (sub == "parked" && n == 1) return list_parked(args);
  if (sub == "retry" && n == 2)
    return report(request(server_of(args), "POST",
                          "/v1/runs/" + url_encode(args.positional[1]) + "/retry", "",
                          "application/json"));
  // A parked step, or a parked element of a for_each step (`send_bill[1]`).
  if ((sub == "retry" || sub == "skip" || sub == "fail") && n == 3)
    return report(request(server_of(args), "POST",
                          "/v1/runs/" + url_encode(args.positional[1]) + "/steps/" +
                              url_encode(args.positional[2]) + "/" + sub,
                          sub == "skip" ? reason_body(args) : "", "application/json"));
  throw std::runtime_error(
      "usage: chartflow runs pause ID [--reason TEXT] | resume ID | parked | retry ID [STEP] | "
      "skip ID STEP --reason TEXT | fail ID STEP");
}

}  // namespace chartflow::cli
