// `chartflow tokens create|revoke|list`, `chartflow users create|disable|enable` and
// `chartflow audit verify [--expect-head HASH]`:
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

// `users disable NAME` ends the user's sessions and refuses its sign-ins; `users enable NAME`
// lets it sign in again (its old sessions stay ended).
int users_set_enabled(const Args& args, bool enabled) {
  const char* verb = enabled ? "enable" : "disable";
  if (args.positional.size() != 2)
    throw std::invalid_argument(std::string("users ") + verb + " needs NAME");
  const std::string& name = args.positional[1];
  CommandDatabase db(args);
  store::Store store(db.dsn());
  store.migrate(app::module_migrations());
  bool changed = false;
  store.with_sql([&](Sql& sql) {
    changed = auth::set_user_enabled(sql, name, enabled);
    if (changed) {
      auto entry = local_entry(enabled ? "user.enable" : "user.disable", name);
      entry.resource_type = "app_user";
      auth::record(sql, entry);
    }
    auth::seal(sql);
  });
  if (!changed) {
    std::cerr << "no " << (enabled ? "disabled" : "enabled") << " user named '" << name << "'\n";
    return 1;
  }
  std::cout << verb << "d user '" << name << "'" << (enabled ? "" : "; its sessions have ended")
            << "\n";
  return 0;
}

}  // namespace

int users(const Args& args) {
  const std::string sub = args.positional.empty() ? "" : args.positional[0];
  if (sub == "disable" || sub == "enable") return users_set_enabled(args, sub == "enable");
  if (sub != "create")
    throw std::invalid_argument(
        "usage: chartflow users create --name NAME --role ROLE [--assignee PRACTITIONER] "
        "(password on stdin) | disable NAME | enable NAME");
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
  if (sub != "verify")
    throw std::invalid_argument("usage: chartflow audit verify [--expect-head HASH]");
  // A head hash noted earlier (the server's audit head export): the chain must still hold that
  // record, which catches the removal of the newest records that the chain alone cannot.
  const auto expected = args.get("expect-head");
  if (expected && (expected->size() != 64 ||
                   expected->find_first_not_of("0123456789abcdef") != std::string::npos))
    throw std::invalid_argument("--expect-head must be a 64-digit lower-case hex SHA-256");
  CommandDatabase db(args);
  store::Store store(db.dsn());
  store.migrate(app::module_migrations());
  auth::VerifyResult result;
  store.with_sql([&](Sql& sql) { result = auth::verify_chain(sql, expected); });
  if (!result.ok && !result.first_broken) {
    std::cerr << "audit trail BROKEN: no record has the expected head hash " << *expected
              << " (the chain holds " << result.checked << " intact record(s), head "
              << (result.head_hash.empty() ? "-" : result.head_hash)
              << "): the newest records were removed, or the whole chain rewritten\n";
    return 3;
  }
  if (!result.ok) {
    std::cerr << "audit trail BROKEN at record " << *result.first_broken << " (after "
              << result.checked << " intact record(s)): it was changed, or a record before it "
              << "was removed\n";
    return 3;
  }
  std::cout << "audit trail intact: " << result.checked << " record(s), head hash "
            << (result.head_hash.empty() ? "-" : result.head_hash) << "\n";
  if (result.head_id)
    std::cout << "the chain ends at record " << *result.head_id << ", written " << result.head_at
              << "\n";
  if (result.anchor_seq)
    std::cout << "expected head found: record " << *result.anchor_seq << ", "
              << (result.checked - *result.anchor_seq) << " record(s) since\n";
  return 0;
}

}  // namespace chartflow::cli
