// Workflow definitions by version: the latest version of each name (what new events start) and
// any older version a run was pinned to (loaded from the database on first use).
// Thread-safe; definitions are shared read-only.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/workflow.hpp"
#include "store/store.hpp"

namespace chartflow::runtime {

struct VersionedWorkflow {
  std::int64_t version_id = 0;
  int version = 0;
  core::Workflow workflow;
};
using WorkflowPtr = std::shared_ptr<const VersionedWorkflow>;

class WorkflowRegistry {
 public:
  // Stores each workflow as a version (new content -> new version) and makes it the latest.
  void publish(store::Store& store, const std::vector<core::Workflow>& workflows);
  // Adopts the latest versions recorded in the database (for processes without workflow files).
  void load_latest(store::Store& store);
  std::vector<WorkflowPtr> latest() const;
  WorkflowPtr by_version(std::int64_t version_id, store::Store& store);
  // True once any known version limits a step's concurrency (claims then look at keyed steps).
  bool any_concurrency_limits() const { return any_limits_.load(); }

 private:
  WorkflowPtr remember(std::int64_t id, int version, core::Workflow wf);
  std::atomic<bool> any_limits_{false};
  mutable std::mutex mu_;
  std::map<std::string, WorkflowPtr> latest_;
  std::unordered_map<std::int64_t, WorkflowPtr> by_id_;
};

}  // namespace chartflow::runtime
