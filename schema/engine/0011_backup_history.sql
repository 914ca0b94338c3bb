-- Base backups taken by `chartflow backup` (issue #19), for the
-- chartflow_backup_last_success_timestamp_seconds metric and its alert. Recorded in the cluster
-- that was backed up, after the backup finished (so a backup never holds its own row). Holds no
-- patient data: a path the operator chose, sizes and times.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
CREATE TABLE backup_history (
  id           bigserial PRIMARY KEY,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  target       text NOT NULL,
  bytes        bigint NOT NULL CHECK (bytes >= 0),
  wal_archive  text
);
CREATE INDEX backup_history_finished_at ON backup_history (finished_at);
