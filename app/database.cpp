#include "app/database.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "app/server_options.hpp"
#include "app/settings.hpp"

namespace chartflow::cli {

CommandDatabase::CommandDatabase(const Args& command_line) {
  const Args args = with_database_settings(command_line);
  if (auto url = database_url(args)) {
    dsn_ = *url;
    return;
  }
  const std::filesystem::path data_dir = args.get_or("data-dir", kDefaultDataDir);
  embedded_ = std::make_unique<runtime::EmbeddedPostgres>(data_dir);
  try {
    dsn_ = embedded_->start();
  } catch (const runtime::DataDirInUse&) {
    // A server holds the data dir: talk to its cluster instead of starting one.
    auto running = runtime::EmbeddedPostgres::running_conninfo(data_dir);
    if (!running) throw;
    embedded_.reset();
    dsn_ = *running;
  }
}

std::string local_actor() {
  const passwd* pw = ::getpwuid(::geteuid());
  return std::string("cli:") + (pw != nullptr ? pw->pw_name : std::to_string(::geteuid()));
}

}  // namespace chartflow::cli
