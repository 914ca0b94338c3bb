#include "handlers/common/chart_cache.hpp"

#include <stdexcept>

#include "engine/util/sql_rows.hpp"

namespace chartflow::handlers {

ChartCache::ChartCache(std::size_t max_entries, std::size_t max_source_bytes)
    : max_entries_(max_entries == 0 ? 1 : max_entries), max_source_bytes_(max_source_bytes) {}

ChartCache& ChartCache::instance() {
  static ChartCache cache;
  return cache;
}

ChartPtr ChartCache::get(const std::string& content_hash) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(content_hash);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.chart;
}

void ChartCache::insert_locked(const ChartPtr& chart) {
  auto it = entries_.find(chart->content_hash);
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  lru_.push_front(chart->content_hash);
  entries_.emplace(chart->content_hash, Entry{chart, lru_.begin()});
  source_bytes_ += chart->source_bytes;
  // Always keep the newest entry, even when it alone exceeds the byte budget.
  while (entries_.size() > 1 &&
         (entries_.size() > max_entries_ || source_bytes_ > max_source_bytes_)) {
    auto victim = entries_.find(lru_.back());
    source_bytes_ -= victim->second.chart->source_bytes;
    entries_.erase(victim);
    lru_.pop_back();
  }
}

ChartPtr ChartCache::put(const std::string& content_hash, Json bundle, std::size_t source_bytes) {
  auto chart = std::make_shared<const ParsedChart>(std::move(bundle), content_hash, source_bytes);
  put(chart);
  return chart;
}

void ChartCache::put(const ChartPtr& chart) {
  std::lock_guard lock(mutex_);
  insert_locked(chart);
}

ChartPtr ChartCache::load(Sql& sql, const std::string& chart_id, int revision,
                          const std::string& content_hash) {
  std::string hash = content_hash;
  if (hash.empty()) {
    auto row = util::query_one(
        sql, "SELECT content_hash FROM chart_revision WHERE chart_id = $1 AND revision = $2",
        {chart_id, std::to_string(revision)});
    if (!row) return nullptr;
    hash = util::column_text(*row, "content_hash").value_or("");
  }

  std::promise<ChartPtr> promise;
  std::shared_future<ChartPtr> pending;
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(hash); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.chart;
    }
    if (auto it = loading_.find(hash); it != loading_.end()) {
      pending = it->second;
    } else {
      loading_.emplace(hash, promise.get_future().share());
    }
  }
  if (pending.valid()) return pending.get();

  try {
    auto body_row = util::query_one(
        sql, "SELECT body::text AS body FROM chart_revision WHERE chart_id = $1 AND revision = $2",
        {chart_id, std::to_string(revision)});
    if (!body_row) {
      // Only reachable with a caller's hash: the revision it names does not exist.
      {
        std::lock_guard lock(mutex_);
        loading_.erase(hash);
      }
      promise.set_value(nullptr);
      return nullptr;
    }
    std::string text = util::column_text(*body_row, "body").value_or("");
    Json bundle = Json::parse(text, nullptr, false);
    if (bundle.is_discarded()) throw std::runtime_error("chart_revision body is not valid JSON");
    auto chart = std::make_shared<const ParsedChart>(std::move(bundle), hash, std::move(text));
    {
      std::lock_guard lock(mutex_);
      insert_locked(chart);
      loading_.erase(hash);
    }
    promise.set_value(chart);
    return chart;
  } catch (...) {
    {
      std::lock_guard lock(mutex_);
      loading_.erase(hash);
    }
    promise.set_exception(std::current_exception());
    throw;
  }
}

std::size_t ChartCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void ChartCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
  lru_.clear();
  source_bytes_ = 0;
}

}  // namespace chartflow::handlers
