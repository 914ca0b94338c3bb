// Reprocessing runs (issue #17 item 3): what an operator asks for. Engine::reprocess_preview
// answers a dry run, Engine::start_reprocess creates the job whose batches the dispatcher then
// starts (runtime/reprocess.cpp).
#pragma once

#include <stdexcept>
#include <string>

#include "store/reprocess_store.hpp"

namespace chartflow::runtime {

inline constexpr int kDefaultReprocessBatch = 50;
// A dry run asks the handlers about this many runs at most (the counts cover every run).
inline constexpr int kReprocessPreviewRuns = 10'000;
// How many of the selected charts and runs a dry run lists by id.
inline constexpr int kReprocessListed = 100;

struct ReprocessRequest {
  store::ReprocessSelection selection;
  bool dry_run = true;
  bool resend = false;  // insurer notifications already delivered go out again
  bool force = false;   // bills already sent go out again (needs a reason)
  std::string reason;
  int batch_size = kDefaultReprocessBatch;
  // The flags the handlers see (StepContext::rerun, RerunPreview::flags).
  Json flags() const {
    Json f = {{"resend", resend}, {"force", force}};
    if (!reason.empty()) f["reason"] = reason;
    return f;
  }
};

// A request that cannot be planned: no such workflow (not_found) or a selection that makes no
// sense.
struct ReprocessRejected : std::invalid_argument {
  ReprocessRejected(bool missing, const std::string& what)
      : std::invalid_argument(what), not_found(missing) {}
  bool not_found;
};

}  // namespace chartflow::runtime
