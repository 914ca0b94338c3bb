// The problems found in one workflow file, each with its line, collected rather than thrown so
// that a load reports all of them in one pass. One per load; not thread-safe.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "config/workflow_loader.hpp"

namespace chartflow::config {

class ErrorList {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}

  void add(int line, std::string message) { errors_.push_back({file_, line, std::move(message)}); }
  bool empty() const { return errors_.empty(); }
  std::size_t size() const { return errors_.size(); }

  // The errors in line order, leaving the list empty. Parsing goes depth first and graph checks
  // come last; line order reads better.
  std::vector<ConfigError> take_sorted() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    return std::exchange(errors_, {});
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

}  // namespace chartflow::config
