#include "http/chart_routes.hpp"

#include "handlers/chart_api/chart_api.hpp"
#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/common/chart_cache.hpp"

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

}  // namespace

void add_chart_routes(Router& router, runtime::Engine& engine, metrics::Metrics* metrics) {
  router.add(
      "PUT", "/v1/charts/{chart_id}", "chart_upload", Access::of({Role::kUploader}),
      [&engine, metrics](Request& req) {
        const std::string chart_id = chart_id_param(req);
        auto ct = req.header("content-type");
        if (!ct || (ct->find("application/fhir+json") == std::string::npos &&
                    ct->find("application/json") == std::string::npos))
          throw HttpError{415, "content type must be application/fhir+json or application/json"};
        if (req.body.empty()) throw HttpError{400, "body is empty: expected a FHIR Bundle"};
        Json bundle = parse_json_text(req.body);
        if (auto problem = handlers::validate_chart(bundle)) throw HttpError{422, *problem};
        // PostgreSQL's jsonb cannot hold NUL characters in strings.
        if (req.body.find("\\u0000") != std::string::npos)
          throw HttpError{422, "the Bundle contains a \\u0000 (NUL) character in a string"};

        handlers::StoredRevision stored;
        store::EventInput ev;
        ev.type = kChartUploadedEvent;
        ev.source = "upload";
        ev.subject = chart_id;
        // The revision and its event commit together: an upload is never half-stored.
        auto result = engine.ingest(ev, [&](Sql& sql, store::EventInput& event) {
          stored = handlers::store_revision(sql, chart_id, req.body, bundle, "api");
          if (stored.duplicate) return false;
          event.body = handlers::chart_event_body(bundle, chart_id, stored.revision);
          event.dedup_key = chart_id + "/" + std::to_string(stored.revision);
          return true;
        });
        if (metrics) metrics->event_received(kChartUploadedEvent);
        // The steps about to run would each look the Bundle up by content hash: hand them the
        // parse.
        if (!stored.duplicate)
          handlers::ChartCache::instance().put(stored.content_hash, std::move(bundle),
                                               req.body.size());
        if (stored.duplicate)
          return Response::json(200, Json{{"chart_id", chart_id},
                                          {"revision", stored.revision},
                                          {"duplicate", true},
                                          {"runs", Json::array()}});
        return Response::json(202, Json{{"chart_id", chart_id},
                                        {"revision", stored.revision},
                                        {"content_hash", stored.content_hash},
                                        {"event_id", result.event_id},
                                        {"runs", result.run_ids},
                                        {"duplicate", false}});
      });

  router.add("GET", "/v1/charts/{chart_id}", "chart", Access::of({Role::kReviewer, Role::kBilling}),
             [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               std::optional<Json> chart;
               engine.pool().with([&](store::Store& s) {
                 s.with_sql([&](Sql& sql) { chart = handlers::get_chart(sql, chart_id); });
                 if (chart) {
                   store::Store::RunFilter f;
                   f.subject = chart_id;
                   f.limit = 100;
                   (*chart)["runs"] = s.list_runs(f).at("runs");
                 }
                 return 0;
               });
               if (!chart) return Response::error(404, "chart not found");
               return Response::json(200, *chart);
             });

  router.add("GET", "/v1/charts/{chart_id}/revisions/{n}", "chart_revision",
             Access::of({Role::kReviewer}), [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               const auto n = parse_id(req.param("n"), "revision");
               std::optional<Json> bundle;
               engine.pool().with([&](store::Store& s) {
                 s.with_sql([&](Sql& sql) {
                   bundle = handlers::get_revision(sql, chart_id, static_cast<int>(n));
                 });
                 return 0;
               });
               if (!bundle) return Response::error(404, "revision not found");
               Response r = Response::json(200, *bundle);
               r.content_type = "application/fhir+json";
               return r;
             });

  router.add("GET", "/v1/charts/{chart_id}/ledger", "chart_ledger", Access::of({Role::kBilling}),
             [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               Json out;
               engine.pool().with([&](store::Store& s) {
                 s.with_sql([&](Sql& sql) { out = handlers::list_ledger(sql, chart_id); });
                 return 0;
               });
               return Response::json(200, out);
             });

  router.add("GET", "/v1/charts/{chart_id}/deliveries", "chart_deliveries",
             Access::of({Role::kBilling}), [&engine](Request& req) {
               const std::string chart_id = chart_id_param(req);
               Json out;
               engine.pool().with([&](store::Store& s) {
                 s.with_sql([&](Sql& sql) { out = handlers::list_deliveries(sql, chart_id); });
                 return 0;
               });
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
        Json out;
        engine.pool().with([&](store::Store& s) {
          s.with_sql([&](Sql& sql) {
            out = handlers::list_reviews(sql, status, req.q("assignee"), limit);
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
          s.with_sql([&](Sql& sql) { review = handlers::get_review(sql, id); });
          return 0;
        });
        if (!review) return Response::error(404, "review " + std::to_string(id) + " not found");
        const auto run_id =
            std::stoll(review->at("run_id").is_string() ? review->at("run_id").get<std::string>()
                                                        : review->at("run_id").dump());
        handlers::DecisionResult decided;
        std::string msg;
        Json payload = Json::object();  // filled in by the decision, read by the signal after it
        auto result = engine.pool().with([&](store::Store& s) {
          return s.signal(run_id, "review", payload, &msg, [&](Sql& sql) {
            decided = handlers::decide_review(sql, id, decision, comment, "api");
            payload = decided.signal_payload;
            return decided.status == handlers::DecisionResult::Status::kOk;
          });
        });
        using S = handlers::DecisionResult::Status;
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
