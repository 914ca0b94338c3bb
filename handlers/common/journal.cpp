#include "handlers/common/journal.hpp"

namespace chartflow::handlers {

namespace {
constexpr std::chrono::milliseconds kLeaseMargin{30'000};
}  // namespace

std::optional<Json> journal_one(StepContext& ctx, std::string_view statement,
                                const util::SqlParams& params) {
  std::optional<Json> row;
  ctx.journal([&](Sql& sql) { row = util::query_one(sql, statement, params); });
  return row;
}

std::string lease_millis(std::chrono::milliseconds call_timeout) {
  return std::to_string((call_timeout + kLeaseMargin).count());
}

}  // namespace chartflow::handlers
