#include "http/chart_routes.hpp"

#include "handlers/chart_api/chart_api.hpp"
#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "http/audit_context.hpp"
#include "runtime/chart_upload.hpp"

namespace chartflow::http {
namespace {

const std::string& chart_id_param(const Request& req) {
  const std::string& id = req.param("chart_id");
  if (!handlers::valid_chart_id(id))
    throw HttpError{400,
                    "chart id must be 1-128 characters of letters, digits, . _ - and may "
                    "not contain '..'"};
  return id;
}

// Billing needs the bill and review state of a chart, not the doctor's words or the questions
// about what the chart lacks.
void strip_clinical_detail(Json& chart) {
  chart.erase("open_questions");
  if (chart.contains("review") && chart.at("review").is_object()) chart["review"].erase("comment");
}

// Who uploaded a revision or decided a review: the credential's stable id.
std::string uploaded_by(const Request& req) { return req.principal ? req.principal->id : "api"; }

// A read of patient data: refused for a reviewer the chart is not assigned to, recorded in the
// audit trail in the same transaction as the read itself.
void read_chart_data(runtime::Engine& engine, const Request& req, const std::string& action,
                     const std::string& chart_id, const std::function<void(Sql&)>& read) {
  auto scope = reviewer_scope(req);
  bool refused = false;
  engine.pool().with([&](store::Store& s) {
    s.with_sql([&](Sql& sql) {
      if (scope && !handlers::chart_assigned_to(sql, chart_id, *scope)) {
        refused = true;
        return;
      }
      auth::record(sql, audit_entry(req, action, "chart", chart_id));
      read(sql);
    });
    return 0;
  });
  if (refused) {
    audit_now(engine, audit_entry(req, action, "chart", chart_id, "denied"));
    throw HttpError{403, "chart " + chart_id + " has no review assigned to you"};
  }
}

Response upload_chart(runtime::Engine& engine, metrics::Metrics* metrics, const Request& req,
                      const std::string& chart_id) {
  auto ct = req.header("content-type");
  if (!ct || (ct->find("application/fhir+json") == std::string::npos &&
              ct->find("application/json") == std::string::npos))
    throw HttpError{415, "content type must be application/fhir+json or application/json"};
  runtime::ChartUpload up;
  try {
    // The audit record commits with the revision and its event.
    up = runtime::upload_chart(
        engine, chart_id, req.body, uploaded_by(req), "upload",
        [&](Sql& sql) { auth::record(sql, audit_entry(req, "chart.upload", "chart", chart_id)); });
  } catch (const runtime::ChartRejected& e) {
    throw HttpError{e.status, e.message};
  }
  if (metrics) metrics->event_received(runtime::kChartUploadedEvent);
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

void add_chart_routes(Router& router, runtime::Engine& engine, metrics::Metrics* metrics) {
  router.add("PUT", "/v1/charts/{chart_id}", "chart_upload", Access::of({Role::kUploader}),
             [&engine, metrics](Request& req) {
               const std::string chart_id = chart_id_param(req);
               try {
                 return upload_chart(engine, metrics, req, chart_id);
               } catch (const HttpError& e) {
                 auto entry = audit_entry(req, "chart.upload", "chart", chart_id, "failure");
                 entry.detail = {{"status", e.status}};
                 audit_now(engine, entry);
                 throw;
               }
             });

  router.add("GET", "/v1/charts/{chart_id}", "chart", Access::of({Role::kReviewer, Role::kBilling}),
             [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               std::optional<Json> chart;
               read_chart_data(engine, req, "chart.read", chart_id,
                               [&](Sql& sql) { chart = handlers::get_chart(sql, chart_id); });
               if (!chart) return Response::error(404, "chart not found");
               if (req.principal && req.principal->role == Role::kBilling)
                 strip_clinical_detail(*chart);
               store::Store::RunFilter f;
               f.subject = chart_id;
               f.limit = 100;
               (*chart)["runs"] =
                   engine.pool().with([&](store::Store& s) { return s.list_runs(f); }).at("runs");
               return Response::json(200, *chart);
             });

  router.add("GET", "/v1/charts/{chart_id}/revisions/{n}", "chart_revision",
             Access::of({Role::kReviewer}), [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               const auto n = parse_id(req.param("n"), "revision");
               std::optional<std::string> bundle;
               read_chart_data(engine, req, "chart_revision.read", chart_id, [&](Sql& sql) {
                 bundle = handlers::get_revision(sql, chart_id, static_cast<int>(n));
               });
               if (!bundle) return Response::error(404, "revision not found");
               Response r;
               r.content_type = "application/fhir+json";
               r.body = std::move(*bundle);
               return r;
             });

  router.add("GET", "/v1/charts/{chart_id}/ledger", "chart_ledger", Access::of({Role::kBilling}),
             [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               Json out;
               read_chart_data(engine, req, "ledger.read", chart_id,
                               [&](Sql& sql) { out = handlers::list_ledger(sql, chart_id); });
               return Response::json(200, out);
             });

  router.add("GET", "/v1/charts/{chart_id}/deliveries", "chart_deliveries",
             Access::of({Role::kBilling}), [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               Json out;
               read_chart_data(engine, req, "deliveries.read", chart_id,
                               [&](Sql& sql) { out = handlers::list_deliveries(sql, chart_id); });
               return Response::json(200, out);
             });

  router.add(
      "GET", "/v1/reviews", "reviews", Access::of({Role::kReviewer}), [&engine](Request& req) {
        auto status = req.q("status");
        if (status && *status != "pending" && *status != "approved" && *status != "rejected")
          throw HttpError{400, "status must be pending, approved or rejected"};
        int limit = handlers::kDefaultReviewListLimit;
        if (auto l = req.q("limit")) {
          limit = static_cast<int>(parse_id(*l, "limit"));
          if (limit > handlers::kMaxReviewListLimit)
            throw HttpError{
                400, "limit must be at most " + std::to_string(handlers::kMaxReviewListLimit)};
        }
        // A reviewer's worklist is their own, whatever the query asks for.
        auto assignee = reviewer_scope(req);
        if (!assignee) assignee = req.q("assignee");
        Json out;
        engine.pool().with([&](store::Store& s) {
          s.with_sql([&](Sql& sql) {
            auth::record(sql, audit_entry(req, "review.list", "assignee", assignee.value_or("")));
            out = handlers::list_reviews(sql, status, assignee, limit);
          });
          return 0;
        });
        return Response::json(200, out);
      });

  router.add(
      "POST", "/v1/reviews/{id}/decision", "review_decision", Access::of({Role::kReviewer}),
      [&engine](Request& req) {
        const auto id = parse_id(req.param("id"), "review id");
        Json body = parse_json_body(req);
        if (!body.is_object() || !body.contains("decision") || !body.at("decision").is_string())
          throw HttpError{400,
                          "body must be {\"decision\": \"approve\"|\"reject\", \"comment\": ...}"};
        std::optional<std::string> comment;
        if (body.contains("comment") && !body.at("comment").is_null()) {
          if (!body.at("comment").is_string()) throw HttpError{400, "comment must be a string"};
          comment = body.at("comment").get<std::string>();
        }
        const std::string decision = body.at("decision").get<std::string>();
        // Look the review up first to learn which run to signal; the decision itself is recorded in
        // the signal's transaction, so the run never misses a recorded decision.
        std::optional<Json> review;
        engine.pool().with([&](store::Store& s) {
          s.with_autocommit_sql([&](Sql& sql) { review = handlers::get_review(sql, id); });
          return 0;
        });
        if (!review) return Response::error(404, "review " + std::to_string(id) + " not found");
        auto entry = audit_entry(req, "review.decide", "review", std::to_string(id));
        entry.detail = {{"decision", decision}};
        if (auto scope = reviewer_scope(req); scope && review->value("assignee", "") != *scope) {
          entry.outcome = "denied";
          audit_now(engine, entry);
          throw HttpError{403, "review " + std::to_string(id) + " is not assigned to you"};
        }
        const auto run_id =
            std::stoll(review->at("run_id").is_string() ? review->at("run_id").get<std::string>()
                                                        : review->at("run_id").dump());
        handlers::DecisionResult decided;
        std::string msg;
        Json payload = Json::object();  // filled in by the decision, read by the signal after it
        auto result = engine.pool().with([&](store::Store& s) {
          return s.signal(run_id, "review", payload, &msg, [&](Sql& sql) {
            auth::record(sql, entry);
            decided = handlers::decide_review(sql, id, decision, comment, uploaded_by(req));
            payload = decided.signal_payload;
            return decided.status == handlers::DecisionResult::Status::kOk;
          });
        });
        using S = handlers::DecisionResult::Status;
        if (decided.status != S::kOk || result != store::Store::CommandResult::kOk) {
          entry.outcome = "failure";
          entry.detail["reason"] = decided.status != S::kOk ? decided.message : msg;
          audit_now(engine, entry);
        }
        if (decided.status == S::kNotFound) return Response::error(404, decided.message);
        if (decided.status == S::kConflict) return Response::error(409, decided.message);
        if (decided.status == S::kBadRequest) return Response::error(400, decided.message);
        if (result != store::Store::CommandResult::kOk) return Response::error(409, msg);
        return Response::json(
            200,
            Json{{"review_id", id}, {"decision", decision}, {"run_id", run_id}, {"signal", msg}});
      });
}

}  // namespace chartflow::http
