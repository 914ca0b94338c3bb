#include "handlers/doctor_review/doctor_review.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "engine/util/sql_rows.hpp"
#include "engine/util/time.hpp"
#include "handlers/common/chart_cache.hpp"
#include "handlers/common/chart_event.hpp"
#include "handlers/common/config_file.hpp"
#include "handlers/doctor_review/doctor_lookup.hpp"
#include "handlers/fhir/fhir_json.hpp"
#include "handlers/fhir_subscriptions/outbound_topics.hpp"

namespace chartflow::handlers::doctor_review {
namespace {

constexpr const char* kFindReview =
    "SELECT id, status, assignee, decision, extract(epoch FROM due_at)::float8 AS due_epoch "
    "FROM review WHERE run_id = $1 AND step = $2";

// UNIQUE (run_id, step): a re-run of the step finds its review instead of adding a second.
constexpr const char* kInsertReview =
    "INSERT INTO review (chart_id, revision, run_id, step, assignee, original_assignee, "
    "practitioner_ref, due_at, summary, task) "
    "VALUES ($1, $2, $3, $4, $5, $5, $6, to_timestamp($7::float8), $8::jsonb, $9::jsonb) "
    "ON CONFLICT (run_id, step) DO NOTHING RETURNING id";

constexpr const char* kEscalate =
    "UPDATE review SET assignee = $2, escalations = escalations + 1, escalated_at = now(), "
    "due_at = to_timestamp($3::float8), updated_at = now() "
    "WHERE id = $1 AND status = 'pending' RETURNING escalations";

const Json* setting_in(const Json& settings, const char* key) {
  return fhir::member(settings, key);
}

std::string queue_setting(const Json* value, const char* key, const char* fallback) {
  std::string queue = string_setting(value, key, fallback);
  if (queue.empty() || queue.size() > 300) {
    throw std::invalid_argument(fmt::format("setting '{}' must be 1-300 characters", key));
  }
  return queue;
}

Json review_task(const std::string& chart_id, int revision, const std::string& patient_ref,
                 const std::optional<DoctorMatch>& doctor, const std::string& assignee,
                 TimePoint due) {
  Json owner = Json::object();
  if (doctor) {
    owner["reference"] = doctor->practitioner_ref;
    if (!doctor->npi.empty()) {
      owner["identifier"] = {{"system", kNpiSystem}, {"value", doctor->npi}};
    }
    if (!doctor->display.empty()) owner["display"] = doctor->display;
  } else {
    owner["display"] = assignee;
  }
  Json task = {{"resourceType", "Task"},
               {"status", "requested"},
               {"intent", "order"},
               {"priority", "routine"},
               {"code", {{"text", "Primary care review of a chart update"}}},
               {"description", fmt::format("Review chart {} revision {}", chart_id, revision)},
               {"authoredOn", util::iso8601(Clock::now())},
               {"owner", std::move(owner)},
               {"restriction", {{"period", {{"end", util::iso8601(due)}}}}}};
  if (!patient_ref.empty()) task["for"] = {{"reference", patient_ref}};
  return task;
}

Completed decided(const Json& row, const std::string& decision) {
  return Completed{Json{{"review_id", util::column_int(row, "id").value_or(0)},
                        {"decision", decision},
                        {"assignee", util::column_text(row, "assignee").value_or("")}}};
}

}  // namespace

ReviewOptions ReviewOptions::from_json(const Json& settings) {
  ReviewOptions o;
  o.deadline =
      duration_setting(setting_in(settings, "deadline"), "deadline", kDefaultReviewDeadline);
  o.escalation_deadline = duration_setting(setting_in(settings, "escalation_deadline"),
                                           "escalation_deadline", o.deadline);
  o.fallback_queue = queue_setting(setting_in(settings, "fallback_queue"), "fallback_queue",
                                   kDefaultFallbackQueue);
  o.escalation_queue = queue_setting(setting_in(settings, "escalation_queue"), "escalation_queue",
                                     kDefaultEscalationQueue);
  return o;
}

void DoctorReviewHandler::validate(const Json& config) const { ReviewOptions::from_json(config); }

StepOutcome DoctorReviewHandler::run(StepContext& ctx) {
  auto event = parse_chart_event(ctx.event());
  if (!event) return Fail{"event body lacks a valid chart_id and revision", true};
  ReviewOptions options;
  try {
    options = ReviewOptions::from_json(merged_settings(ctx));
  } catch (const std::invalid_argument& e) {
    return Fail{e.what(), true};
  }
  Sql& sql = ctx.sql();
  const std::string run_id = std::to_string(ctx.run_id());
  const Wake* wake = ctx.wake();
  // Not woken: this is the step's first run, or a re-run of one; the insert below finds a
  // review an earlier attempt made (its conflict path), so only a woken step looks first.
  auto existing =
      wake != nullptr ? util::query_one(sql, kFindReview, {run_id, ctx.step()}) : std::nullopt;

  if (existing) {
    const std::string status = util::column_text(*existing, "status").value_or("pending");
    const std::string review_id = util::column_text(*existing, "id").value_or("0");
    if (status != "pending") {
      return decided(*existing, util::column_text(*existing, "decision").value_or(""));
    }
    if (wake != nullptr && wake->kind == Wake::Kind::kSignal) {
      // The decision route records a decision before it signals; a signal that finds the review
      // still pending decided nothing (a signal body is never taken as a decision).
      ctx.log(LogLevel::kWarning, "event=review_signal_ignored reason=review_still_pending",
              {{"chart_id", event->chart_id}, {"review_id", review_id}});
    } else if (wake != nullptr && wake->kind == Wake::Kind::kDeadline) {
      const TimePoint due = Clock::now() + options.escalation_deadline;
      auto row = util::query_one(
          sql, kEscalate, {review_id, options.escalation_queue, util::epoch_seconds_text(due)});
      ctx.log(LogLevel::kWarning, "event=review_escalated",
              {{"chart_id", event->chart_id},
               {"review_id", review_id},
               {"assignee", options.escalation_queue},
               {"escalations", row ? util::column_int(*row, "escalations").value_or(0) : 0}});
      return WaitForSignal{kReviewSignal, due};
    }
    // Still pending (a re-run, or a signal without a decision): keep waiting for the same due.
    auto due_epoch = util::column_double(*existing, "due_epoch");
    std::optional<TimePoint> due;
    if (due_epoch) due = util::from_epoch_seconds(*due_epoch);
    return WaitForSignal{kReviewSignal, due};
  }

  auto chart =
      ChartCache::instance().load(sql, event->chart_id, event->revision, event->content_hash);
  if (!chart) {
    return Fail{fmt::format("chart {} revision {} not found", event->chart_id, event->revision),
                true};
  }
  const auto& index = chart->index;
  auto doctor = find_primary_doctor(index);
  const std::string assignee = doctor ? doctor->assignee : options.fallback_queue;
  std::optional<std::string> practitioner_ref;
  if (doctor) practitioner_ref = doctor->practitioner_ref;
  std::string patient_ref;
  if (const Json* patient = index.patient()) patient_ref = index.ref_of(*patient);

  const TimePoint due = Clock::now() + options.deadline;
  auto inserted = util::query_one(
      sql, kInsertReview,
      {event->chart_id, std::to_string(event->revision), run_id, ctx.step(), assignee,
       practitioner_ref, util::epoch_seconds_text(due), review_summary(index).dump(),
       review_task(event->chart_id, event->revision, patient_ref, doctor, assignee, due).dump()});
  if (!inserted) {
    // Lost a race with a concurrent attempt of this very step: its row stands.
    auto row = util::query_one(sql, kFindReview, {run_id, ctx.step()});
    if (row && util::column_text(*row, "status").value_or("pending") != "pending") {
      return decided(*row, util::column_text(*row, "decision").value_or(""));
    }
    auto due_epoch = row ? util::column_double(*row, "due_epoch") : std::nullopt;
    return WaitForSignal{kReviewSignal,
                         due_epoch ? std::optional<TimePoint>(util::from_epoch_seconds(*due_epoch))
                                   : std::optional<TimePoint>(due)};
  }
  // Subscribers of review-requested learn of it exactly when the review exists (same commit).
  fhir_subscriptions::publish_review(sql, "review-requested",
                                     util::column_int(*inserted, "id").value_or(0));
  ctx.log(LogLevel::kInfo, "event=review_created",
          {{"chart_id", event->chart_id},
           {"review_id", util::column_int(*inserted, "id").value_or(0)},
           {"assignee", assignee},
           {"source", doctor ? doctor->source : std::string("fallback")}});
  return WaitForSignal{kReviewSignal, due};
}

}  // namespace chartflow::handlers::doctor_review
