// Parses one workflow file's text into a core::Workflow: the document as a whole, its triggers
// and steps, each value checked as it is read (NodeReader, workflow_validation). Single use:
// construct, call load(), read the result. Not thread-safe; the HandlerCheck must outlive it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "config/error_list.hpp"
#include "config/node_reader.hpp"
#include "config/workflow_loader.hpp"
#include "config/workflow_validation.hpp"
#include "core/workflow.hpp"

namespace chartflow::config {

class WorkflowParser {
 public:
  WorkflowParser(std::string file, const HandlerCheck& handlers)
      : file_(std::move(file)), handlers_(handlers), errors_(file_) {}

  LoadResult load(const std::string& text);
  // Line of the workflow's name, for messages about it in other files; 0 when it has none.
  int name_line() const { return name_line_; }

 private:
  void error(int line, std::string message) { errors_.add(line, std::move(message)); }
  LoadResult finish();  // the errors in line order, the workflow if there are none

  void parse_workflow(const YAML::Node& root);
  void parse_trigger(const YAML::Node& node, int index, int fallback_line);
  std::optional<core::Debounce> parse_debounce(const Entry& e, const std::string& where);
  void parse_steps(const Entry& e);
  ParsedStep parse_step(const Entry& e);
  bool parse_handler(const Entry& e, const std::string& where, core::HandlerSpec& out);
  void validate_handler(const core::Step& step, int line, const std::string& where);
  void parse_external_handler(const Entry& e, const std::string& where);
  void parse_retry(const Entry& e, const std::string& where, core::RetryPolicy& out);
  void parse_on_exhausted(const Entry& e, const std::string& where, core::OnExhausted& out);
  void parse_for_each(const Entry& e, const std::string& where, ParsedStep& p);
  void parse_child(const Entry& e, const std::string& where, core::Step& step);
  void parse_concurrency(const Entry& e, const std::string& where, core::Concurrency& out);

  std::string file_;
  const HandlerCheck& handlers_;
  ErrorList errors_;
  NodeReader reader_{errors_};
  core::Workflow workflow_;
  int name_line_ = 0;
  core::OnExhausted on_exhausted_ = core::OnExhausted::kFail;  // the workflow's default for steps
};

}  // namespace chartflow::config
