#include "handlers/chart_intake/chart_store.hpp"

#include <stdexcept>

#include "handlers/common/hash.hpp"
#include "handlers/common/sql_util.hpp"
#include "handlers/fhir/bundle_index.hpp"
#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers {
namespace {

// Creates the chart row on first sight; DO NOTHING keeps concurrent first uploads from failing.
constexpr const char* kEnsureChart =
    "INSERT INTO chart (chart_id, patient_ref) VALUES ($1, $2) ON CONFLICT (chart_id) DO NOTHING";

// The row lock serialises everything that takes a revision number for this chart. NO KEY UPDATE
// (not plain UPDATE) so foreign-key checks of other tables' inserts are not blocked by it. It is
// a statement of its own on purpose: under READ COMMITTED the statements after it take a fresh
// snapshot and so see revisions committed by whoever held the lock before us.
constexpr const char* kLockChart =
    "SELECT latest_revision FROM chart WHERE chart_id = $1 FOR NO KEY UPDATE";

constexpr const char* kFindUpload =
    "SELECT revision FROM chart_revision "
    "WHERE chart_id = $1 AND content_hash = $2 AND source = 'upload' "
    "ORDER BY revision LIMIT 1";

constexpr const char* kFindWriteback =
    "SELECT revision FROM chart_revision "
    "WHERE chart_id = $1 AND content_hash = $2 AND source = 'writeback' "
    "AND based_on_revision = $3 ORDER BY revision LIMIT 1";

constexpr const char* kInsertRevision =
    "INSERT INTO chart_revision "
    "(chart_id, revision, content_hash, body, source, uploaded_by, based_on_revision) "
    "VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)";

constexpr const char* kBumpChart =
    "UPDATE chart SET latest_revision = $2, patient_ref = coalesce($3, patient_ref), "
    "updated_at = now() WHERE chart_id = $1";

std::optional<std::string> patient_ref(const Json& bundle) {
  fhir::BundleIndex index(bundle);
  const Json* patient = index.patient();
  if (patient == nullptr) return std::nullopt;
  std::string ref = index.ref_of(*patient);
  if (ref.empty()) return std::nullopt;
  return ref;
}

int lock_chart(Sql& sql, const std::string& chart_id, const std::optional<std::string>& patient) {
  sql.query(kEnsureChart, {chart_id, patient});
  auto row = query_one(sql, kLockChart, {chart_id});
  if (!row) throw std::runtime_error("chart row vanished after insert");
  return static_cast<int>(column_int(*row, "latest_revision").value_or(0));
}

StoredRevision insert_revision(Sql& sql, const std::string& chart_id, int latest,
                               StoredRevision stored, const std::string& body, const char* source,
                               const std::string& by, std::optional<int> based_on,
                               const std::optional<std::string>& patient) {
  stored.revision = latest + 1;
  std::optional<std::string> base;
  if (based_on) base = std::to_string(*based_on);
  sql.query(kInsertRevision, {chart_id, std::to_string(stored.revision), stored.content_hash, body,
                              std::string(source), by, base});
  sql.query(kBumpChart, {chart_id, std::to_string(stored.revision), patient});
  return stored;
}

}  // namespace

StoredRevision store_revision(Sql& sql, const std::string& chart_id, const std::string& raw_body,
                              const Json& bundle, const std::string& uploader) {
  StoredRevision stored;
  stored.content_hash = sha256_hex(raw_body);
  auto patient = patient_ref(bundle);
  int latest = lock_chart(sql, chart_id, patient);
  if (auto dup = query_one(sql, kFindUpload, {chart_id, stored.content_hash})) {
    stored.revision = static_cast<int>(column_int(*dup, "revision").value_or(0));
    stored.duplicate = true;
    return stored;
  }
  return insert_revision(sql, chart_id, latest, std::move(stored), raw_body, "upload", uploader,
                         std::nullopt, patient);
}

StoredRevision store_writeback_revision(Sql& sql, const std::string& chart_id,
                                        int based_on_revision, const std::string& text,
                                        const std::string& written_by) {
  StoredRevision stored;
  stored.content_hash = sha256_hex(text);
  int latest = lock_chart(sql, chart_id, std::nullopt);
  if (auto dup = query_one(sql, kFindWriteback,
                           {chart_id, stored.content_hash, std::to_string(based_on_revision)})) {
    stored.revision = static_cast<int>(column_int(*dup, "revision").value_or(0));
    stored.duplicate = true;
    return stored;
  }
  return insert_revision(sql, chart_id, latest, std::move(stored), text, "writeback", written_by,
                         based_on_revision, std::nullopt);
}

}  // namespace chartflow::handlers
