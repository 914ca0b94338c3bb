-- Pausing a workflow or one run (issue #17, item 1): while paused, no step of it is claimed;
-- events still start runs, whose steps queue. Steps already running finish as usual.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- Where the pause takes hold. A step becomes claimable on a dozen paths (ingest, a dependency
-- finishing, a retry's back-off, a timer, a signal, an operator's retry or skip...); rather than
-- teach each of them, the one place every step passes through before it runs does the check:
-- step_claim_rows. A candidate of a paused workflow or run is set aside there as 'paused' (its
-- former status kept in held_status), which takes it out of the claim index
-- (step_run_claim_idx covers 'ready' and 'retrying' only), so a paused workflow with a long
-- queue costs later claims nothing. Without any pause a claim pays two probes of empty tables.
-- Resuming gives the held steps their status back, keeping run_at and so their place in line;
-- a step of a run that is still paused another way is simply set aside again by its next claim.
CREATE TABLE workflow_pause (
  workflow  text PRIMARY KEY,
  paused_at timestamptz NOT NULL DEFAULT now(),
  paused_by text NOT NULL,
  reason    text
);

CREATE TABLE run_pause (
  run_id    bigint PRIMARY KEY REFERENCES workflow_run (id) ON DELETE CASCADE,
  paused_at timestamptz NOT NULL DEFAULT now(),
  paused_by text NOT NULL,
  reason    text
);

ALTER TABLE step_run ADD COLUMN held_status text;
ALTER TABLE step_run DROP CONSTRAINT step_run_status_check,
  ADD CONSTRAINT step_run_status_check CHECK (status IN ('pending', 'ready', 'running',
    'retrying', 'waiting', 'parked', 'paused', 'succeeded', 'failed', 'skipped', 'cancelled'));
CREATE INDEX step_run_paused_idx ON step_run (run_id) WHERE status = 'paused';
-- held: a claim set a step aside; paused and resumed: an operator's command on the run;
-- migrated: the run moved to another version of its workflow (store/run_migration_store.cpp,
-- issue #17 item 6), one rebuild of the check for both.
ALTER TABLE run_history DROP CONSTRAINT run_history_type_check,
  ADD CONSTRAINT run_history_type_check CHECK (type IN ('scheduled', 'started', 'succeeded',
    'failed', 'retried', 'waiting', 'signalled', 'skipped', 'cancelled', 'timed_out',
    'lease_expired', 'parked', 'held', 'paused', 'resumed', 'migrated'));

CREATE OR REPLACE FUNCTION step_claim_rows(p_owner text, p_lease_ms bigint, p_run_ids bigint[],
                                           p_step_keys text[], p_limited boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET jit = off
AS $$
BEGIN
  -- The candidates are row-locked by the caller, so what is set aside here cannot be claimed
  -- by anyone else meanwhile; what was set aside leaves the arrays the claim below reads. A
  -- paused run is looked up by key (a run that ended paused leaves its row behind and must not
  -- slow every claim).
  IF EXISTS (SELECT 1 FROM workflow_pause)
     OR EXISTS (SELECT 1 FROM run_pause WHERE run_id = ANY (p_run_ids)) THEN
    -- The pauses this claim acts on are share-locked until it commits: a resume deleting one
    -- waits, and its release then sees the steps set aside here (else they stayed paused).
    PERFORM 1 FROM workflow_pause w
    WHERE w.workflow IN (SELECT r.workflow FROM workflow_run r WHERE r.id = ANY (p_run_ids))
    FOR KEY SHARE;
    PERFORM 1 FROM run_pause p WHERE p.run_id = ANY (p_run_ids) FOR KEY SHARE;
    WITH held AS (
      UPDATE step_run s SET held_status = s.status, status = 'paused'
      FROM unnest(p_run_ids, p_step_keys) AS k(run_id, step_key), workflow_run r
      WHERE s.run_id = k.run_id AND s.step_key = k.step_key AND r.id = s.run_id
        AND (EXISTS (SELECT 1 FROM run_pause p WHERE p.run_id = r.id)
             OR EXISTS (SELECT 1 FROM workflow_pause w WHERE w.workflow = r.workflow))
      RETURNING s.run_id, s.step_key),
    h AS (INSERT INTO run_history (run_id, type, step) SELECT run_id, 'held', step_key FROM held)
    SELECT array_agg(k.run_id), array_agg(k.step_key) INTO p_run_ids, p_step_keys
    FROM unnest(p_run_ids, p_step_keys) AS k(run_id, step_key)
    WHERE NOT EXISTS (SELECT 1 FROM held WHERE held.run_id = k.run_id
                                            AND held.step_key = k.step_key);
    IF p_run_ids IS NULL THEN
      RETURN;
    END IF;
  END IF;
  -- The claim itself is 0002_queue.sql's, unchanged: a predicate on status here would match
  -- the claim index's and lead the planner to walk every ready step on each claim.
  RETURN QUERY
  WITH claimed AS (
    UPDATE step_run s SET status = 'running', attempt = s.attempt + 1, lease_owner = p_owner,
      lease_expires_at = clock_timestamp() + p_lease_ms * interval '1 millisecond',
      deadline_at = clock_timestamp() + s.timeout_ms * interval '1 millisecond',
      started_at = coalesce(s.started_at, clock_timestamp())
    FROM unnest(p_run_ids, p_step_keys) AS k(run_id, step_key), workflow_run r
    WHERE s.run_id = k.run_id AND s.step_key = k.step_key AND r.id = s.run_id
      AND (NOT p_limited OR (SELECT count(*) FROM step_run c
                             WHERE c.concurrency_key = s.concurrency_key
                               AND c.status = 'running') < s.concurrency_limit)
    RETURNING s.run_id, s.step_key, s.handler, s.attempt, s.max_attempts,
      r.workflow_version_id, r.workflow, r.event_id,
      (SELECT e.type FROM event e WHERE e.id = r.event_id) AS event_type,
      (SELECT coalesce(jsonb_object_agg(d.step_key, d.output), '{}') FROM step_run d
        WHERE d.run_id = s.run_id AND d.status = 'succeeded') AS outputs,
      s.wake::text AS wake, extract(epoch FROM s.deadline_at) * 1000 AS deadline_ms),
  h AS (
    INSERT INTO run_history (run_id, type, step, attempt, worker)
    SELECT run_id, 'started', step_key, attempt, p_owner FROM claimed)
  SELECT * FROM claimed;
END
$$;
