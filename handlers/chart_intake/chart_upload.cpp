#include "handlers/chart_intake/chart_upload.hpp"

#include "engine/util/hash.hpp"
#include "handlers/chart_intake/chart_intake.hpp"
#include "handlers/chart_intake/chart_store.hpp"
#include "handlers/common/chart_cache.hpp"

namespace chartflow::handlers {

ChartUpload upload_chart(EngineServices& engine, std::optional<std::string> chart_id,
                         const std::string& raw, const std::string& uploader,
                         const std::string& source,
                         const std::function<void(Sql&, const std::string&)>& also) {
  if (raw.empty()) throw ChartRejected{400, "body is empty: expected a FHIR Bundle"};
  Json bundle;
  try {
    bundle = Json::parse(raw);
  } catch (const Json::parse_error& e) {
    throw ChartRejected{400, "body is not valid JSON: byte " + std::to_string(e.byte)};
  } catch (const Json::exception&) {
    // Well-formed JSON nlohmann cannot hold, such as a number beyond a double (found by fuzzing).
    throw ChartRejected{400, "body is not valid JSON: a number is out of range"};
  }
  if (auto problem = validate_chart(bundle)) throw ChartRejected{422, *problem};
  // PostgreSQL's jsonb cannot hold NUL characters in strings.
  if (raw.find("\\u0000") != std::string::npos)
    throw ChartRejected{422, "the Bundle contains a \\u0000 (NUL) character in a string"};
  if (!chart_id) {
    chart_id = patient_chart_id(bundle);
    if (!chart_id) throw ChartRejected{422, "the Bundle's Patient has no id usable as a chart id"};
  }
  ChartUpload out;
  out.chart_id = *chart_id;
  // Parsed, hashed and indexed once: the revision, its event and the steps' cache share it.
  auto parsed = std::make_shared<const ParsedChart>(std::move(bundle), util::sha256_hex(raw), raw);
  StoredRevision stored;
  EventInput ev;
  ev.type = kChartUploadedEvent;
  ev.source = source;
  ev.subject = out.chart_id;
  // The revision and its event commit together: an upload is never half-stored.
  out.event = engine.ingest(ev, [&](Sql& sql, EventInput& event) {
    if (also) also(sql, out.chart_id);
    stored = store_revision(sql, out.chart_id, raw, parsed->content_hash, parsed->index, uploader);
    if (stored.duplicate) return false;
    event.body =
        chart_event_body(parsed->index, out.chart_id, stored.revision, stored.content_hash);
    event.dedup_key = out.chart_id + "/" + std::to_string(stored.revision);
    return true;
  });
  out.revision = stored.revision;
  out.content_hash = stored.content_hash;
  out.duplicate = stored.duplicate;
  // The steps about to run would each look the Bundle up by content hash: hand them the parse.
  if (!stored.duplicate) ChartCache::instance().put(parsed);
  return out;
}

IntakeResult chart_intake(EngineServices& engine, const IntakeRequest& request) {
  auto up = upload_chart(engine, std::nullopt, request.content, request.uploader, request.source,
                         request.also);
  IntakeResult out;
  out.duplicate = up.duplicate;
  out.event = up.event;
  out.summary = {{"chart_id", up.chart_id}, {"revision", up.revision}};
  return out;
}

}  // namespace chartflow::handlers
