// The three kinds of database failure the rest of the engine distinguishes (see STYLE.md §4).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace chartflow::store {

// Broken connection, serialization failure, deadlock: retry the whole transaction.
class TransientError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A unique violation on an idempotency key: the work was already done.
class ConflictError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Anything else: a bug or a misconfigured database.
class FatalError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A batch's commit found that a step it ran and that wrote had lost its lease (another worker
// took the step over): the batch's transaction is rolled back as a whole.
class LeaseLost : public std::runtime_error {
 public:
  explicit LeaseLost(std::vector<std::pair<std::int64_t, std::string>> lost)
      : std::runtime_error("a step of the batch lost its lease"), steps(std::move(lost)) {}
  std::vector<std::pair<std::int64_t, std::string>> steps;  // (run_id, step_key)
};

}  // namespace chartflow::store
