#include "app/fd_limit.hpp"

#include <sys/resource.h>

#include <algorithm>

namespace chartflow::cli {

FdBudget fit_connections_to_fd_limit(http::ServerSettings& server) {
  FdBudget budget;
  budget.requested = server.max_connections;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    budget.max_connections = server.max_connections;
    return budget;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  budget.limit = lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(lim.rlim_cur);
  if (budget.limit > 0) {
    // At least a few connections even under a tiny limit: a server that admits none is down.
    const int fit = static_cast<int>(std::max<long>(8, budget.limit - kFdReserve));
    // No cap of its own (0) still means none past the limit: a server out of descriptors
    // cannot reach its database or start a handler.
    if (server.max_connections == 0 || server.max_connections > fit) {
      server.max_connections = fit;
      if (server.max_connections_per_client > fit) server.max_connections_per_client = fit;
      budget.lowered = true;
    }
  }
  budget.max_connections = server.max_connections;
  return budget;
}

}  // namespace chartflow::cli
