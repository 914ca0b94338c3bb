// `chartflow tokens create|revoke|list`, `chartflow users create` and `chartflow audit verify`:
// work on the database directly (see CommandDatabase), with or without a running server. Each
// change is audited in its own transaction.
#include <iostream>

#include "app/commands.hpp"
#include "app/database.hpp"
#include "app/modules.hpp"
#include "auth/audit.hpp"
#include "auth/tokens.hpp"
#include "auth/users.hpp"
#include "store/store.hpp"

namespace chartflow::cli {
namespace {

auth::AuditEntry local_entry(const std::string& action, const std::string& resource_id) {
  auth::AuditEntry e;
  e.actor = local_actor();
  e.action = action;
  e.resource_type = "api_token";
  e.resource_id = resource_id;
  e.remote = "local";
  return e;
}

int tokens_create(store::Store& store, const Args& args) {
  auth::TokenSpec spec;
  spec.role = args.get_or("role", "");
  spec.name = args.get_or("name", "");
  spec.assignee = args.get("assignee");
  if (auto e = args.get("expires")) spec.expires_in = auth::parse_expiry(*e);
  spec.created_by = local_actor();
  if (spec.role.empty() || spec.name.empty())
    throw std::invalid_argument("tokens create needs --role ROLE and --name NAME");
  auth::CreatedToken created;
  store.with_sql([&](Sql& sql) {
    created = auth::create_token(sql, spec);
    auto entry = local_entry("token.create", std::to_string(created.id));
    entry.detail = {{"name", spec.name}, {"role", spec.role}};
    auth::record(sql, entry);
    auth::seal(sql);  // a one-off command: no server's sealer may run soon
  });
  std::cerr << "created token " << created.id << " '" << spec.name << "' (role " << spec.role
            << "); it is shown only this once:\n";
  std::cout << created.token << std::endl;
  return 0;
}

int tokens_revoke(store::Store& store, const Args& args) {
  if (args.positional.size() != 2) throw std::invalid_argument("tokens revoke needs ID or NAME");
  std::optional<std::int64_t> id;
  store.with_sql([&](Sql& sql) {
    id = auth::revoke_token(sql, args.positional[1]);
    if (id) auth::record(sql, local_entry("token.revoke", std::to_string(*id)));
    auth::seal(sql);
  });
  if (!id) {
    std::cerr << "no live token with id or name '" << args.positional[1] << "'\n";
    return 1;
  }
  std::cout << "revoked token " << *id << "\n";
  return 0;
}

int tokens_list(store::Store& store) {
  Json rows;
  store.with_sql([&](Sql& sql) { rows = auth::list_tokens(sql); });
  std::cout << "ID\tNAME\tROLE\tSTATUS\tASSIGNEE\tCREATED\tEXPIRES\n";
  for (const auto& r : rows) {
    auto text = [&](const char* k) {
      return r.value(k, Json()).is_string() ? r.at(k).get<std::string>() : "-";
    };
    std::cout << text("id") << "\t" << text("name") << "\t" << text("role") << "\t"
              << text("status") << "\t" << text("assignee") << "\t" << text("created_at") << "\t"
              << text("expires_at") << "\n";
  }
  return 0;
}

// The password comes from stdin (first line), never from the command line, where `ps` and
// shell history would show it.
std::string read_password() {
  std::string password;
  std::getline(std::cin, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

}  // namespace

int users(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub != "create")
    throw std::invalid_argument(
        "usage: chartflow users create --name NAME --role ROLE [--assignee PRACTITIONER] "
        "(password on stdin)");
  const std::string name = args.get_or("name", "");
  const std::string role = args.get_or("role", "");
  if (name.empty() || role.empty())
    throw std::invalid_argument("users create needs --name NAME and --role ROLE");
  const std::string password = read_password();
  CommandDatabase db(args);
  store::Store store(db.dsn());
  store.migrate(app::module_migrations());
  store.with_sql([&](Sql& sql) {
    auth::create_user(sql, name, role, args.get("assignee"), password);
    auto entry = local_entry("user.create", name);
    entry.resource_type = "app_user";
    entry.detail = {{"role", role}};
    auth::record(sql, entry);
    auth::seal(sql);
  });
  std::cout << "created user '" << name << "' (role " << role << ")\n";
  return 0;
}

int tokens(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub != "create" && sub != "revoke" && sub != "list")
    throw std::invalid_argument(
        "usage: chartflow tokens create --role ROLE --name NAME [--expires 30d] [--assignee "
        "PRACTITIONER] | revoke ID|NAME | list");
  CommandDatabase db(args);
  store::Store store(db.dsn());
  store.migrate(app::module_migrations());
  if (sub == "create") return tokens_create(store, args);
  if (sub == "revoke") return tokens_revoke(store, args);
  return tokens_list(store);
}

int audit(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub != "verify") throw std::invalid_argument("usage: chartflow audit verify");
  CommandDatabase db(args);
  store::Store store(db.dsn());
  store.migrate(app::module_migrations());
  auth::VerifyResult result;
  store.with_sql([&](Sql& sql) { result = auth::verify_chain(sql); });
  if (!result.ok) {
    std::cerr << "audit trail BROKEN at record " << *result.first_broken << " (after "
              << result.checked << " intact record(s)): it was changed, or a record before it "
              << "was removed\n";
    return 3;
  }
  std::cout << "audit trail intact: " << result.checked << " record(s), head hash "
            << (result.head_hash.empty() ? "-" : result.head_hash) << "\n";
  return 0;
}

}  // namespace chartflow::cli
