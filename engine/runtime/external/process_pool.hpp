// Warm handler processes. One HandlerPool per distinct handler spec keeps idle processes ready
// (min_warm, started ahead of need by a warmer thread), hands them out one caller at a time,
// caps the processes alive at the spec's concurrency and replaces a process after
// max_invocations or when it dies. PoolSet owns the pools and the warmer thread; it lives as long
// as the handler registry. All methods are thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/external/handler_process.hpp"

namespace chartflow::runtime::external {

// Observers for metrics; labels are handler names, never ids.
struct PoolHooks {
  std::function<void(const std::string& handler, int warm, int busy)> pool_size;
  std::function<void(const std::string& handler)> cold_start;
  // Set when chartflow runs as root: every handler process runs as this user instead.
  std::optional<RunAs> run_as;
};

class HandlerPool {
 public:
  // `wake_warmer` is called (with no lock held) when the pool may need processes started.
  HandlerPool(ExternalSpec spec, const PoolHooks& hooks, std::function<void()> wake_warmer);
  ~HandlerPool();

  struct Lease {
    std::unique_ptr<HandlerProcess> process;
    bool cold = false;  // started for this call: the caller pays the start-up
  };
  // A warm process when one is idle, else a new one while under the concurrency cap, else waits
  // for one until `deadline` (nullopt then). Throws when the program cannot be started.
  std::optional<Lease> acquire(SteadyTime deadline);
  // Back into the pool when `reuse` and it is alive and under max_invocations; else it is killed.
  void release(std::unique_ptr<HandlerProcess> process, bool reuse);

  const ExternalSpec& spec() const { return spec_; }
  // For the warmer: reserves and returns how many processes to start now.
  int reserve_warm();
  void add_warm(std::unique_ptr<HandlerProcess> process);  // nullptr: the start failed
  void shutdown();

 private:
  void report();  // with mu_ held
  // With mu_ held: fewer idle or starting processes than min_warm, and room for more. The warmer
  // is woken only then, so a steady stream of invocations costs it no wake-ups.
  bool short_of_warm() const;

  const ExternalSpec spec_;
  const PoolHooks& hooks_;
  std::function<void()> wake_warmer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<HandlerProcess>> idle_;
  int busy_ = 0;
  int starting_ = 0;
  bool closed_ = false;
  SteadyTime warm_backoff_until_{};
};

class PoolSet {
 public:
  explicit PoolSet(PoolHooks hooks);
  ~PoolSet();

  HandlerPool& pool(const ExternalSpec& spec);

 private:
  void warmer_loop();
  void poke();

  PoolHooks hooks_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<HandlerPool>> pools_;  // by spec identity
  bool stopping_ = false;
  bool poked_ = false;
  std::thread warmer_;
};

}  // namespace chartflow::runtime::external
