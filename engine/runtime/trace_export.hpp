// Sends finished spans to an OTLP/HTTP collector (POST {endpoint}/v1/traces, JSON encoding) from
// a thread of its own. record() only appends to a bounded queue under a mutex: a step never
// waits on the collector. A full queue drops the span and counts it (the metric
// chartflow_trace_spans_dropped_total); a batch the collector refuses or never answers is
// dropped and counted too, with one warning per failure streak, never retried: spans are
// diagnostics, and retrying would let a dead collector hold memory.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/trace.hpp"
#include "engine/handler.hpp"

namespace chartflow::runtime {

struct TraceExportSettings {
  std::string endpoint;  // the collector's base URL; spans go to {endpoint}/v1/traces
  std::string service = "chartflow";
  std::string instance;          // service.instance.id
  std::size_t max_queue = 4096;  // spans held at most; more are dropped
  std::size_t max_batch = 512;   // spans per request
  Millis flush_interval{1'000};  // a partial batch waits at most this long
  Millis timeout{2'000};         // per request
};

class TraceExporter {
 public:
  explicit TraceExporter(TraceExportSettings settings);
  // Sends what is queued (each request bounded by the timeout), then stops.
  ~TraceExporter();
  TraceExporter(const TraceExporter&) = delete;
  TraceExporter& operator=(const TraceExporter&) = delete;

  void record(core::Span span);
  std::uint64_t dropped() const { return dropped_.load(); }    // queue full or send failed
  std::uint64_t exported() const { return exported_.load(); }  // accepted by the collector
  std::uint64_t requests() const { return requests_.load(); }  // requests begun
  const TraceExportSettings& settings() const { return settings_; }

 private:
  void loop();
  void send(std::vector<core::Span>& batch);

  TraceExportSettings settings_;
  std::string url_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<core::Span> queue_;
  bool stopping_ = false;
  bool failing_ = false;  // in a failure streak: warned once already
  std::atomic<std::uint64_t> dropped_{0}, exported_{0}, requests_{0};
  std::thread thread_;
};

}  // namespace chartflow::runtime
