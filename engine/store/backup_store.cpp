// Backups (issue #19): what `chartflow backup` records, and what the metrics sample of backups
// and of PostgreSQL's WAL archiver.
#include "store/store.hpp"
#include "store/store_impl.hpp"

namespace chartflow::store {

void Store::record_backup(const BackupRecord& backup) {
  translate(*impl_, [&] {
    pqxx::work tx(impl_->conn);
    tx.exec_params(
        "INSERT INTO backup_history (started_at, finished_at, target, bytes, wal_archive) "
        "VALUES ($1::timestamptz, $2::timestamptz, $3, $4, $5)",
        backup.started_at, backup.finished_at, backup.target, backup.bytes, backup.wal_archive);
    tx.commit();
  });
}

Json Store::backup_stats() {
  return translate(*impl_, [&] {
    pqxx::read_transaction tx(impl_->conn);
    // pg_stat_archiver is readable without privileges; its counters are the server's since its
    // statistics were last reset, zero when archive_mode is off.
    auto r = tx.exec(
        "SELECT jsonb_build_object("
        " 'last_backup', coalesce((SELECT extract(epoch FROM max(finished_at)) FROM "
        "   backup_history), 0),"
        " 'archiving', current_setting('archive_mode') <> 'off',"
        " 'archived', a.archived_count, 'failed', a.failed_count,"
        " 'last_archived', coalesce(extract(epoch FROM a.last_archived_time), 0),"
        " 'last_failed', coalesce(extract(epoch FROM a.last_failed_time), 0))::text "
        "FROM pg_stat_archiver a");
    return Json::parse(r[0][0].c_str());
  });
}

}  // namespace chartflow::store
