// The dependency graph of a workflow's steps, as their `needs` lists give it: resolves each need
// to a step, orders the steps so each comes after all it needs, and finds the cycles that make
// such an order impossible. Pure logic for the workflow loader, which turns what it finds into
// messages. A StepGraph is an immutable value once built, safe to share between threads; it keeps
// no reference to the steps it was built from.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/workflow.hpp"

namespace chartflow::core {

class StepGraph {
 public:
  enum class NeedProblem {
    kSelf,     // a step needs itself
    kUnknown,  // no step has that name
    kTwice,    // the step already needs it
  };
  // A need that is left out of the graph, and why.
  struct BadNeed {
    std::size_t step = 0;  // index of the step in the list the graph was built from
    std::size_t need = 0;  // index into that step's needs
    NeedProblem problem = NeedProblem::kUnknown;
  };

  // `steps` in file order; only their names and needs are read. Step names are expected to be
  // unique (the loader rejects duplicates); with duplicates the first one of a name is meant.
  explicit StepGraph(const std::vector<Step>& steps);

  std::size_t size() const { return needs_.size(); }
  // The index of the step called `name`, if there is one.
  std::optional<std::size_t> find(std::string_view name) const;
  // In step order, then need order: the order the needs were written in.
  const std::vector<BadNeed>& bad_needs() const { return bad_needs_; }
  // The resolved needs of step `i` (step indices), bad ones left out.
  const std::vector<std::size_t>& needs(std::size_t i) const { return needs_.at(i); }
  // Every step after all it needs; among steps ready at the same time the earlier one goes
  // first, so the order is stable under unrelated edits. Steps on a cycle are left out (steps
  // that need them are not).
  const std::vector<std::size_t>& order() const { return order_; }
  // Each cycle once, starting at its lowest step index; each step needs the next, and the last
  // one needs the first.
  const std::vector<std::vector<std::size_t>>& cycles() const { return cycles_; }
  // For every step, whether step `i` needs it directly or transitively (never itself, unless on
  // a cycle).
  std::vector<bool> upstream(std::size_t i) const;

 private:
  void sort();

  std::map<std::string, std::size_t, std::less<>> index_;
  std::vector<std::vector<std::size_t>> needs_;
  std::vector<BadNeed> bad_needs_;
  std::vector<std::size_t> order_;
  std::vector<std::vector<std::size_t>> cycles_;
};

}  // namespace chartflow::core
