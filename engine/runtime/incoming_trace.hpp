// The W3C trace a request arrived with, for the events it stores. The HTTP router opens an
// IncomingTrace around each route's handler from the request's `traceparent` header (or, for an
// S3 PUT, the object metadata header `x-amz-meta-traceparent`); Engine::ingest and ingest_batch
// give it to every event stored on that thread meanwhile that names no trace of its own. So each
// door (events, webhooks, chart uploads, S3, the modules' routes and intake hooks) accepts a
// trace without code of its own, and a module's route cannot forget to. Handlers run
// synchronously on the thread that called them, which is what makes a thread-local right here.
#pragma once

#include <optional>
#include <string_view>

#include "core/trace.hpp"
#include "engine/events.hpp"

namespace chartflow::runtime {

class IncomingTrace {
 public:
  // A missing or malformed value is no trace: the events start their own (never an error).
  explicit IncomingTrace(std::optional<std::string_view> traceparent);
  ~IncomingTrace();
  IncomingTrace(const IncomingTrace&) = delete;
  IncomingTrace& operator=(const IncomingTrace&) = delete;

  static const core::TraceContext* current();
  // Sets the event's trace from the current one unless the event has its own.
  static void apply(EventInput& event);

 private:
  std::optional<core::TraceContext> ctx_;
  const core::TraceContext* previous_;
};

}  // namespace chartflow::runtime
