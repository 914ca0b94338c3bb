#include "runtime/engine.hpp"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "core/for_each.hpp"
#include "runtime/attempt_spans.hpp"
#include "runtime/debounce.hpp"
#include "runtime/incoming_trace.hpp"
#include "runtime/log.hpp"
#include "runtime/step_context.hpp"

namespace chartflow::runtime {
namespace {

constexpr Millis kMinProbeGap{20};
constexpr Millis kReconnectDelay{500};
constexpr std::size_t kEventCacheEntries = 1024;
constexpr auto kMaxBatchOpen = std::chrono::milliseconds(50);
// A bulkhead's steps wait on the outside world: claimed several at a time, each would wait for
// the ones before it on one worker (and its deadline, set at the claim, would run meanwhile)
// while the pool's other workers sat idle.
constexpr int kBulkheadBatchSize = 1;

std::string make_instance_id() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::random_device rd;
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(rd() % 100000);
}

double unit_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// A step's own limit wins over its external handler's; the handler's then holds per process only
// (its pool size).
std::optional<std::string> concurrency_key(const core::Workflow& wf, const core::Step& s,
                                           const Json& body) {
  if (s.concurrency.limit <= 0 && s.handler.shared_limit() > 0) return s.handler.shared_limit_key();
  if (s.concurrency.limit <= 0) return std::nullopt;
  std::string key = wf.name + "/" + s.name;
  if (!s.concurrency.key.empty()) {
    const Json doc = {{"event", body}};
    std::string value = "-";
    try {
      Json::json_pointer ptr(s.concurrency.key);
      if (doc.contains(ptr)) {
        const Json& v = doc.at(ptr);
        value = v.is_string() ? v.get<std::string>() : v.dump();
      }
    } catch (const Json::exception&) {
    }
    key += "/" + value;
  }
  return key;
}

// The step a row key is of, for metric labels: an element's index would make a label per
// element.
const std::string& step_label(const std::string& key, std::string& scratch) {
  auto element = core::parse_element_key(key);
  if (!element) return key;
  scratch = std::move(element->step);
  return scratch;
}

// The rows of a for_each step's elements. Its `concurrency` bounds the elements of one run (a
// key per run), in place of the limit the step's handler may share across steps.
std::vector<store::StepPlan> element_plans(const core::Workflow& wf, const core::Step& s,
                                           const Json& event, std::int64_t run_id,
                                           std::size_t count) {
  store::StepPlan base = plan_step(wf, s, event);
  base.needs.clear();
  if (s.for_each->concurrency > 0) {
    base.concurrency_key = wf.name + "/" + s.name + "/run-" + std::to_string(run_id);
    base.concurrency_limit = s.for_each->concurrency;
  }
  std::vector<store::StepPlan> out(count, base);
  for (std::size_t i = 0; i < count; ++i) out[i].step_key = core::element_key(s.name, i);
  return out;
}

// Marks the wake-ups a store sends as this process's own for one ingest: the caller wakes its
// workers directly, so its dispatcher need not wake another for the echo.
class OwnWakeUps {
 public:
  OwnWakeUps(store::Store& s, const std::string& origin) : s_(s) { s_.set_wake_origin(origin); }
  ~OwnWakeUps() { s_.set_wake_origin(""); }
  OwnWakeUps(const OwnWakeUps&) = delete;
  OwnWakeUps& operator=(const OwnWakeUps&) = delete;

 private:
  store::Store& s_;
};

// The runs a committed batch ended, for their root spans.
void ended_runs(const store::StepBatch& batch, std::vector<std::int64_t>& out) {
  out.insert(out.end(), batch.succeeded_run_ids().begin(), batch.succeeded_run_ids().end());
  out.insert(out.end(), batch.failed_run_ids().begin(), batch.failed_run_ids().end());
}

}  // namespace

store::StepPlan plan_step(const core::Workflow& wf, const core::Step& s, const Json& body) {
  store::StepPlan sp;
  sp.step_key = s.name;
  sp.handler = s.handler.name;
  sp.needs = s.needs;
  sp.max_attempts = s.retry.max_attempts;
  sp.timeout_ms = static_cast<int>(s.timeout.count());
  sp.concurrency_key = concurrency_key(wf, s, body);
  if (sp.concurrency_key)
    sp.concurrency_limit = s.concurrency.limit > 0 ? s.concurrency.limit : s.handler.shared_limit();
  return sp;
}

Engine::Engine(EngineSettings settings, std::shared_ptr<const HandlerRegistry> handlers,
               std::shared_ptr<WorkflowRegistry> workflows, EngineHooks hooks)
    : settings_(std::move(settings)),
      handlers_(std::move(handlers)),
      workflows_(std::move(workflows)),
      hooks_(std::move(hooks)),
      pool_(settings_.dsn, settings_.pool_size),
      events_(kEventCacheEntries) {
  if (settings_.instance_id.empty()) settings_.instance_id = make_instance_id();
  build_pools();
}

Engine::~Engine() { drain(); }

void Engine::start() {
  if (started_) return;
  started_ = true;
  dispatcher_ = std::thread([this] { dispatcher_loop(); });
  if (settings_.scheduler) scheduler_.start();
  for (std::size_t p = 0; p < pools_.size(); ++p) {
    worker_pool_.insert(worker_pool_.end(), pools_[p]->workers, p);
    if (p > 0)
      Log::info("bulkhead", {{"bulkhead", pools_[p]->bulkhead},
                             {"workers", pools_[p]->workers},
                             {"handlers", pools_[p]->handlers}});
  }
  for (int i = 0; i < static_cast<int>(worker_pool_.size()); ++i)
    workers_.emplace_back([this, i] { worker_loop(i); });
}

void Engine::build_pools() {
  auto general = std::make_unique<Pool>();
  general->workers = settings_.workers;
  general->batch_size = settings_.batch_size;
  pools_.push_back(std::move(general));
  if (settings_.workers <= 0) return;  // API only: this process runs no steps
  std::map<std::string, std::vector<std::string>> bulkheads;  // ordered: the same pools each start
  for (const auto& name : handlers_->names())
    if (auto b = handlers_->find(name)->bulkhead(); !b.empty()) bulkheads[b].push_back(name);
  for (auto& [bulkhead, names] : bulkheads) {
    const auto it = settings_.bulkhead_workers.find(bulkhead);
    const int n = it == settings_.bulkhead_workers.end() ? kDefaultBulkheadWorkers : it->second;
    if (n <= 0) continue;  // no bulkhead: its handlers run in the general pool
    std::sort(names.begin(), names.end());
    auto pool = std::make_unique<Pool>();
    pool->bulkhead = bulkhead;
    pool->workers = n;
    pool->batch_size = kBulkheadBatchSize;
    for (const auto& h : names) {
      handler_pool_[h] = pools_.size();
      pools_.front()->handlers.push_back(h);
    }
    pool->handlers = std::move(names);
    pools_.push_back(std::move(pool));
  }
  if (pools_.size() > 64) throw std::invalid_argument("at most 63 bulkheads");
}

std::size_t Engine::pool_of(const std::string& handler) const {
  const auto it = handler_pool_.find(handler);
  return it == handler_pool_.end() ? 0 : it->second;
}

std::unique_ptr<store::Store> Engine::connect_worker(int worker) const {
  auto store = std::make_unique<store::Store>(settings_.dsn);
  // Without bulkheads every worker claims every step: nothing to say, not even a statement.
  if (pools_.size() > 1) {
    const Pool& pool = *pools_[worker_pool_[worker]];
    store->set_claim_scope(pool.handlers, !pool.bulkhead.empty());
  }
  return store;
}

void Engine::drain() {
  scheduler_.stop();
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  for (auto& pool : pools_) pool->cv.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
  // The dispatcher keeps renewing leases until the last in-flight step is committed.
  dispatcher_stopping_ = true;
  if (dispatcher_.joinable()) dispatcher_.join();
}

std::vector<WorkflowPtr> Engine::matching(const std::string& type, const Json& body) const {
  std::vector<WorkflowPtr> out;
  for (auto& match : matches(type, body)) out.push_back(std::move(match.first));
  return out;
}

std::vector<std::pair<WorkflowPtr, const core::Trigger*>> Engine::matches(const std::string& type,
                                                                          const Json& body) const {
  std::vector<std::pair<WorkflowPtr, const core::Trigger*>> out;
  const Json doc = {{"event", body}};
  for (const auto& wf : workflows_->latest()) {
    for (const auto& t : wf->workflow.triggers) {
      if (t.event != type) continue;
      // A tick belongs to the workflow whose schedule fired it.
      if (type == kScheduleTickEvent && body.value("workflow", "") != wf->workflow.name) continue;
      if (t.filter && !t.filter->evaluate(doc)) continue;
      out.emplace_back(wf, &t);  // wf holds the trigger alive
      break;
    }
  }
  return out;
}

bool Engine::listened(const std::string& type) const {
  for (const auto& wf : workflows_->latest())
    for (const auto& t : wf->workflow.triggers)
      if (t.event == type) return true;
  return false;
}

store::Store::PlanRuns Engine::run_end_plan(const char* type) const {
  if (!listened(type)) return nullptr;
  return [this](const store::EventInput& ev) { return plan_runs(ev, nullptr); };
}

void Engine::emit_if_ended(store::StepBatch& batch, std::int64_t run_id) const {
  const std::string& status = batch.last_run_status();
  if (status != "succeeded" && status != "failed") return;
  if (auto plan =
          run_end_plan(status == "succeeded" ? store::kRunSucceededEvent : store::kRunFailedEvent))
    batch.emit_run_end(run_id, plan);
}

std::vector<store::RunPlan> Engine::plan_runs(const store::EventInput& ev,
                                              std::vector<std::string>* started,
                                              std::uint64_t* pools) const {
  std::vector<store::RunPlan> plans;
  for (const auto& [wf, trigger] : matches(ev.type, ev.body)) {
    store::RunPlan p;
    p.workflow_version_id = wf->version_id;
    p.workflow = wf->workflow.name;
    // A debounced run starts later, from the dispatcher (runtime/debounce.cpp).
    if (trigger->debounce) p.debounce = debounce_plan(*trigger->debounce, ev.body);
    for (const auto& s : wf->workflow.steps) {
      store::StepPlan sp;
      sp.step_key = s.name;
      sp.handler = s.handler.name;
      sp.needs = s.needs;
      if (pools && !p.debounce && s.needs.empty())
        *pools |= std::uint64_t{1} << pool_of(s.handler.name);
      sp.max_attempts = s.retry.max_attempts;
      sp.timeout_ms = static_cast<int>(s.timeout.count());
      sp.concurrency_key = concurrency_key(wf->workflow, s, ev.body);
      if (sp.concurrency_key)
        sp.concurrency_limit =
            s.concurrency.limit > 0 ? s.concurrency.limit : s.handler.shared_limit();
      p.steps.push_back(std::move(sp));
    }
    if (started && !p.debounce) started->push_back(p.workflow);
    plans.push_back(std::move(p));
  }
  return plans;
}

store::IngestResult Engine::ingest(store::EventInput event,
                                   const store::Store::BeforeIngest& before) {
  IncomingTrace::apply(event);
  std::vector<std::string> started;
  std::uint64_t pools = 0;
  auto plan = [&](const store::EventInput& ev) { return plan_runs(ev, &started, &pools); };
  auto result = pool_.with([&](store::Store& s) {
    OwnWakeUps own(s, settings_.instance_id);
    return s.ingest(std::move(event), plan, before);
  });
  if (!result.duplicate && hooks_.run_started)
    for (const auto& name : started) hooks_.run_started(name);
  // Same-process workers need no round trip through NOTIFY to start.
  if (!result.run_ids.empty()) wake_pools(pools, static_cast<int>(result.run_ids.size()));
  return result;
}

std::vector<store::IngestResult> Engine::ingest_batch(
    const std::vector<store::EventInput>& events) {
  if (IncomingTrace::current()) {
    auto traced = events;  // a copy only for a request that came with a trace
    for (auto& ev : traced) IncomingTrace::apply(ev);
    return ingest_with([&](store::Store& s, const store::Store::PlanRuns& plan) {
      return s.ingest_batch(traced, plan);
    });
  }
  return ingest_with([&](store::Store& s, const store::Store::PlanRuns& plan) {
    return s.ingest_batch(events, plan);
  });
}

void Engine::reserve_event_types(const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) reserved_.add(p);
}

void Engine::refuse_reserved(const std::string& type) const {
  if (auto why = reserved_.refusal(type)) throw EventRefused(*why);
}

store::IngestResult Engine::ingest_external(store::EventInput event,
                                            const store::Store::BeforeIngest& before) {
  refuse_reserved(event.type);
  return ingest(std::move(event), before);
}

std::vector<store::IngestResult> Engine::ingest_batch_external(
    const std::vector<store::EventInput>& events) {
  for (const auto& ev : events) refuse_reserved(ev.type);
  return ingest_batch(events);
}

std::vector<store::IngestResult> Engine::ingest_with(const IngestFn& fn) {
  std::vector<std::string> started;
  std::uint64_t pools = 0;
  auto plan = [&](const store::EventInput& ev) { return plan_runs(ev, &started, &pools); };
  auto results = pool_.with([&](store::Store& s) {
    OwnWakeUps own(s, settings_.instance_id);
    return fn(s, plan);
  });
  if (hooks_.run_started)
    for (const auto& name : started) hooks_.run_started(name);
  wake_pools(pools, static_cast<int>(started.size()));
  return results;
}

void Engine::wake_pool(std::size_t index, int n) {
  Pool& pool = *pools_[index];
  int added = 0;
  {
    std::lock_guard lock(wake_mu_);
    // A permit left over while every worker was busy makes the next idle worker claim again,
    // so a wake-up is never lost; the cap keeps a flood of hints from becoming empty claims.
    const int cap = std::max(1, pool.workers);
    added = std::min(n, cap - pool.permits);
    if (added <= 0) return;
    pool.permits += added;
  }
  for (int i = 0; i < added; ++i) pool.cv.notify_one();
}

void Engine::wake_pools(std::uint64_t pools, int n) {
  for (std::size_t i = 0; i < pools_.size(); ++i)
    if ((pools >> i) & 1U) wake_pool(i, n);
}

void Engine::wake_workers(int n) {
  for (std::size_t i = 0; i < pools_.size(); ++i) wake_pool(i, n);
}

bool Engine::wait_for_work(std::size_t index) {
  Pool& pool = *pools_[index];
  std::unique_lock lock(wake_mu_);
  // No timeout: the dispatcher is the one poller and wakes workers when work is due.
  pool.cv.wait(lock, [&] { return stopping_.load() || pool.permits > 0; });
  if (stopping_) return false;
  --pool.permits;
  return true;
}

void Engine::wake_dependents(const std::vector<store::ClaimedStep>& steps,
                             const std::vector<WorkflowPtr>& workflows, std::size_t own_pool) {
  std::uint64_t pools = 0;
  for (std::size_t i = 0; i < steps.size() && i < workflows.size(); ++i) {
    if (!workflows[i]) continue;
    for (const auto& d : workflows[i]->workflow.steps)
      if (std::find(d.needs.begin(), d.needs.end(), steps[i].step_key) != d.needs.end())
        pools |= std::uint64_t{1} << pool_of(d.handler.name);
  }
  wake_pools(pools & ~(std::uint64_t{1} << own_pool), 1);
}

void Engine::worker_loop(int index) {
  const std::size_t pool = worker_pool_[index];
  const int batch_size = pools_[pool]->batch_size;
  std::unique_ptr<store::Store> store;
  while (!stopping_) {
    try {
      if (!store) store = connect_worker(index);
      auto steps = store->claim(settings_.instance_id, batch_size, settings_.lease,
                                workflows_->any_concurrency_limits());
      if (steps.empty()) {
        wait_for_work(pool);
        continue;
      }
      // Each batch's commit claims the next batch, so a busy worker pays one commit per batch.
      while (!steps.empty()) {
        if (static_cast<int>(steps.size()) >= batch_size) wake_pool(pool, 1);
        try {
          steps = run_batch(*store, steps, index, true);
        } catch (const store::LeaseLost& lost) {
          // Another worker took these steps over meanwhile: the batch rolled back, and the
          // steps that are still ours run again without them.
          for (const auto& lost_step : lost.steps) {
            const auto& [run_id, step_key] = lost_step;
            Log::warn("step_lease_lost", {{"worker", index}, {"run", run_id}, {"step", step_key}});
            std::erase_if(steps, [&lost_step](const auto& s) {
              return s.run_id == lost_step.first && s.step_key == lost_step.second;
            });
          }
          rerun_one_by_one(store, steps, index);
        } catch (const std::exception& e) {
          // The batch rolled back as a whole (a deadlock with another batch over shared run
          // rows, a lost connection): its steps are still claimed by us, so run them again one
          // per transaction now rather than leave them all to wait out their leases.
          Log::warn("batch_retried_step_by_step",
                    {{"worker", index}, {"steps", steps.size()}, {"error", e.what()}});
          store = connect_worker(index);
          rerun_one_by_one(store, steps, index);
        }
      }
    } catch (const std::exception& e) {
      Log::error("worker_error", {{"worker", index}, {"error", e.what()}});
      store.reset();
      std::unique_lock lock(wake_mu_);
      pools_[pool]->cv.wait_for(lock, kReconnectDelay, [&] { return stopping_.load(); });
    }
  }
}

void Engine::rerun_one_by_one(std::unique_ptr<store::Store>& store,
                              std::vector<store::ClaimedStep>& steps, int worker) {
  std::vector<store::StepAttempt> dropped;
  for (auto& s : steps) {
    std::vector<store::ClaimedStep> one{s};
    try {
      run_batch(*store, one, worker, false);
    } catch (const store::LeaseLost&) {
      Log::warn("step_lease_lost", {{"worker", worker}, {"run", s.run_id}, {"step", s.step_key}});
    } catch (const std::exception& again) {
      Log::error(
          "step_retry_failed",
          {{"worker", worker}, {"run", s.run_id}, {"step", s.step_key}, {"error", again.what()}});
      // A broken connection is not the step's fault; any other failure is left to the lease
      // (and is the step's own, should it repeat).
      if (!store->connected()) dropped.push_back({s.run_id, s.step_key, s.attempt});
      store = connect_worker(worker);
    }
  }
  steps.clear();
  if (dropped.empty()) return;
  try {
    const int n = store->release_steps(settings_.instance_id, dropped, "connection lost");
    Log::warn("steps_released", {{"worker", worker}, {"count", n}});
  } catch (const std::exception& e) {
    // Not renewed by the heartbeat any more, they come back when their leases lapse.
    Log::error("steps_release_failed", {{"worker", worker}, {"error", e.what()}});
  }
}

void Engine::track(const std::vector<store::ClaimedStep>& steps) {
  in_flight_ += static_cast<int>(steps.size());
  std::lock_guard lock(flight_mu_);
  for (const auto& s : steps) flying_[{s.run_id, s.step_key}] = s.attempt;
}

void Engine::untrack(const std::vector<store::ClaimedStep>& steps) {
  in_flight_ -= static_cast<int>(steps.size());
  std::lock_guard lock(flight_mu_);
  for (const auto& s : steps) {
    auto it = flying_.find({s.run_id, s.step_key});
    if (it != flying_.end() && it->second == s.attempt) flying_.erase(it);
  }
}

std::vector<store::StepAttempt> Engine::tracked() {
  std::lock_guard lock(flight_mu_);
  std::vector<store::StepAttempt> out;
  out.reserve(flying_.size());
  for (const auto& [key, attempt] : flying_) out.push_back({key.first, key.second, attempt});
  return out;
}

std::vector<store::ClaimedStep> Engine::run_batch(store::Store& store,
                                                  std::vector<store::ClaimedStep>& steps,
                                                  int worker, bool claim_next) {
  const std::size_t pool = worker_pool_[worker];
  // Run rows are locked in one order by every batch, so two batches sharing runs queue
  // behind each other instead of deadlocking.
  std::stable_sort(steps.begin(), steps.end(),
                   [](const auto& a, const auto& b) { return a.run_id < b.run_id; });
  track(steps);
  struct Done {
    std::string workflow, step;
    double seconds;
  };
  std::vector<Done> done;
  std::vector<store::ClaimedStep> next;
  std::vector<std::int64_t> ended;  // runs the batch ended, for their root spans
  try {
    // Definitions and event bodies are read before the batch transaction opens: a connection
    // runs one transaction at a time.
    std::vector<std::int64_t> missing;
    for (const auto& s : steps)
      if (!events_.get(s.event_id)) missing.push_back(s.event_id);
    for (auto& [id, event] : store.event_bodies(missing))
      events_.put(id, std::make_shared<const store::StoredEvent>(std::move(event)));
    std::vector<std::pair<WorkflowPtr, std::shared_ptr<const store::StoredEvent>>> inputs;
    std::vector<WorkflowPtr> definitions;
    for (auto& s : steps) {
      auto event = events_.get(s.event_id);
      if (!event) event = std::make_shared<const store::StoredEvent>();
      s.trace_id = event->trace_id;  // the handler's traceparent()
      inputs.emplace_back(workflows_->by_version(s.workflow_version_id, store), std::move(event));
      definitions.push_back(inputs.back().first);
    }
    int promoted = 0;
    const auto succeeded_plan = run_end_plan(store::kRunSucceededEvent);
    auto batch = store.begin_batch();
    batch->emit_succeeded_with(succeeded_plan);
    auto batch_start = std::chrono::steady_clock::now();
    std::vector<core::Span> spans;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const auto& s = steps[i];
      const auto t0 = std::chrono::steady_clock::now();
      // Slow handlers: commit what is done so finished steps do not sit locked, looking like
      // running steps with an ageing lease, behind the rest of the batch.
      if (i > 0 && t0 - batch_start > kMaxBatchOpen) {
        batch->commit(settings_.instance_id, 0, settings_.lease, false);
        record_spans(spans);
        report_succeeded(*batch);
        promoted += batch->promoted();
        if (settings_.traces) ended_runs(*batch, ended);
        batch.reset();  // a connection holds one transaction object at a time
        batch = store.begin_batch();
        batch->emit_succeeded_with(succeeded_plan);
        batch_start = std::chrono::steady_clock::now();
      }
      execute(*batch, s, inputs[i].first, inputs[i].second->body, spans);
      std::string scratch;
      done.push_back(
          {s.workflow, step_label(s.step_key, scratch),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
    }
    next = batch->commit(settings_.instance_id,
                         stopping_ || !claim_next ? 0 : pools_[pool]->batch_size, settings_.lease,
                         workflows_->any_concurrency_limits());
    record_spans(spans);
    report_succeeded(*batch);
    promoted += batch->promoted();
    if (settings_.traces) ended_runs(*batch, ended);
    if (promoted > 0 && pools_.size() > 1) wake_dependents(steps, definitions, pool);
  } catch (...) {
    untrack(steps);
    throw;
  }
  untrack(steps);
  if (!ended.empty()) record_run_spans(store, steps, ended);
  if (hooks_.step_finished)
    for (const auto& d : done) hooks_.step_finished(d.workflow, d.step, d.seconds, "done");
  return next;
}

void Engine::report_succeeded(const store::StepBatch& batch) const {
  if (hooks_.run_finished)
    for (const auto& wf : batch.succeeded_runs()) hooks_.run_finished(wf, "succeeded");
}

void Engine::execute(store::StepBatch& batch, const store::ClaimedStep& s, const WorkflowPtr& wf,
                     const Json& event, std::vector<core::Span>& spans) {
  const std::string& owner = settings_.instance_id;
  const core::Step* def = wf ? core::definition_of(wf->workflow, s.step_key) : nullptr;
  if (def == nullptr) {
    batch.finish_failed(
        s, owner, "step definition not found for version " + std::to_string(s.workflow_version_id));
    return;
  }
  const auto element =
      def->for_each ? core::parse_element_key(s.step_key) : std::optional<core::ElementKey>();
  if (def->for_each && !element && s.wake && s.wake->value("kind", "") == "fan_in") {
    // Every element is done: the step's output is theirs, in list order.
    const auto count = s.wake->value("count", std::size_t{0});
    batch.finish_done(s, owner, core::collect_outputs(s.needs_output, def->name, count), false);
    if (settings_.traces) claim_span(spans, s, *def, "fan-in", count);
    return;
  }
  if (def->when && !s.wake && !element) {
    const Json doc = {{"event", event}, {"steps", s.needs_output}};
    if (!def->when->evaluate(doc)) {
      batch.finish_done(s, owner, Json::object(), /*skipped=*/true);
      return;
    }
  }
  // The child's own steps had their retries: its failure fails this step for good.
  std::optional<std::string> child_failure;
  if (def->child && !(child_failure = child_step(batch, s, *def, event))) return;
  std::optional<Json> element_input;
  // The list is the run's own data, settled before the step started: no retry changes it, so a
  // problem with it fails the attempt for good.
  std::string list_problem;
  if (def->for_each) {
    auto list = core::for_each_list(*def->for_each, event, s.needs_output);
    if (auto* why = std::get_if<std::string>(&list)) {
      list_problem = *why;
    } else if (element && element->index >= std::get<Json>(list).size()) {
      list_problem = "element " + std::to_string(element->index) + " is no longer in the list";
    } else if (element) {
      element_input =
          core::element_input(def->input, std::get<Json>(list)[element->index], element->index);
    } else {
      const Json& items = std::get<Json>(list);
      bool ours = true;
      if (items.empty()) {
        batch.finish_done(s, owner, Json::array(), false);
      } else {
        ours = batch.finish_fanned_out(
            s, owner, element_plans(wf->workflow, *def, event, s.run_id, items.size()));
      }
      if (settings_.traces && ours) claim_span(spans, s, *def, "fan-out", items.size());
      return;
    }
  }
  Handler* handler = handlers_->find(s.handler);
  StepOutcome outcome;
  StepContextImpl ctx(s, *def, event, batch, [this](const std::function<void(Sql&)>& fn) {
    pool_.with([&](store::Store& st) {
      st.with_sql(fn);
      return 0;
    });
  });
  if (element_input) ctx.set_input(std::move(*element_input));
  const TimePoint handler_start = settings_.traces ? Clock::now() : TimePoint{};
  if (!list_problem.empty()) {
    outcome = Fail{list_problem, true};
  } else if (child_failure) {
    outcome = Fail{*child_failure, true};
  } else if (handler == nullptr) {
    outcome = Fail{"no handler named " + s.handler + " in this process", false};
  } else {
    try {
      outcome = handler->run(ctx);
    } catch (const std::exception& e) {
      // A throwing handler is a bug in the handler: retry, and say so loudly.
      ctx.log(LogLevel::kError, "handler threw", {{"error", e.what()}});
      outcome = Retry{std::string("handler threw: ") + e.what(), std::nullopt};
    }
  }
  if (Clock::now() > s.deadline && !std::holds_alternative<Fail>(outcome)) {
    outcome = Fail{"timed out after " + core::format_duration(def->timeout), false};
  }
  // False when the attempt was no longer this worker's to finish: the dispatcher ended it (a
  // timeout, a lost lease) and recorded its span then.
  bool ours = true;
  auto fail_attempt = [&](const std::string& reason, bool permanent, std::optional<Millis> after) {
    batch.log(store::LogRecord{3, "step attempt failed: " + reason, s.workflow, s.run_id,
                               s.step_key, s.attempt, Json::object()});
    Log::to_stderr(store::LogRecord{3, "step attempt failed", s.workflow, s.run_id, s.step_key,
                                    s.attempt, Json::object()});
    // A permanent failure is the handler's verdict on its input, which no operator retry
    // changes: it fails the run even where the step would park.
    if (!permanent && s.attempt >= s.max_attempts &&
        def->on_exhausted == core::OnExhausted::kPark) {
      ours = batch.finish_parked(s, owner, reason);
      if (ours)
        Log::warn("step_parked", {{"workflow", s.workflow},
                                  {"run", s.run_id},
                                  {"step", s.step_key},
                                  {"attempt", s.attempt}});
      return;
    }
    if (permanent || s.attempt >= s.max_attempts) {
      ours = batch.finish_failed(s, owner, reason);
      if (ours) emit_if_ended(batch, s.run_id);
      if (hooks_.run_finished) hooks_.run_finished(s.workflow, "failed");
    } else {
      const Millis delay = after ? *after : def->retry.delay_before(s.attempt + 1, unit_random);
      std::string scratch;
      ours = batch.finish_retry(s, owner, delay, reason);
      if (ours && hooks_.step_retried)
        hooks_.step_retried(s.workflow, step_label(s.step_key, scratch));
    }
  };
  std::visit(
      [&](auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Completed>) {
          batch.finish_done(s, owner, o.output, false);
        } else if constexpr (std::is_same_v<T, Retry>) {
          fail_attempt(o.reason, false, o.after);
        } else if constexpr (std::is_same_v<T, Fail>) {
          fail_attempt(o.reason, o.permanent, std::nullopt);
        } else if constexpr (std::is_same_v<T, WaitForSignal>) {
          ours = batch.finish_wait(s, owner, o.signal, o.deadline);
        } else if constexpr (std::is_same_v<T, WaitUntil>) {
          ours = batch.finish_wait(s, owner, std::nullopt, o.at);
        }
      },
      outcome);
  if (settings_.traces && ours) step_span(spans, s, *def, outcome, handler_start);
}

void Engine::handle_expired(store::Store& store) {
  for (const auto& e : store.expired_steps(100)) {
    WorkflowPtr wf = workflows_->by_version(e.workflow_version_id, store);
    // A for_each element retries and parks as its step says.
    const core::Step* def = wf ? core::definition_of(wf->workflow, e.step_key) : nullptr;
    core::RetryPolicy policy = def ? def->retry : core::RetryPolicy{};
    std::string error =
        e.timed_out
            ? "timed out after " + core::format_duration(def ? def->timeout : core::Millis(0))
            : "lease expired (worker lost)";
    // The span's trace is read before the expiry changes the row; recorded once it committed.
    std::optional<store::AttemptTrace> trace;
    if (settings_.traces) {
      try {
        trace = store::attempt_trace(store, e.run_id, e.step_key);
      } catch (const std::exception& ex) {
        Log::warn("trace_attempt_read_failed", {{"error", ex.what()}});
      }
    }
    auto record_expired = [&](bool run_may_have_ended) {
      if (!trace) return;
      std::optional<store::Store::RunTimes> run;
      if (run_may_have_ended) {
        try {
          if (auto times = store.run_times({e.run_id}); !times.empty()) run = times.front();
        } catch (const std::exception& ex) {
          Log::warn("trace_run_times_failed", {{"error", ex.what()}});
        }
      }
      auto spans = expired_spans(e, *trace, run);
      record_spans(spans);
    };
    std::optional<Millis> after;
    if (!e.timed_out)
      after = Millis(0);
    else if (e.attempt < e.max_attempts)
      after = policy.delay_before(e.attempt + 1, unit_random);
    if (!after && def != nullptr && def->on_exhausted == core::OnExhausted::kPark) {
      if (!store.park_expired(e, error)) continue;
      record_expired(false);
      if (hooks_.step_expired) hooks_.step_expired(true);
      Log::warn(
          "step_parked",
          {{"run", e.run_id}, {"step", e.step_key}, {"attempt", e.attempt}, {"timed_out", true}});
      continue;
    }
    if (!store.expire_step(e, after, error, run_end_plan(store::kRunFailedEvent))) continue;
    record_expired(!after);
    if (hooks_.step_expired) hooks_.step_expired(e.timed_out);
    Log::warn(e.timed_out ? "step_timed_out" : "lease_expired",
              {{"run", e.run_id}, {"step", e.step_key}, {"attempt", e.attempt}});
  }
}

void Engine::dispatcher_loop() {
  std::unique_ptr<store::Store> store;
  auto last_heartbeat = std::chrono::steady_clock::now();
  // Finished runs are archived each minute; partitions are made and expired hourly, the first
  // time a minute after start.
  auto next_archive = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  auto next_expiry = next_archive;
  while (!dispatcher_stopping_) {
    try {
      if (!store) {
        store = std::make_unique<store::Store>(settings_.dsn);
        store->listen_wakeups(settings_.instance_id);
        // Today's log partition exists before the first log is written, however long no node
        // ran (runtime/retention.cpp).
        ensure_log_days(*store);
      }
      const auto p = store->probe();
      Millis sleep = settings_.poll_interval;
      auto until = [&](const std::optional<TimePoint>& t) {
        if (!t) return;
        auto d = std::chrono::duration_cast<Millis>(*t - p.now);
        sleep = std::min(sleep, std::max(d, kMinProbeGap));
      };
      if (p.next_wait && *p.next_wait <= p.now)
        if (const int fired = store->fire_due_waits(); fired > 0) wake_workers(fired);
      if (p.next_expiry && *p.next_expiry <= p.now) handle_expired(*store);
      if (p.next_due && *p.next_due <= p.now) wake_workers();
      if (p.next_debounce && *p.next_debounce <= p.now) start_debounced(*store);
      if (reprocess_pending_) continue_reprocess(*store, sleep);
      until(p.next_due);
      until(p.next_wait);
      until(p.next_expiry);
      until(p.next_debounce);
      if (in_flight_ > 0 &&
          std::chrono::steady_clock::now() - last_heartbeat > settings_.lease / 3) {
        store->heartbeat(settings_.instance_id, settings_.lease, tracked());
        last_heartbeat = std::chrono::steady_clock::now();
      }
      if (auto logs = Log::drain(); !logs.empty()) write_logs(*store, logs);
      if (std::chrono::steady_clock::now() >= next_expiry) {
        next_expiry = std::chrono::steady_clock::now() + std::chrono::hours(1);
        expire_retention(*store);
      }
      if (std::chrono::steady_clock::now() >= next_archive) {
        next_archive = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        archive_finished(*store);
      }
      // Notifications mean new work: pass them on without probing again.
      const auto deadline = std::chrono::steady_clock::now() + sleep;
      while (!dispatcher_stopping_) {
        const auto left =
            std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
        if (left <= Millis(0)) break;
        if (store->await_notification(std::min(left, Millis(250)))) wake_workers();
      }
    } catch (const std::exception& e) {
      Log::write(LogLevel::kError, "dispatcher_error", {{"error", e.what()}}, false);
      store.reset();
      std::this_thread::sleep_for(kReconnectDelay);
    }
  }
  if (store) {
    try {
      if (auto logs = Log::drain(); !logs.empty()) store->write_logs(logs);
    } catch (const std::exception&) {
    }
  }
}

Engine::CommandResult Engine::signal(std::int64_t run_id, const std::string& name,
                                     const Json& payload, std::string* message,
                                     const store::Store::BeforeCommand& before) {
  return pool_.with(
      [&](store::Store& s) { return s.signal(run_id, name, payload, message, before); });
}

Engine::CommandResult Engine::cancel(std::int64_t run_id, std::string* message,
                                     const store::Store::BeforeCommand& before) {
  return pool_.with([&](store::Store& s) { return s.cancel(run_id, message, before); });
}

Engine::CommandResult Engine::retry(std::int64_t run_id, std::string* message,
                                    const store::Store::BeforeCommand& before) {
  return pool_.with([&](store::Store& s) { return s.retry_run(run_id, message, before); });
}

bool Engine::database_ready(Millis budget) {
  try {
    auto lease = pool_.acquire_within(budget);
    try {
      lease->ping(budget);
    } catch (const store::TransientError&) {
      lease.mark_broken();
      throw;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

Json Engine::queue_stats() {
  return pool_.with([](store::Store& s) { return s.queue_stats(); });
}

Json Engine::backup_stats() {
  return pool_.with([](store::Store& s) { return s.backup_stats(); });
}

Json Engine::list_runs(const store::Store::RunFilter& filter) {
  return pool_.with([&](store::Store& s) { return s.list_runs(filter); });
}

std::optional<Json> Engine::get_run(std::int64_t run_id) {
  return pool_.with([&](store::Store& s) { return s.get_run(run_id); });
}

Json Engine::list_workflows() {
  return pool_.with([](store::Store& s) {
    Json workflows = s.list_workflows();
    describe_debounce(workflows, s.debounce_pending_counts());
    const Json pauses = s.pauses();
    // Each workflow says whether it is paused and how much waits behind the pause.
    for (auto& w : workflows) {
      w["paused"] = nullptr;
      for (const auto& p : pauses.at("workflows"))
        if (p.at("workflow") == w.at("name")) w["paused"] = p;
    }
    return workflows;
  });
}

Json Engine::query_logs(const store::Store::LogFilter& filter) {
  return pool_.with([&](store::Store& s) { return s.query_logs(filter); });
}

void Engine::transaction(const std::function<void(Sql&)>& fn) {
  pool_.with([&](store::Store& s) {
    s.with_sql(fn);
    return 0;
  });
}

void Engine::read(const std::function<void(Sql&)>& fn) {
  pool_.with([&](store::Store& s) {
    s.with_autocommit_sql(fn);
    return 0;
  });
}

}  // namespace chartflow::runtime
