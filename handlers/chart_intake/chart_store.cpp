#include "handlers/chart_intake/chart_store.hpp"

#include <stdexcept>

#include "engine/util/hash.hpp"
#include "engine/util/sql_rows.hpp"
#include "handlers/fhir/bundle_index.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers {
namespace {

// chart_store_revision() in schema/charts/0001_charts.sql: lock the chart, skip identical content,
// number and insert the revision, in one round trip.
constexpr const char* kStoreRevision =
    "SELECT stored_revision, duplicate FROM chart_store_revision($1, $2, $3, $4::json, $5, $6, "
    "$7::int)";

std::optional<std::string> patient_ref(const fhir::BundleIndex& index) {
  const Json* patient = index.patient();
  if (patient == nullptr) return std::nullopt;
  std::string ref = index.ref_of(*patient);
  if (ref.empty()) return std::nullopt;
  return ref;
}

StoredRevision store(Sql& sql, const std::string& chart_id,
                     const std::optional<std::string>& patient, const std::string& body,
                     std::string content_hash, const char* source, const std::string& by,
                     std::optional<int> based_on) {
  StoredRevision stored;
  stored.content_hash = std::move(content_hash);
  std::optional<std::string> base;
  if (based_on) base = std::to_string(*based_on);
  auto row = util::query_one(
      sql, kStoreRevision,
      {chart_id, patient, stored.content_hash, body, std::string(source), by, base});
  if (!row) throw std::runtime_error("chart_store_revision returned no row");
  stored.revision = static_cast<int>(util::column_int(*row, "stored_revision").value_or(0));
  stored.duplicate = util::column_bool(*row, "duplicate");
  return stored;
}

}  // namespace

StoredRevision store_revision(Sql& sql, const std::string& chart_id, const std::string& raw_body,
                              const Json& bundle, const std::string& uploader) {
  return store_revision(sql, chart_id, raw_body, util::sha256_hex(raw_body),
                        fhir::BundleIndex(bundle), uploader);
}

StoredRevision store_revision(Sql& sql, const std::string& chart_id, const std::string& raw_body,
                              const std::string& content_hash, const fhir::BundleIndex& index,
                              const std::string& uploader) {
  return store(sql, chart_id, patient_ref(index), raw_body, content_hash, "upload", uploader,
               std::nullopt);
}

StoredRevision store_writeback_revision(Sql& sql, const std::string& chart_id,
                                        int based_on_revision, const std::string& text,
                                        const std::string& written_by) {
  return store(sql, chart_id, std::nullopt, text, util::sha256_hex(text), "writeback", written_by,
               based_on_revision);
}

}  // namespace chartflow::handlers
