// `chartflow bench-retention`: issue #17 item 5's benchmark (docs/operations.md, "Retention").
#pragma once

#include <map>
#include <string>

namespace chartflow::bench {

int run_retention_bench(const std::map<std::string, std::string>& options);

}  // namespace chartflow::bench
