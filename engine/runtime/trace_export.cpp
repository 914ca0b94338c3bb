#include "runtime/trace_export.hpp"

#include "engine/util/http_post.hpp"
#include "runtime/log.hpp"

namespace chartflow::runtime {

TraceExporter::TraceExporter(TraceExportSettings settings) : settings_(std::move(settings)) {
  url_ = settings_.endpoint;
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  url_ += "/v1/traces";
  thread_ = std::thread([this] { loop(); });
}

TraceExporter::~TraceExporter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TraceExporter::record(core::Span span) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= settings_.max_queue) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(span));
    wake = queue_.size() >= settings_.max_batch;
  }
  if (wake) cv_.notify_one();
}

void TraceExporter::loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait_for(lock, settings_.flush_interval,
                 [&] { return stopping_ || queue_.size() >= settings_.max_batch; });
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    if (stopping_ && failing_) {
      // A collector that is down would hold the shutdown for a timeout per batch.
      dropped_ += queue_.size();
      queue_.clear();
      return;
    }
    std::vector<core::Span> batch;
    const std::size_t n = std::min(queue_.size(), settings_.max_batch);
    batch.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    send(batch);
    lock.lock();
  }
}

void TraceExporter::send(std::vector<core::Span>& batch) {
  const std::string body =
      core::otlp_trace_request(batch, settings_.service, settings_.instance).dump();
  util::HttpPostOptions options;
  options.timeout = settings_.timeout;
  // Spans carry engine ids only, no patient data: a collector on plain http:// inside the
  // network is the common deployment (port 4318).
  options.tls.allow_insecure = true;
  ++requests_;
  const auto result = util::http_post(url_, body, {}, options);
  if (result.ok()) {
    exported_ += batch.size();
    if (failing_) Log::info("trace_export_recovered", {{"endpoint", settings_.endpoint}});
    failing_ = false;
    return;
  }
  dropped_ += batch.size();
  if (!failing_)
    Log::warn("trace_export_failed", {{"endpoint", settings_.endpoint},
                                      {"status", result.status},
                                      {"error", result.error},
                                      {"spans_dropped", batch.size()}});
  failing_ = true;
}

}  // namespace chartflow::runtime
