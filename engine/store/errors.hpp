// The three kinds of database failure the rest of the engine distinguishes (see STYLE.md §4).
#pragma once

#include <stdexcept>

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

}  // namespace chartflow::store
