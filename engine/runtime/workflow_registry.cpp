#include "runtime/workflow_registry.hpp"

#include "config/workflow_loader.hpp"

namespace chartflow::runtime {

WorkflowPtr WorkflowRegistry::remember(std::int64_t id, int version, core::Workflow wf) {
  for (const auto& s : wf.steps)
    if (s.concurrency.limit > 0 || s.handler.shared_limit() > 0 ||
        (s.for_each && s.for_each->concurrency > 0))
      any_limits_ = true;
  auto p = std::make_shared<VersionedWorkflow>(VersionedWorkflow{id, version, std::move(wf)});
  std::lock_guard lock(mu_);
  auto [it, inserted] = by_id_.emplace(id, p);
  return it->second;
}

void WorkflowRegistry::publish(store::Store& store, const std::vector<core::Workflow>& workflows) {
  for (const auto& wf : workflows) {
    auto v =
        store.register_workflow(wf.name, config::content_hash(wf), wf.to_json(), wf.source_file);
    auto p = remember(v.id, v.version, wf);
    std::lock_guard lock(mu_);
    latest_[wf.name] = p;
  }
}

void WorkflowRegistry::load_latest(store::Store& store) {
  for (auto& v : store.latest_workflows()) {
    auto p = remember(v.id, v.version, core::Workflow::from_json(v.definition));
    std::lock_guard lock(mu_);
    latest_[v.name] = p;
  }
}

std::vector<WorkflowPtr> WorkflowRegistry::latest() const {
  std::lock_guard lock(mu_);
  std::vector<WorkflowPtr> out;
  for (const auto& [_, p] : latest_) out.push_back(p);
  return out;
}

WorkflowPtr WorkflowRegistry::by_version(std::int64_t version_id, store::Store& store) {
  {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(version_id);
    if (it != by_id_.end()) return it->second;
  }
  auto v = store.workflow_version(version_id);
  if (!v) return nullptr;
  return remember(v->id, v->version, core::Workflow::from_json(v->definition));
}

}  // namespace chartflow::runtime
