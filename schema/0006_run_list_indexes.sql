-- The dashboard's runs list filters by workflow and status and pages newest first by id
-- (store/query_store.cpp: list_runs). With only the created_at-ordered indexes, a workflow and
-- status that match few or no runs made PostgreSQL walk the primary key backwards over every
-- run (85 ms at 100,000 runs, growing with the table; `chartflow bench-dashboard`); this index
-- answers them in the list's own order.
CREATE INDEX workflow_run_workflow_status_idx ON workflow_run (workflow, status, id DESC);
