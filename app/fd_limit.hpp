// The server's share of the process's file descriptors. Each open connection holds one, and so
// do database connections, handler pipes and the files chartflow writes: a connection flood
// that took them all would leave requests on already-open connections unable to reach the
// database. So the connection cap is held below the descriptor limit with a reserve.
#pragma once

#include "http/server.hpp"

namespace chartflow::cli {

// Descriptors kept for everything but client connections.
inline constexpr int kFdReserve = 64;

struct FdBudget {
  long limit = 0;           // RLIMIT_NOFILE's soft limit after raising it
  int requested = 0;        // the cap asked for (0: none)
  int max_connections = 0;  // the cap in force
  bool lowered = false;     // the requested cap did not fit under the limit
};

// Raises the soft descriptor limit to the hard one (the usual soft limit of 1024 is a default
// for old select() programs, not a policy), then lowers `server.max_connections` to the limit
// minus kFdReserve when it (or no cap at all: 0) would not fit.
FdBudget fit_connections_to_fd_limit(http::ServerSettings& server);

}  // namespace chartflow::cli
