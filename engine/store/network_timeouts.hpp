// Connection parameters that bound how long a lost database host can hold a connection: without
// them libpq connects with no timeout and the kernel takes about 15 minutes to give up on a
// partitioned peer. Each is added unless the connection string sets it already.
#pragma once

#include <string>

namespace chartflow::store {

// `dsn` (a postgresql:// URL or key=value pairs) with connect_timeout, TCP keepalives and
// tcp_user_timeout added where absent.
std::string with_network_timeouts(const std::string& dsn);

}  // namespace chartflow::store
