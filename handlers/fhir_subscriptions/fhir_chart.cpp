#include "handlers/fhir_subscriptions/fhir_chart.hpp"

#include <fmt/format.h>

#include "engine/util/sql_rows.hpp"
#include "handlers/chart_intake/chart_upload.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::fhir_subscriptions {
namespace {

constexpr const char* kFetched =
    "SELECT content::text AS content, content->>'resourceType' AS type "
    "FROM fhir_fetched_resource WHERE name = $1 AND epoch = $2 AND event_number = $3";

StepOutcome no_chart(const std::string& reason) {
  return Completed{Json{{"chart", false}, {"reason", reason}}};
}

}  // namespace

StepOutcome FhirChartHandler::run(StepContext& ctx) {
  if (ctx.event_type() != "fhir.notification")
    return Fail{"fhir_chart runs on fhir.notification events, not " + ctx.event_type(), true};
  const Json& ev = ctx.event();
  const std::string name = fhir::string_member(ev, "subscription");
  const std::string content = fhir::string_member(ev, "content");
  if (content != "id-only")
    return no_chart("the notification's content is " + content +
                    "; only a Bundle fhir_fetch read becomes a chart");
  const Json* number = fhir::member(ev, "event_number");
  if (number == nullptr || !number->is_number_integer())
    return Fail{"the event has no event_number", true};
  // Events stored before epochs existed carry none: they are epoch 1.
  int epoch = 1;
  if (const Json* e = fhir::member(ev, "epoch"); e != nullptr && e->is_number_integer())
    epoch = e->get<int>();
  const auto fetched =
      util::query_one(ctx.sql(), kFetched,
                      {name, std::to_string(epoch), std::to_string(number->get<std::int64_t>())});
  if (!fetched) return no_chart("nothing was fetched for the notification");
  const std::string type = util::column_text(*fetched, "type").value_or("");
  if (type != "Bundle") return no_chart("the fetched resource is a " + type + ", not a Bundle");

  EngineServices* services = services_ ? services_->get() : nullptr;
  if (services == nullptr) return Retry{"the engine is not serving yet", std::nullopt};
  const std::string bundle = util::column_text(*fetched, "content").value_or("");
  if (auto breach = services->upload_limit_breach(bundle))
    return Fail{"the fetched Bundle breaks the upload limits: " + *breach, true};
  AuditEntry audit;
  audit.actor = "fhir-subscription:" + name;
  audit.action = "chart.upload";
  audit.resource_type = "chart";
  audit.detail = {{"source", "fhir-subscription"},
                  {"subscription", name},
                  {"event_number", *number},
                  {"run_id", ctx.run_id()}};
  try {
    const ChartUpload up =
        upload_chart(*services, std::nullopt, bundle, audit.actor, "fhir-subscription",
                     [&](Sql& sql, const std::string& chart_id) {
                       audit.resource_id = chart_id;
                       services->audit(sql, audit);
                     });
    ctx.log(LogLevel::kInfo, "event=fhir_chart_stored",
            {{"subscription", name},
             {"event_number", *number},
             {"chart_id", up.chart_id},
             {"revision", up.revision},
             {"duplicate", up.duplicate}});
    return Completed{Json{{"chart", true},
                          {"chart_id", up.chart_id},
                          {"revision", up.revision},
                          {"duplicate", up.duplicate},
                          {"runs", up.event.run_ids}}};
  } catch (const IntakeRejected& rejected) {
    // The message names the problem, never patient data (the intake's contract).
    return Fail{"the fetched Bundle is not a chart: " + rejected.message, true};
  }
}

}  // namespace chartflow::handlers::fhir_subscriptions
