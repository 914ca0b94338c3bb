// For the workflow-file tests: match a config error by file, line and words, and print the
// errors a test did not expect.
#pragma once

#include <gmock/gmock.h>

#include <string>
#include <vector>

#include "config/workflow_loader.hpp"

namespace chartflow::config {

inline auto error_in(const std::string& file, int line, const std::string& text) {
  using ::testing::Field;
  return ::testing::AllOf(Field(&ConfigError::file, file), Field(&ConfigError::line, line),
                          Field(&ConfigError::message, ::testing::HasSubstr(text)));
}

inline std::string dump(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

}  // namespace chartflow::config
