// Schema migrations compiled into the binary from schema/NNNN_*.sql (cmake/embed_migrations.cmake).
#pragma once

#include <string>
#include <vector>

namespace chartflow::store {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

const std::vector<Migration>& embedded_migrations();

}  // namespace chartflow::store
