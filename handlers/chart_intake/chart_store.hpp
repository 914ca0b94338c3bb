// Immutable chart revisions in PostgreSQL (tables chart and chart_revision, see
// schema/charts/). Every function runs on the caller's transaction: the upload path's
// (so the revision and its chart.uploaded event commit together) or a step's ctx.sql().
// Revisions of one chart are numbered 1, 2, 3, ... across uploads and write-backs; the chart
// row is locked while a number is taken, so concurrent uploads of one chart serialise there and
// never collide or skip a number.
#pragma once

#include <optional>
#include <string>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers {

struct StoredRevision {
  int revision = 0;
  bool duplicate = false;    // identical content was stored before: nothing was written
  std::string content_hash;  // sha256 hex of the stored bytes
};

// Stores an uploaded Bundle (`raw_body`, validated by validate_chart; `bundle` is its parse) as
// the chart's next revision with source 'upload'. When an earlier upload of this chart had the
// same content hash, writes nothing and returns that revision with duplicate = true.
// Throws on database failure (a unique violation on a lost race is a conflict: retry).
StoredRevision store_revision(Sql& sql, const std::string& chart_id, const std::string& raw_body,
                              const Json& bundle, const std::string& uploader);
// The same, for a caller that has hashed and indexed the Bundle already (the upload path).
StoredRevision store_revision(Sql& sql, const std::string& chart_id, const std::string& raw_body,
                              const std::string& content_hash, const fhir::BundleIndex& index,
                              const std::string& uploader);

// Stores a Bundle written back by a handler (source 'writeback', based on `based_on_revision`),
// given as its JSON text. Idempotent: identical content already written back on the same base
// returns that revision with duplicate = true.
StoredRevision store_writeback_revision(Sql& sql, const std::string& chart_id,
                                        int based_on_revision, const std::string& body_text,
                                        const std::string& written_by);

}  // namespace chartflow::handlers
