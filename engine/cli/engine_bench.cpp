#include "cli/engine_bench.hpp"

#include <iostream>

namespace chartflow::bench {

int run_engine_bench(const std::map<std::string, std::string>&) {
  std::cerr << "bench: not implemented yet\n";
  return 2;
}

}  // namespace chartflow::bench
