#include "store/store.hpp"

#include <algorithm>
#include <atomic>
#include <set>
#include <utility>

#include "store/migrations.hpp"
#include "store/secret_redaction.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

namespace {
std::atomic<std::uint64_t> g_statements{0};
std::atomic<std::int64_t> g_call_timeout_ms{35'000};
// Written once at start-up, before other threads run (see set_query_observer).
Store::QueryObserver g_query_observer;
}  // namespace

void count_statement() { g_statements.fetch_add(1, std::memory_order_relaxed); }
std::uint64_t Store::statements_issued() { return g_statements.load(); }

void Store::set_query_observer(QueryObserver observer) { g_query_observer = std::move(observer); }

QueryTimer::~QueryTimer() {
  if (!g_query_observer) return;
  // The constructor makes the connection: call that what it is.
  const std::string_view kind = std::string_view(kind_) == "Store" ? "connect" : kind_;
  g_query_observer(
      kind, std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
}

Json rows_to_json(const pqxx::result& r) {
  Json out = Json::array();
  for (const auto& row : r) {
    Json o = Json::object();
    for (const auto& f : row) {
      if (f.is_null())
        o[f.name()] = nullptr;
      else
        o[f.name()] = f.c_str();
    }
    out.push_back(std::move(o));
  }
  return out;
}

Json exec_json(pqxx::transaction_base& tx, std::string_view statement,
               const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> raw;
  raw.reserve(params.size());
  for (const auto& p : params) raw.push_back(opt(p));
  return rows_to_json(
      tx.exec_params(std::string(statement), pqxx::prepare::make_dynamic_params(raw)));
}

Json TxSql::query(std::string_view statement,
                  const std::vector<std::optional<std::string>>& params) {
  constexpr std::size_t kMaxAutoPrepared = 256;  // statements built on the fly stay unprepared
  if (impl_ == nullptr) return exec_json(tx_, statement, params);
  std::string text(statement);
  auto it = impl_->auto_prepared.find(text);
  if (it == impl_->auto_prepared.end()) {
    if (impl_->auto_prepared.size() >= kMaxAutoPrepared) {
      CallDeadline deadline(impl_->fd(), impl_->call_timeout);
      return exec_json(tx_, statement, params);
    }
    const std::string name = "auto_" + std::to_string(impl_->auto_names++);
    impl_->conn.prepare(name, text);
    it = impl_->auto_prepared.emplace(std::move(text), name).first;
  }
  std::vector<const char*> raw;
  raw.reserve(params.size());
  for (const auto& p : params) raw.push_back(opt(p));
  CallDeadline deadline(impl_->fd(), impl_->call_timeout);
  return rows_to_json(tx_.exec_prepared(it->second, pqxx::prepare::make_dynamic_params(raw)));
}

void Store::set_call_timeout(std::chrono::milliseconds timeout) {
  g_call_timeout_ms = std::max<std::int64_t>(timeout.count(), 1000);
}

std::chrono::milliseconds Store::call_timeout() {
  return std::chrono::milliseconds(g_call_timeout_ms.load());
}

Store::Impl::Impl(const std::string& dsn)
    : conn(with_network_timeouts(dsn)), call_timeout(Store::call_timeout()) {
  // The server gives up on a statement or a lock wait before the watchdog would: a slow
  // statement is an error of its own, not a lost connection.
  const auto statement = std::max<std::int64_t>(call_timeout.count() - 5000, 500);
  const auto lock = std::max<std::int64_t>(statement * 2 / 3, 250);
  CallDeadline deadline(fd(), call_timeout);
  pqxx::nontransaction tx(conn);
  tx.exec("SET statement_timeout = " + std::to_string(statement) +
          "; SET lock_timeout = " + std::to_string(lock));
}

Store::Store(const std::string& dsn) {
  // Connection errors can quote the connection string; the password stays out of them.
  try {
    impl_ = translate([&] { return std::make_unique<Impl>(dsn); });
  } catch (const TransientError& e) {
    throw TransientError(redact_secrets(e.what(), dsn));
  } catch (const ConflictError& e) {
    throw FatalError(redact_secrets(e.what(), dsn));
  } catch (const std::exception& e) {
    throw FatalError(redact_secrets(e.what(), dsn));
  }
}

Store::~Store() = default;

bool Store::connected() const { return impl_ && impl_->conn.is_open(); }

void Store::ping(std::chrono::milliseconds budget) {
  CallDeadline deadline(impl_->fd(), budget);
  translate([&] {
    pqxx::nontransaction tx(impl_->conn);
    tx.exec("SELECT 1");
  });
}

int Store::migrate(const std::vector<MigrationSet>& modules) {
  // A migration may rewrite a large table: no statement limit, and an hour before the watchdog.
  CallDeadline deadline(impl_->fd(), kLongCallTimeout);
  return translate([&] {
    pqxx::work tx(impl_->conn);
    tx.exec("SET LOCAL statement_timeout = 0");
    const int applied = apply_migrations(tx, modules);
    tx.commit();
    return applied;
  });
}

WorkflowVersion Store::register_workflow(const std::string& name, const std::string& content_hash,
                                         const Json& definition, const std::string& source_file) {
  return translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    // Serialises version numbering per name across processes.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('workflow:' || $1))", name);
    WorkflowVersion v;
    auto existing = tx.exec_params(
        "SELECT id, version FROM workflow_version WHERE name = $1 AND content_hash = $2", name,
        content_hash);
    if (!existing.empty()) {
      v.id = existing[0][0].as<std::int64_t>();
      v.version = existing[0][1].as<int>();
    } else {
      auto row = tx.exec_params1(
          "INSERT INTO workflow_version (name, version, content_hash, definition, source_file) "
          "SELECT $1, coalesce(max(version), 0) + 1, $2, $3::jsonb, $4 FROM workflow_version "
          "WHERE name = $1 RETURNING id, version",
          name, content_hash, definition.dump(), source_file);
      v.id = row[0].as<std::int64_t>();
      v.version = row[1].as<int>();
      v.created = true;
    }
    tx.commit();
    v.name = name;
    v.content_hash = content_hash;
    v.definition = definition;
    return v;
  });
}

std::optional<WorkflowVersion> Store::workflow_version(std::int64_t id) {
  return translate(*impl_, [&]() -> std::optional<WorkflowVersion> {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec_params(
        "SELECT id, name, version, content_hash, definition FROM workflow_version WHERE id = $1",
        id);
    if (r.empty()) return std::nullopt;
    WorkflowVersion v;
    v.id = r[0][0].as<std::int64_t>();
    v.name = r[0][1].c_str();
    v.version = r[0][2].as<int>();
    v.content_hash = r[0][3].c_str();
    v.definition = Json::parse(r[0][4].c_str());
    return v;
  });
}

std::vector<WorkflowVersion> Store::latest_workflows() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    std::vector<WorkflowVersion> out;
    for (const auto& row :
         tx.exec("SELECT DISTINCT ON (name) id, name, version, content_hash, definition "
                 "FROM workflow_version ORDER BY name, version DESC")) {
      WorkflowVersion v;
      v.id = row[0].as<std::int64_t>();
      v.name = row[1].c_str();
      v.version = row[2].as<int>();
      v.content_hash = row[3].c_str();
      v.definition = Json::parse(row[4].c_str());
      out.push_back(std::move(v));
    }
    return out;
  });
}

Json Store::list_workflows() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec(
        "SELECT coalesce(jsonb_agg(w ORDER BY w->>'name'), '[]'::jsonb) FROM ("
        "  SELECT jsonb_build_object("
        "    'name', v.name,"
        "    'latest_version', max(v.version),"
        "    'versions', jsonb_agg(jsonb_build_object('id', v.id, 'version', v.version,"
        "        'content_hash', v.content_hash, 'created_at', " CF_TS("v.created_at") ","
        "        'source_file', v.source_file, 'definition', v.definition) ORDER BY v.version DESC),"
        "    'recent_runs', coalesce((SELECT jsonb_object_agg(status, n) FROM (SELECT status, "
        "        count(*) AS n FROM workflow_run r WHERE r.workflow = v.name AND r.created_at > "
        "        now() - interval '24 hours' GROUP BY status) c), '{}'::jsonb)"
        "  ) AS w FROM workflow_version v GROUP BY v.name) t");
    return Json::parse(r[0][0].c_str());
  });
}

std::optional<Json> Store::event_body(std::int64_t event_id) {
  return translate(*impl_, [&]() -> std::optional<Json> {
    pqxx::read_transaction tx(impl_->conn);
    auto r = tx.exec_params("SELECT body FROM event WHERE id = $1", event_id);
    if (r.empty()) return std::nullopt;
    return Json::parse(r[0][0].c_str());
  });
}

std::map<std::int64_t, StoredEvent> Store::event_bodies(const std::vector<std::int64_t>& ids) {
  return translate(*impl_, [&] {
    std::map<std::int64_t, StoredEvent> out;
    if (ids.empty()) return out;
    std::string list = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) list += (i ? "," : "") + std::to_string(ids[i]);
    list += "}";
    // One statement, no transaction around it: a read-only transaction cost three more round
    // trips on every batch that met a new event.
    pqxx::nontransaction tx(impl_->conn);
    for (const auto& row :
         tx.exec_prepared(impl_->prepare("event_bodies",
                                         "SELECT id, body, trace_id, trace_parent FROM event "
                                         "WHERE id = ANY($1::bigint[])"),
                          list)) {
      StoredEvent ev{Json::parse(row[1].c_str()), std::nullopt, std::nullopt};
      if (!row[2].is_null()) ev.trace_id = row[2].c_str();
      if (!row[3].is_null()) ev.trace_parent = row[3].c_str();
      out.emplace(row[0].as<std::int64_t>(), std::move(ev));
    }
    return out;
  });
}

Json log_records_json(const std::vector<LogRecord>& records) {
  Json arr = Json::array();
  for (const auto& r : records) {
    Json o = {{"level", r.level}, {"message", r.message}, {"fields", r.fields}};
    if (r.workflow) o["workflow"] = *r.workflow;
    if (r.run_id) o["run_id"] = *r.run_id;
    if (r.step) o["step"] = *r.step;
    if (r.attempt) o["attempt"] = *r.attempt;
    arr.push_back(std::move(o));
  }
  return arr;
}

void Store::write_logs(const std::vector<LogRecord>& records) {
  if (records.empty()) return;
  translate(*impl_, [&] {
    const Json arr = log_records_json(records);
    pqxx::work tx(impl_->conn);
    tx.exec_params(
        "INSERT INTO log_record (level, message, workflow, run_id, step, attempt, fields) "
        "SELECT level, message, workflow, run_id, step, attempt, coalesce(fields, '{}') FROM "
        "jsonb_to_recordset($1::jsonb) AS x(level smallint, message text, workflow text, "
        "run_id bigint, step text, attempt int, fields jsonb)",
        arr.dump());
    tx.commit();
  });
}

// The callback may run many statements and work of its own between them: each statement has
// its own deadline (TxSql::query), not the callback as a whole.
void Store::with_sql(const std::function<void(Sql&)>& fn) {
  translate([&] {
    pqxx::work tx(impl_->conn);
    TxSql sql(tx, impl_.get());
    fn(sql);
    CallDeadline deadline(impl_->fd(), impl_->call_timeout);
    tx.commit();
  });
}

void Store::with_autocommit_sql(const std::function<void(Sql&)>& fn) {
  translate([&] {
    pqxx::nontransaction tx(impl_->conn);
    TxSql sql(tx, impl_.get());
    fn(sql);
  });
}

void Store::set_wake_origin(std::string origin) { impl_->wake_origin = std::move(origin); }

void Store::listen_wakeups(const std::string& ignore_origin) {
  translate(*impl_, [&] {
    std::string schema;
    {
      pqxx::read_transaction tx(impl_->conn);
      schema = tx.exec("SELECT current_schema()")[0][0].c_str();
    }
    impl_->receivers.push_back(
        std::make_unique<WakeReceiver>(impl_->conn, "chartflow_wakeup_" + schema, ignore_origin));
  });
}

bool Store::await_notification(std::chrono::milliseconds timeout) {
  return translate(
      [&] {
        auto take = [&] {
          int n = 0;
          for (auto& r : impl_->receivers) n += std::exchange(r->relevant, 0);
          return n > 0;
        };
        if (impl_->conn.get_notifs() > 0) return take();
        const auto secs = timeout.count() / 1000;
        const auto usecs = (timeout.count() % 1000) * 1000;
        impl_->conn.await_notification(secs, usecs);
        return take();
      },
      /*counted=*/false);
}

int Store::socket() const { return impl_->conn.sock(); }

}  // namespace chartflow::store
