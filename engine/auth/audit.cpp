#include "auth/audit.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "engine/util/hash.hpp"
#include "engine/util/sql_rows.hpp"
#include "store/audit_store.hpp"

namespace chartflow::auth {
namespace {

constexpr int kVerifyPage = 1000;
std::atomic<bool> g_unsealed{false};
// The minute (since the epoch) of the newest refusal this process counted, 0 for none: once that
// minute is over its bucket is ready to be folded into a record.
std::atomic<std::int64_t> g_refusal_minute{0};

std::int64_t current_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> detail_text(const AuditEntry& e, const char* key, std::size_t max) {
  if (!e.detail.is_object() || !e.detail.contains(key) || !e.detail.at(key).is_string())
    return std::nullopt;
  return clip(e.detail.at(key).get<std::string>(), max);
}

// FHIR AuditEvent.action: C(reate) R(ead) U(pdate) D(elete) E(xecute).
std::string fhir_action(const std::string& action) {
  const auto dot = action.rfind('.');
  const std::string verb = dot == std::string::npos ? action : action.substr(dot + 1);
  if (verb == "read" || verb == "list" || verb == "export") return "R";
  if (verb == "upload" || verb == "create") return "C";
  if (verb == "revoke") return "D";
  if (verb == "decide") return "U";
  return "E";
}

}  // namespace

std::string clip(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t n = max_bytes;
  // Back off continuation bytes (10xxxxxx) so the cut falls between characters.
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n));
}

void record(Sql& sql, const AuditEntry& e) {
  if (auto path = detail_text(e, "path", kMaxAuditPath);
      path && path->size() < e.detail.at("path").get_ref<const std::string&>().size()) {
    AuditEntry clipped = e;
    clipped.detail["path"] = *path;
    store::insert_audit_event(sql, clipped);
  } else {
    store::insert_audit_event(sql, e);
  }
  g_unsealed.store(true, std::memory_order_relaxed);
}

void count_refusal(Sql& sql, const AuditEntry& e) {
  std::optional<std::string> name;
  if (e.actor_name) name = clip(*e.actor_name, 100);
  store::count_audit_refusal(sql, e.action, e.outcome, e.remote.value_or(""),
                             detail_text(e, "reason", 200), detail_text(e, "path", kMaxAuditPath),
                             name);
  g_refusal_minute.store(current_minute(), std::memory_order_relaxed);
}

int seal(Sql& sql) {
  store::fold_audit_refusals(sql);
  return store::seal_audit_events(sql);
}

bool take_unsealed() {
  bool due = g_unsealed.exchange(false, std::memory_order_relaxed);
  std::int64_t minute = g_refusal_minute.load(std::memory_order_relaxed);
  if (minute != 0 && minute < current_minute() &&
      g_refusal_minute.compare_exchange_strong(minute, 0, std::memory_order_relaxed))
    due = true;
  return due;
}

void record_pending_again() { g_unsealed.store(true, std::memory_order_relaxed); }

Json query_audit(Sql& sql, const AuditFilter& f) {
  seal(sql);
  AuditFilter page = f;
  page.limit = std::clamp(f.limit, 1, 1000);
  Json events = store::audit_events(sql, page);
  Json out{{"events", events}, {"next", nullptr}};
  if (static_cast<int>(events.size()) == page.limit)
    out["next"] = std::to_string(events.back().at("id").get<std::int64_t>());
  return out;
}

Json to_fhir_bundle(const Json& events) {
  Json entries = Json::array();
  for (const auto& e : events) {
    const std::string outcome = e.value("outcome", "");
    Json agent{{"requestor", true}, {"who", {{"identifier", {{"value", e.value("actor", "")}}}}}};
    if (e.contains("actor_name") && e.at("actor_name").is_string())
      agent["who"]["display"] = e.at("actor_name");
    if (e.contains("role") && e.at("role").is_string())
      agent["role"] = Json::array({{{"text", e.at("role")}}});
    if (e.contains("remote") && e.at("remote").is_string())
      agent["network"] = {{"address", e.at("remote")}, {"type", "2"}};
    Json resource{{"resourceType", "AuditEvent"},
                  {"id", std::to_string(e.value("id", std::int64_t{0}))},
                  {"type",
                   {{"system", "http://terminology.hl7.org/CodeSystem/audit-event-type"},
                    {"code", "rest"},
                    {"display", "RESTful Operation"}}},
                  {"subtype", Json::array({{{"system", "urn:chartflow:audit-action"},
                                            {"code", e.value("action", "")}}})},
                  {"action", fhir_action(e.value("action", ""))},
                  {"recorded", e.value("at", "")},
                  // 0 success, 4 minor failure (refused or bad request), 8 serious failure.
                  {"outcome", outcome == "success" ? "0" : "4"},
                  {"agent", Json::array({agent})},
                  {"source", {{"observer", {{"display", "chartflow"}}}}}};
    if (e.contains("resource_type") && e.at("resource_type").is_string()) {
      Json what{{"type", e.at("resource_type")}};
      if (e.contains("resource_id") && e.at("resource_id").is_string())
        what["identifier"] = {{"value", e.at("resource_id")}};
      resource["entity"] = Json::array({{{"what", what}}});
    }
    if (outcome != "success") resource["outcomeDesc"] = outcome;
    entries.push_back(
        {{"fullUrl", "urn:chartflow:audit-event:" + resource.at("id").get<std::string>()},
         {"resource", resource}});
  }
  return Json{{"resourceType", "Bundle"},
              {"type", "searchset"},
              {"total", entries.size()},
              {"entry", entries}};
}

AuditHead head(Sql& sql) {
  seal(sql);
  return store::audit_head(sql);
}

VerifyResult verify_chain(Sql& sql, const std::optional<std::string>& expected_head) {
  VerifyResult out;
  seal(sql);
  std::string prev;
  std::int64_t after = 0;
  for (;;) {
    // The canonical text is rebuilt here from the stored columns and hashed in C++, independent
    // of the trigger that computed the stored hash.
    Json rows = store::audit_chain_page(sql, after, kVerifyPage);
    for (const auto& row : rows) {
      std::string canonical;
      bool first = true;
      for (const char* col : {"id", "at", "actor", "actor_name", "role", "action", "resource_type",
                              "resource_id", "remote", "outcome", "detail"}) {
        if (!first) canonical += '\x1f';
        first = false;
        canonical += util::column_text(row, col).value_or("");
      }
      std::string chained = prev;
      chained += '\x1e';
      chained += canonical;
      const std::string expected = util::sha256_hex(chained);
      const std::string stored = util::column_text(row, "hash").value_or("");
      after = util::column_int(row, "seq").value_or(after);
      if (expected != stored) {
        out.ok = false;
        out.first_broken = util::column_int(row, "id");
        return out;
      }
      prev = stored;
      out.head_hash = stored;
      out.head_id = util::column_int(row, "id");
      out.head_at = util::column_text(row, "at").value_or("");
      ++out.checked;
      if (expected_head && stored == *expected_head) out.anchor_seq = after;
    }
    if (static_cast<int>(rows.size()) < kVerifyPage) break;
  }
  if (expected_head && !out.anchor_seq) out.ok = false;
  return out;
}

}  // namespace chartflow::auth
