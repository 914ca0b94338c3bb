// Process-wide cache of parsed chart Bundles, so the steps of one upload (and concurrent
// uploads of identical content under different chart ids) parse a multi-megabyte Bundle once.
//
// Entries are keyed by content hash, not by (chart_id, revision): identical content is parsed
// and held once however many charts carry it. A lookup by (chart_id, revision) costs one small
// query for the hash unless the caller knows it (chart.uploaded events carry it, so a step whose
// upload was parsed in this process sends no query at all); the body is fetched and parsed only
// on a miss, and concurrent misses for
// the same hash wait for the one parse in flight instead of parsing again.
// Bounded by entry count and by the summed size of the source text; least recently used entries
// are dropped first. Thread-safe (one mutex; parsing happens outside it). ParsedChart values are
// immutable and shared, so a caller keeps its copy alive after eviction.
#pragma once

#include <cstddef>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers {

// A parsed Bundle and its index. Neither copyable nor movable: the index points into `bundle`.
class ParsedChart {
 public:
  ParsedChart(Json bundle_json, std::string hash, std::size_t source_size)
      : bundle(std::move(bundle_json)),
        index(bundle),
        content_hash(std::move(hash)),
        source_bytes(source_size) {}
  // Keeps the text too when it is small (below kKeepSourceBelow): the scan's write-back splices
  // its questions into it instead of serialising the whole Bundle again.
  ParsedChart(Json bundle_json, std::string hash, std::string source_text)
      : bundle(std::move(bundle_json)),
        index(bundle),
        content_hash(std::move(hash)),
        source_bytes(source_text.size()),
        source(source_text.size() < kKeepSourceBelow ? std::move(source_text) : std::string()) {}
  ParsedChart(const ParsedChart&) = delete;
  ParsedChart& operator=(const ParsedChart&) = delete;

  const Json bundle;
  const fhir::BundleIndex index;
  const std::string content_hash;
  const std::size_t source_bytes;
  const std::string source;  // the JSON text, or "" (not kept, or not known)

  // Per-encounter charts are tens of kilobytes; whole histories, megabytes, and their parse
  // dwarfs the serialisation anyway.
  static constexpr std::size_t kKeepSourceBelow = std::size_t{1} << 20;
};

using ChartPtr = std::shared_ptr<const ParsedChart>;

// A parsed Bundle takes five to ten times its JSON text in memory (the 3.9 MB largest test chart
// parses into ~40 MB). The cache only has to bridge the few steps of the uploads in flight, so
// 8 MB of source text (two of the largest charts, ~80 MB parsed) is enough; more would be held
// for nothing once those runs are done.
inline constexpr std::size_t kChartCacheMaxEntries = 32;
inline constexpr std::size_t kChartCacheMaxSourceBytes = std::size_t{8} * 1024 * 1024;

class ChartCache {
 public:
  explicit ChartCache(std::size_t max_entries = kChartCacheMaxEntries,
                      std::size_t max_source_bytes = kChartCacheMaxSourceBytes);

  // The shared instance used by the chart handlers and the chart API.
  static ChartCache& instance();

  // Loads (chart_id, revision) from chart_revision through `sql`; nullptr when no such revision.
  // `content_hash`, when known, is that revision's hash (revisions are immutable).
  // Throws what the Sql throws (infrastructure failure), never on odd content.
  ChartPtr load(Sql& sql, const std::string& chart_id, int revision,
                const std::string& content_hash = "");
  // Adds an already parsed Bundle (the upload path has just parsed it).
  ChartPtr put(const std::string& content_hash, Json bundle, std::size_t source_bytes);
  void put(const ChartPtr& chart);
  ChartPtr get(const std::string& content_hash);

  std::size_t size() const;
  void clear();

 private:
  struct Entry {
    ChartPtr chart;
    std::list<std::string>::iterator lru;
  };
  void insert_locked(const ChartPtr& chart);

  const std::size_t max_entries_;
  const std::size_t max_source_bytes_;
  mutable std::mutex mutex_;
  std::list<std::string> lru_;  // most recently used first
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<std::string, std::shared_future<ChartPtr>> loading_;
  std::size_t source_bytes_ = 0;
};

}  // namespace chartflow::handlers
