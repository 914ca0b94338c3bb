#include "runtime/external/process_pool.hpp"

#include "runtime/log.hpp"

namespace chartflow::runtime::external {
namespace {

// A program that cannot start is not retried in a tight loop by the warmer.
constexpr Millis kWarmBackoff{1'000};
constexpr Millis kWarmerTick{250};

}  // namespace

HandlerPool::HandlerPool(ExternalSpec spec, const PoolHooks& hooks,
                         std::function<void()> wake_warmer)
    : spec_(std::move(spec)), hooks_(hooks), wake_warmer_(std::move(wake_warmer)) {
  // Its gauges read 0 from the start (the pools of the loaded workflows are made at start-up),
  // not only once a step has used the handler.
  std::lock_guard lock(mu_);
  report();
}

HandlerPool::~HandlerPool() { shutdown(); }

void HandlerPool::report() {
  if (hooks_.pool_size) hooks_.pool_size(spec_.name, static_cast<int>(idle_.size()), busy_);
}

std::optional<HandlerPool::Lease> HandlerPool::acquire(SteadyTime deadline) {
  std::unique_lock lock(mu_);
  while (true) {
    // Most recently used first: it is the hottest, and the rest stay spare.
    while (!idle_.empty()) {
      auto p = std::move(idle_.back());
      idle_.pop_back();
      if (!p->alive()) {
        // Died while idle: never hand out a corpse, and do not keep starting a broken program.
        warm_backoff_until_ = std::chrono::steady_clock::now() + kWarmBackoff;
        continue;
      }
      ++busy_;
      report();
      const bool refill = short_of_warm();
      lock.unlock();
      if (refill) wake_warmer_();
      return Lease{std::move(p), false};
    }
    if (closed_) return std::nullopt;
    const int alive = busy_ + starting_ + static_cast<int>(idle_.size());
    if (alive < spec_.concurrency) break;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
  }
  ++busy_;
  report();
  lock.unlock();
  if (hooks_.cold_start) hooks_.cold_start(spec_.name);
  try {
    auto p = HandlerProcess::spawn(spec_);
    wake_warmer_();
    return Lease{std::move(p), true};
  } catch (...) {
    lock.lock();
    --busy_;
    report();
    cv_.notify_one();
    throw;
  }
}

void HandlerPool::release(std::unique_ptr<HandlerProcess> process, bool reuse) {
  const bool keep = reuse && process->alive() && process->invocations() < spec_.max_invocations;
  bool refill = false;
  {
    std::lock_guard lock(mu_);
    --busy_;
    if (keep && !closed_) idle_.push_back(std::move(process));
    report();
    refill = short_of_warm();
  }
  cv_.notify_one();
  process.reset();  // a recycled process is killed outside the lock
  if (refill) wake_warmer_();
}

bool HandlerPool::short_of_warm() const {
  const int idle = static_cast<int>(idle_.size());
  return idle + starting_ < spec_.min_warm && busy_ + starting_ + idle < spec_.concurrency;
}

int HandlerPool::reserve_warm() {
  std::lock_guard lock(mu_);
  if (closed_ || std::chrono::steady_clock::now() < warm_backoff_until_) return 0;
  const int alive = busy_ + starting_ + static_cast<int>(idle_.size());
  const int want = std::min(spec_.min_warm - static_cast<int>(idle_.size()) - starting_,
                            spec_.concurrency - alive);
  if (want <= 0) return 0;
  starting_ += want;
  return want;
}

void HandlerPool::add_warm(std::unique_ptr<HandlerProcess> process) {
  {
    std::lock_guard lock(mu_);
    --starting_;
    if (!process) warm_backoff_until_ = std::chrono::steady_clock::now() + kWarmBackoff;
    if (process && !closed_) idle_.push_back(std::move(process));
    report();
  }
  cv_.notify_one();
}

void HandlerPool::shutdown() {
  std::deque<std::unique_ptr<HandlerProcess>> idle;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    idle.swap(idle_);
    report();
  }
  cv_.notify_all();
}

PoolSet::PoolSet(PoolHooks hooks) : hooks_(std::move(hooks)) {
  warmer_ = std::thread([this] { warmer_loop(); });
}

PoolSet::~PoolSet() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  warmer_.join();
  for (auto& [_, pool] : pools_) pool->shutdown();
}

HandlerPool& PoolSet::pool(const ExternalSpec& spec) {
  HandlerPool* p = nullptr;
  bool created = false;
  {
    std::lock_guard lock(mu_);
    auto& slot = pools_[spec.identity()];
    if (!slot) {
      slot = std::make_unique<HandlerPool>(spec, hooks_, [this] { poke(); });
      created = true;
    }
    p = slot.get();
  }
  if (created) poke();  // its min_warm processes start now
  return *p;
}

void PoolSet::poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_one();
}

void PoolSet::warmer_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kWarmerTick, [&] { return stopping_ || poked_; });
    poked_ = false;
    std::vector<HandlerPool*> pools;
    for (auto& [_, pool] : pools_) pools.push_back(pool.get());
    lock.unlock();
    for (HandlerPool* pool : pools) {
      for (int n = pool->reserve_warm(); n > 0; --n) {
        std::unique_ptr<HandlerProcess> process;
        try {
          process = HandlerProcess::spawn(pool->spec());
        } catch (const std::exception& e) {
          Log::error("handler_start_failed", {{"handler", pool->spec().name}, {"error", e.what()}});
        }
        pool->add_warm(std::move(process));
      }
    }
    lock.lock();
  }
}

}  // namespace chartflow::runtime::external
