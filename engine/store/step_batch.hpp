// The StepBatch of store.hpp over one libpqxx connection: the transaction a worker finishes a
// batch of claimed steps in, with the steps' own writes. Made by Store::begin_batch; lives no
// longer than that Store and is used by the same thread. Only store/ includes this.
//
// The transaction is opened and closed by hand (BEGIN/COMMIT over a libpqxx nontransaction), so
// that it is opened only when something has to be written before the commit: a batch whose
// steps wrote nothing themselves is finished, logged and followed by the next claim in one
// statement that commits by itself (step_commit, schema/engine/0002_queue.sql).
// Savepoints are issued by hand too (libpqxx 6.4's subtransaction does not open its savepoint
// for exec_params, which would let a failed attempt's writes through), and only where needed: a
// step's writes are isolated by one only when earlier steps' writes in the transaction must
// survive its failure; the first writer's are discarded by rolling the transaction back.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

class BatchImpl : public StepBatch {
 public:
  explicit BatchImpl(Store::Impl& impl) : impl_(impl), tx_(impl.conn) {}
  ~BatchImpl() override;
  BatchImpl(const BatchImpl&) = delete;
  BatchImpl& operator=(const BatchImpl&) = delete;

  Sql& sql() override;
  void discard_step_writes() override;
  bool finish_done(const ClaimedStep& s, const std::string& owner, const Json& output,
                   bool skipped) override;
  bool finish_retry(const ClaimedStep& s, const std::string& owner, std::chrono::milliseconds after,
                    const std::string& error) override;
  bool finish_failed(const ClaimedStep& s, const std::string& owner,
                     const std::string& error) override;
  // In park_store.cpp.
  bool finish_parked(const ClaimedStep& s, const std::string& owner,
                     const std::string& error) override;
  bool finish_wait(const ClaimedStep& s, const std::string& owner,
                   const std::optional<std::string>& signal,
                   const std::optional<TimePoint>& until) override;
  // In for_each_store.cpp.
  bool finish_fanned_out(const ClaimedStep& s, const std::string& owner,
                         const std::vector<StepPlan>& elements) override;
  // In child_run_store.cpp.
  bool finish_child_started(const ClaimedStep& s, const std::string& owner, const EventInput& child,
                            const Store::PlanRuns& plan, std::int64_t& child_run_id) override;
  int promoted() const override { return promoted_; }
  void log(const LogRecord& rec) override { logs_.push_back(rec); }
  const std::vector<std::string>& succeeded_runs() const override { return succeeded_runs_; }
  const std::vector<std::int64_t>& succeeded_run_ids() const override { return succeeded_run_ids_; }
  const std::vector<std::int64_t>& failed_run_ids() const override { return failed_run_ids_; }
  const std::string& last_run_status() const override { return last_run_status_; }
  void emit_succeeded_with(const Store::PlanRuns& plan) override { succeeded_plan_ = plan; }
  void emit_run_end(std::int64_t run_id, const Store::PlanRuns& plan) override;
  std::vector<ClaimedStep> commit(const std::string& owner, int claim_next,
                                  std::chrono::milliseconds lease, bool include_keyed) override;

 private:
  // The transaction for a write outside the current step's own (finishes, history, events):
  // opened if need be; what is written through it stays, whatever a later step does.
  pqxx::transaction_base& cur();
  // The deferred steps that wrote and are no longer this owner's at their attempt.
  std::vector<std::pair<std::int64_t, std::string>> lost_steps(const std::string& owner);
  // The step's writes stay. Its savepoint is released lazily (with the next step's, or by
  // COMMIT): a later step's rollback only ever goes back to that later step's own savepoint.
  void keep_step_writes();

  Store::Impl& impl_;
  pqxx::nontransaction tx_;  // BEGIN and COMMIT are sent by hand, see the class comment
  TxSql sql_{tx_, &impl_};
  bool open_ = false;             // BEGIN was sent
  bool dirty_ = false;            // the transaction holds writes that must survive a later step
  bool in_step_ = false;          // the current step has been handed sql()
  bool step_savepoint_ = false;   // ... inside its own savepoint
  bool release_pending_ = false;  // a kept step's savepoint is still open, see keep_step_writes
  std::vector<LogRecord> logs_;
  Json deferred_ = Json::array();           // finish_done calls not yet sent, see commit
  std::vector<std::int64_t> waiting_runs_;  // runs to mark waiting at commit, see finish_wait
  Store::PlanRuns succeeded_plan_;          // see emit_succeeded_with
  std::vector<std::string> succeeded_runs_;
  std::vector<std::int64_t> succeeded_run_ids_;
  std::vector<std::int64_t> failed_run_ids_;
  std::string last_run_status_;
  bool notify_ = false;  // runs were started by a run-end event
  int promoted_ = 0;     // see promoted()
};

}  // namespace chartflow::store
