// `chartflow reprocess`: the client of POST /v1/reprocess (issue #17 item 3). With --dry-run it
// prints the blast radius (runs, charts, and what each step's side effects would do); without,
// it starts the job and prints it; `status ID` and `cancel ID` follow and stop one.
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "app/client_request.hpp"
#include "app/commands.hpp"

namespace chartflow::cli {
namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "usage: chartflow reprocess --workflow W [--from T] [--to T] [--status S[,S...]] "
    "[--chart ID] [--failed-step STEP] [--dry-run] [--resend] [--force --reason TEXT] "
    "[--batch-size N]\n"
    "       chartflow reprocess status ID | cancel ID | list";

int refused(const Reply& reply) {
  std::cerr << "server answered " << reply.status << ": " << reply.body << credential_hint(reply)
            << "\n";
  return 1;
}

void print_job(const json& job) {
  std::cout << "job " << job.value("id", 0) << " (" << job.value("workflow", "")
            << "): " << job.value("status", "") << ", " << job.value("started", 0) << " of "
            << job.value("total", 0) << " run(s) started\n";
}

void print_dry_run(const json& d) {
  std::cout << d.value("workflow", "") << " (runs start at version " << d.value("version", 0)
            << "), dry run: nothing changes\n"
            << "runs: " << d.value("runs", 0) << " of " << d.value("charts", 0) << " chart(s)\n";
  std::string charts;
  for (const auto& c : d.value("chart_ids", json::array()))
    charts += (charts.empty() ? "" : ", ") + c.get<std::string>();
  if (!charts.empty()) std::cout << "charts: " << charts << "\n";
  for (const auto& e : d.value("effects", json::array()))
    std::cout << "  " << e.value("step", "") << ": " << e.value("effect", "") << " "
              << e.value("action", "") << " x" << e.value("count", 0) << " (in "
              << e.value("runs", 0) << " run(s))\n";
  if (d.value("previewed", 0) < d.value("runs", 0))
    std::cout << "(side effects previewed for the first " << d.value("previewed", 0) << " runs)\n";
}

}  // namespace

int reprocess(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub == "list") {
    auto reply = request(server_of(args), "GET", "/v1/reprocess", "", "");
    if (reply.status != 200) return refused(reply);
    for (const auto& job : json::parse(reply.body).at("jobs")) print_job(job);
    return 0;
  }
  if ((sub == "status" || sub == "cancel") && args.positional.size() == 2) {
    const std::string path = "/v1/reprocess/" + url_encode(args.positional[1]);
    auto reply = sub == "status"
                     ? request(server_of(args), "GET", path, "", "")
                     : request(server_of(args), "POST", path + "/cancel", "", "application/json");
    if (reply.status != 200) return refused(reply);
    print_job(json::parse(reply.body));
    return 0;
  }
  const auto workflow = args.get("workflow");
  if (!sub.empty() || !workflow) throw std::runtime_error(kUsage);
  json body = {{"workflow", *workflow}, {"dry_run", args.get("dry-run").has_value()}};
  if (auto v = args.get("from")) body["from"] = *v;
  if (auto v = args.get("to")) body["to"] = *v;
  if (auto v = args.get("chart")) body["chart_id"] = *v;
  if (auto v = args.get("failed-step")) body["failed_step"] = *v;
  if (auto v = args.get("status")) {
    body["status"] = json::array();
    std::size_t start = 0;
    for (;;) {
      const auto comma = v->find(',', start);
      body["status"].push_back(v->substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (args.get("resend")) body["resend"] = true;
  if (args.get("force")) body["force"] = true;
  if (auto v = args.get("reason")) body["reason"] = *v;
  if (auto v = args.get("batch-size")) body["batch_size"] = args.get_int("batch-size", 50);
  auto reply = request(server_of(args), "POST", "/v1/reprocess", body.dump(), "application/json");
  if (reply.status != 200 && reply.status != 202) return refused(reply);
  const json answer = json::parse(reply.body);
  if (body.at("dry_run").get<bool>()) {
    print_dry_run(answer);
  } else {
    print_job(answer);
    std::cout << "follow it with: chartflow reprocess status " << answer.value("id", 0)
              << "; stop it with: chartflow reprocess cancel " << answer.value("id", 0) << "\n";
  }
  return 0;
}

}  // namespace chartflow::cli
