#include "handlers/chart_api/chart_routes.hpp"

#include "handlers/chart_api/chart_api.hpp"
#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/chart_intake/chart_upload.hpp"

namespace chartflow::handlers {
namespace {

using http::Access;
using http::HttpError;
using http::parse_id;
using http::parse_json_body;
using http::Request;
using http::Response;
using http::reviewer_scope;
using http::Role;

const std::string& chart_id_param(const Request& req) {
  const std::string& id = req.param("chart_id");
  if (!valid_chart_id(id))
    throw HttpError{400,
                    "chart id must be 1-128 characters of letters, digits, . _ - and may "
                    "not contain '..'"};
  return id;
}

// Billing needs the bill and review state of a chart, not the doctor's words or the questions
// about what the chart lacks.
// Billing needs the bill and the ledger, not the patient or the clinical picture: of the review
// it sees only where it stands (an allow-list, so a column added later stays hidden).
void strip_clinical_detail(Json& chart) {
  chart.erase("open_questions");
  chart.erase("patient");
  if (chart.contains("review") && chart.at("review").is_object()) {
    Json kept = Json::object();
    for (const char* key : {"id", "status", "decision", "created_at", "decided_at"})
      if (chart.at("review").contains(key)) kept[key] = chart.at("review").at(key);
    chart["review"] = std::move(kept);
  }
}

// Who uploaded a revision or decided a review: the credential's stable id.
std::string uploaded_by(const Request& req) { return req.principal ? req.principal->id : "api"; }

// Adds `uploaded_by_name` to each revision whose uploader is a credential: people read
// "nurse-tablet-7", not "token:7".
void name_uploaders(EngineServices& engine, Json& revisions) {
  std::vector<std::string> subjects;
  for (const auto& r : revisions)
    if (r.contains("uploaded_by") && r["uploaded_by"].is_string())
      subjects.push_back(r["uploaded_by"].get<std::string>());
  const auto names = engine.credential_names(subjects);
  for (auto& r : revisions) {
    auto it = r.contains("uploaded_by") && r["uploaded_by"].is_string()
                  ? names.find(r["uploaded_by"].get<std::string>())
                  : names.end();
    r["uploaded_by_name"] = it == names.end() ? Json(nullptr) : Json(it->second);
  }
}

// A read of patient data: refused for a reviewer the chart is not assigned to, recorded in the
// audit trail in the same transaction as the read itself.
void read_chart_data(EngineServices& engine, const Request& req, const std::string& action,
                     const std::string& chart_id, const std::function<void(Sql&)>& read) {
  auto scope = reviewer_scope(req);
  bool refused = false;
  engine.transaction([&](Sql& sql) {
    if (scope && !chart_assigned_to(sql, chart_id, *scope)) {
      refused = true;
      return;
    }
    engine.audit(sql, http::audit_entry(req, action, "chart", chart_id));
    read(sql);
  });
  if (refused) {
    engine.audit_now(http::audit_entry(req, action, "chart", chart_id, "denied"));
    throw HttpError{403, "chart " + chart_id + " has no review assigned to you"};
  }
}

Response put_chart(EngineServices& engine, const Request& req, const std::string& chart_id) {
  auto ct = req.header("content-type");
  if (!ct || (ct->find("application/fhir+json") == std::string::npos &&
              ct->find("application/json") == std::string::npos))
    throw HttpError{415, "content type must be application/fhir+json or application/json"};
  ChartUpload up;
  try {
    // The audit record commits with the revision and its event.
    up = upload_chart(
        engine, chart_id, req.body, uploaded_by(req), "upload", [&](Sql& sql, const std::string&) {
          engine.audit(sql, http::audit_entry(req, "chart.upload", "chart", chart_id));
        });
  } catch (const ChartRejected& e) {
    throw HttpError{e.status, e.message};
  }
  engine.count_event(kChartUploadedEvent);
  if (up.duplicate)
    return Response::json(200, Json{{"chart_id", chart_id},
                                    {"revision", up.revision},
                                    {"duplicate", true},
                                    {"runs", Json::array()}});
  return Response::json(202, Json{{"chart_id", chart_id},
                                  {"revision", up.revision},
                                  {"content_hash", up.content_hash},
                                  {"event_id", up.event.event_id},
                                  {"runs", up.event.run_ids},
                                  {"duplicate", false}});
}

}  // namespace

void add_chart_routes(ModuleRegistry& module) {
  module.add_route("PUT", "/v1/charts/{chart_id}", "chart_upload", Access::of({Role::kUploader}),
                   [](EngineServices& engine, Request& req) {
                     const std::string chart_id = chart_id_param(req);
                     try {
                       return put_chart(engine, req, chart_id);
                     } catch (const HttpError& e) {
                       auto entry =
                           http::audit_entry(req, "chart.upload", "chart", chart_id, "failure");
                       entry.detail = {{"status", e.status}};
                       engine.audit_now(entry);
                       throw;
                     }
                   });

  module.add_route("GET", "/v1/charts/{chart_id}", "chart",
                   Access::of({Role::kReviewer, Role::kBilling}),
                   [](EngineServices& engine, Request& req) {
                     const std::string chart_id = chart_id_param(req);
                     std::optional<Json> chart;
                     read_chart_data(engine, req, "chart.read", chart_id,
                                     [&](Sql& sql) { chart = get_chart(sql, chart_id); });
                     if (!chart) return Response::error(404, "chart not found");
                     if (req.principal && req.principal->role == Role::kBilling)
                       strip_clinical_detail(*chart);
                     name_uploaders(engine, (*chart)["revisions"]);
                     (*chart)["runs"] = engine.runs_of_subject(chart_id, 100);
                     return Response::json(200, *chart);
                   });

  module.add_route("GET", "/v1/charts/{chart_id}/revisions/{n}", "chart_revision",
                   Access::of({Role::kReviewer}), [](EngineServices& engine, Request& req) {
                     const std::string chart_id = chart_id_param(req);
                     const auto n = parse_id(req.param("n"), "revision");
                     std::optional<std::string> bundle;
                     read_chart_data(engine, req, "chart_revision.read", chart_id, [&](Sql& sql) {
                       bundle = get_revision(sql, chart_id, static_cast<int>(n));
                     });
                     if (!bundle) return Response::error(404, "revision not found");
                     Response r;
                     r.content_type = "application/fhir+json";
                     r.body = std::move(*bundle);
                     return r;
                   });

  module.add_route("GET", "/v1/charts/{chart_id}/ledger", "chart_ledger",
                   Access::of({Role::kBilling}), [](EngineServices& engine, Request& req) {
                     const std::string chart_id = chart_id_param(req);
                     Json out;
                     read_chart_data(engine, req, "ledger.read", chart_id,
                                     [&](Sql& sql) { out = list_ledger(sql, chart_id); });
                     return Response::json(200, out);
                   });

  module.add_route("GET", "/v1/charts/{chart_id}/deliveries", "chart_deliveries",
                   Access::of({Role::kBilling}), [](EngineServices& engine, Request& req) {
                     const std::string chart_id = chart_id_param(req);
                     Json out;
                     read_chart_data(engine, req, "deliveries.read", chart_id,
                                     [&](Sql& sql) { out = list_deliveries(sql, chart_id); });
                     return Response::json(200, out);
                   });

  module.add_route(
      "GET", "/v1/reviews", "reviews", Access::of({Role::kReviewer}),
      [](EngineServices& engine, Request& req) {
        auto status = req.q("status");
        if (status && *status != "pending" && *status != "approved" && *status != "rejected" &&
            *status != "escalated")
          throw HttpError{400, "status must be pending, escalated, approved or rejected"};
        int limit = kDefaultReviewListLimit;
        if (auto l = req.q("limit")) {
          limit = static_cast<int>(parse_id(*l, "limit"));
          if (limit > kMaxReviewListLimit)
            throw HttpError{400, "limit must be at most " + std::to_string(kMaxReviewListLimit)};
        }
        // A reviewer's worklist is their own, whatever the query asks for.
        auto assignee = reviewer_scope(req);
        if (!assignee) assignee = req.q("assignee");
        Json out;
        engine.transaction([&](Sql& sql) {
          engine.audit(sql,
                       http::audit_entry(req, "review.list", "assignee", assignee.value_or("")));
          out = list_reviews(sql, status, assignee, limit);
        });
        return Response::json(200, out);
      });

  module.add_route(
      "POST", "/v1/reviews/{id}/decision", "review_decision", Access::of({Role::kReviewer}),
      [](EngineServices& engine, Request& req) {
        const auto id = parse_id(req.param("id"), "review id");
        Json body = parse_json_body(req);
        if (!body.is_object() || !body.contains("decision") || !body.at("decision").is_string())
          throw HttpError{400, R"(body must be {"decision": "approve"|"reject", "comment": ...})"};
        for (const auto& [key, value] : body.items()) {
          if (key == "decided_by")
            throw HttpError{400, "decided_by is taken from your credential and may not be sent"};
          if (key != "decision" && key != "comment" && key != "reason")
            throw HttpError{400, "unknown key '" + key + "'; allowed: decision, comment, reason"};
        }
        std::optional<std::string> comment;
        if (body.contains("comment") && !body.at("comment").is_null()) {
          if (!body.at("comment").is_string()) throw HttpError{400, "comment must be a string"};
          comment = body.at("comment").get<std::string>();
        }
        // Reviewers decide their own reviews; an admin may decide anyone's, but only saying why.
        const bool on_behalf = !reviewer_scope(req);
        std::string reason;
        if (body.contains("reason") && body.at("reason").is_string())
          reason = body.at("reason").get<std::string>();
        if (on_behalf && (reason.empty() || reason.size() > 1000))
          throw HttpError{400,
                          "an admin deciding a doctor's review must give a reason (1-1000 "
                          "characters)"};
        const std::string decision = body.at("decision").get<std::string>();
        // Look the review up first to learn which run to signal; the decision itself is recorded in
        // the signal's transaction, so the run never misses a recorded decision.
        std::optional<Json> review;
        engine.read([&](Sql& sql) { review = get_review(sql, id); });
        if (!review) return Response::error(404, "review " + std::to_string(id) + " not found");
        auto entry = http::audit_entry(req, "review.decide", "review", std::to_string(id));
        entry.detail = {{"decision", decision}};
        if (on_behalf) {
          entry.detail["on_behalf_of_assignee"] = true;
          entry.detail["reason"] = reason;
        }
        if (auto scope = reviewer_scope(req); scope && review->value("assignee", "") != *scope) {
          entry.outcome = "denied";
          engine.audit_now(entry);
          throw HttpError{403, "review " + std::to_string(id) + " is not assigned to you"};
        }
        const auto run_id =
            std::stoll(review->at("run_id").is_string() ? review->at("run_id").get<std::string>()
                                                        : review->at("run_id").dump());
        DecisionResult decided;
        std::string msg;
        Json payload = Json::object();  // filled in by the decision, read by the signal after it
        auto result = engine.signal(run_id, "review", payload, &msg, [&](Sql& sql) {
          engine.audit(sql, entry);
          decided = decide_review(sql, id, decision, comment, uploaded_by(req));
          payload = decided.signal_payload;
          return decided.status == DecisionResult::Status::kOk;
        });
        using S = DecisionResult::Status;
        if (decided.status != S::kOk || result != EngineServices::CommandResult::kOk) {
          entry.outcome = "failure";
          entry.detail["reason"] = decided.status != S::kOk ? decided.message : msg;
          engine.audit_now(entry);
        }
        if (decided.status == S::kNotFound) return Response::error(404, decided.message);
        if (decided.status == S::kConflict) return Response::error(409, decided.message);
        if (decided.status == S::kBadRequest) return Response::error(400, decided.message);
        if (result != EngineServices::CommandResult::kOk) return Response::error(409, msg);
        return Response::json(
            200,
            Json{{"review_id", id}, {"decision", decision}, {"run_id", run_id}, {"signal", msg}});
      });
}

}  // namespace chartflow::handlers
