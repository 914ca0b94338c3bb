-- The work queue's statements, one function each: a worker's claim (step_claim, with
-- step_claim_rows), the end of its batch (step_commit), a step starting to wait (step_wait) and a
-- signal reaching a run (run_signal_deliver). Each was a transaction of four to a dozen
-- statements parsed and sent one by one; as a function it is one statement, its plans cached per
-- connection. store/ calls them; the queue's table is step_run (0001_runs.sql).
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
--
-- Plans that hold whatever the statistics say. The planner settings in the functions' SET
-- clauses hold while they run (and in the functions they call): the queue's statements touch a
-- handful of rows by key or by the head of an index. A function caches one plan per connection,
-- made when it first runs, often while the queue tables are new and their statistics call them
-- empty; the sequential, bitmap and hash plans chosen then (and any statement that could take a
-- partial index on a status instead of the primary key) read every live and dead row of the
-- table or of the index on every call (pg_stat_statements: 170 to 500 buffers per call where 10
-- do).
--
-- jit = off in every queue function: the planner settings price a plan they rule out (such as
-- the sort of a claim's few candidates by key, which nothing else can do) at 1e10, far above
-- jit_above_cost, and PostgreSQL then compiled the statement on every call: 40 ms of CPU per run
-- where the claim itself takes a fraction of one.

-- Claims the given steps (already chosen and row-locked by step_claim) with their 'started'
-- history rows. p_limited: only a step whose concurrency key has a free slot. The count runs in
-- this statement, after step_claim's advisory locks were granted, and a volatile function takes
-- a new snapshot per statement, so it sees every claim committed before; the count and the claim
-- share that one statement.
--
-- plan_cache_mode: the UPDATE takes its steps as arrays. With the arrays' lengths known, every
-- custom plan looks cheaper than the generic one, so PostgreSQL re-planned the statement on every
-- call: half a millisecond of planning per claim, more than the claim itself
-- (pg_stat_statements: plans = calls). The plan is the same nested loop over the primary key
-- whatever the arrays hold (the planner settings of step_claim, which it runs under, rule out the
-- rest), so it is built once per connection.
CREATE FUNCTION step_claim_rows(p_owner text, p_lease_ms bigint, p_run_ids bigint[],
                                p_step_keys text[], p_limited boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET jit = off
AS $$
BEGIN
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

-- A worker's claim in one round trip: up to p_limit due steps, those without a concurrency key
-- first, then (p_keyed) those under one. Called on its own it commits by itself, and then
-- (p_async) without waiting for its WAL flush: lost in a crash, a claimed step is simply still
-- ready, and the step's completion (a synchronous commit) flushes the claim before it anyway.
-- The setting is a local one made inside the function, which outlives the function to the
-- commit.
--
-- Steps under a concurrency key are claimed in one statement: the candidates are row-locked, at
-- most one per key (two steps of one key in one statement would both count the same running
-- steps, and both fit a limit only one slot had room for; the next claim takes the next), their
-- keys' advisory locks are taken in one order (by hash: two claimers taking overlapping keys in
-- their own orders could deadlock), and one step_claim_rows call counts and claims them all.
-- The advisory lock per key serialises the count-and-claim across processes.
CREATE FUNCTION step_claim(p_owner text, p_lease_ms bigint, p_limit int, p_keyed boolean,
                           p_async boolean)
RETURNS TABLE (c_run_id bigint, c_step_key text, c_handler text, c_attempt int,
               c_max_attempts int, c_workflow_version_id bigint, c_workflow text,
               c_event_id bigint, c_event_type text, c_outputs jsonb, c_wake text,
               c_deadline_ms numeric)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_sort = off
SET jit = off
AS $$
DECLARE
  claimed_count int := 0;
  run_ids bigint[];
  step_keys text[];
  lock_keys bigint[];
  k bigint;
BEGIN
  IF p_async THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  -- SKIP LOCKED lets many workers claim side by side without waiting on each other's rows.
  SELECT array_agg(due.run_id), array_agg(due.step_key) INTO run_ids, step_keys
  FROM (SELECT s.run_id, s.step_key FROM step_run s
        WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
          AND s.concurrency_key IS NULL
        ORDER BY s.run_at LIMIT p_limit FOR UPDATE SKIP LOCKED) due;
  IF run_ids IS NOT NULL THEN
    RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, false);
    GET DIAGNOSTICS claimed_count = ROW_COUNT;
  END IF;
  IF NOT p_keyed OR claimed_count >= p_limit THEN
    RETURN;
  END IF;
  SELECT array_agg(one.run_id), array_agg(one.step_key),
         array_agg(hashtextextended(one.concurrency_key, 0) ORDER BY
                   hashtextextended(one.concurrency_key, 0))
    INTO run_ids, step_keys, lock_keys
  FROM (SELECT DISTINCT ON (c.concurrency_key) c.run_id, c.step_key, c.concurrency_key
        FROM (SELECT s.run_id, s.step_key, s.concurrency_key, s.run_at FROM step_run s
              WHERE s.status IN ('ready', 'retrying') AND s.run_at <= now()
                AND s.concurrency_key IS NOT NULL
              ORDER BY s.run_at, s.run_id LIMIT p_limit - claimed_count
              FOR UPDATE SKIP LOCKED) c
        ORDER BY c.concurrency_key, c.run_at, c.run_id) one;
  IF run_ids IS NULL THEN
    RETURN;
  END IF;
  FOREACH k IN ARRAY lock_keys LOOP
    PERFORM pg_advisory_xact_lock(k);
  END LOOP;
  RETURN QUERY SELECT * FROM step_claim_rows(p_owner, p_lease_ms, run_ids, step_keys, true);
END
$$;

-- The end of a worker's batch in one statement: finish its steps, store its log records and
-- claim the next steps. These were four to six round trips per batch (the planner settings,
-- the finish of each step that wrote, the batched finish of those that did not, the log
-- insert, the claim), and most batches hold a single step.
--
-- p_finishes: [{run_id, step_key, attempt, status ('succeeded' | 'skipped'), output, wrote}].
-- A step is finished only while this owner still holds it at that attempt; one that `wrote`
-- (through the batch's transaction) and was not finished had its lease taken over meanwhile,
-- so its writes must not stand: the function then raises SQLSTATE CFL01 and the caller rolls
-- the transaction back.
-- p_waiting: runs a step of this batch started waiting in (step_wait), marked 'waiting' after
-- the finishes, so a step of the run finished here does not mark the run running again.
-- p_logs: [{level, message, workflow, run_id, step, attempt, fields}].
-- Returns {"promoted": dependents made ready, "succeeded": [workflow of each run that
-- succeeded], "succeeded_ids": [their ids], "claimed": [step_claim rows]}.
--
-- Steps finished here share one finish time, this statement's: their completion is this
-- commit. Dependents and runs are counted down by how many of their needs and steps finished
-- here (one UPDATE changes a row once, so several finishes in one run are aggregated first).
--
-- Every row it changes is reached from a key the batch names, in a way that leaves the planner
-- no join order to choose, and updated by ctid (see the comments in the function). With the
-- running steps' index out of reach, the planner otherwise read the whole primary key: the
-- batch's finishes estimated at a hundred rows and step_run at one, scanning step_run once
-- looked cheaper than a lookup per finish. No sequential scans either (the promotion of
-- dependents read all of step_run), and the runs a wait left waiting are found by key alone.
CREATE FUNCTION step_commit(p_owner text, p_finishes jsonb, p_waiting bigint[],
                            p_logs jsonb, p_claim int, p_lease_ms bigint, p_keyed boolean)
RETURNS jsonb
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_sort = off SET jit = off
AS $$
DECLARE
  v_promoted bigint := 0;
  v_succeeded jsonb := '[]';
  v_succeeded_ids jsonb := '[]';
  v_lost bigint := 0;
  v_claimed jsonb := '[]';
BEGIN
  -- Run rows are locked in one order by every batch, so two batches finishing steps of the
  -- same runs queue behind each other instead of deadlocking.
  -- (An index scan for an array of keys returns them in key order.)
  IF jsonb_array_length(p_finishes) > 0 OR cardinality(p_waiting) > 0 THEN
    PERFORM 1 FROM workflow_run w
      WHERE w.id = ANY (ARRAY(SELECT (f->>'run_id')::bigint FROM jsonb_array_elements(p_finishes) f)
                        || p_waiting)
      ORDER BY w.id FOR NO KEY UPDATE;
  END IF;
  IF jsonb_array_length(p_finishes) > 0 THEN
    -- The finishing steps' rows are locked first, by key, in a statement of their own: the
    -- statement below then starts with every row it changes locked by this transaction (run
    -- rows above, pending steps only change under their run's lock), so a row's ctid cannot
    -- go stale between finding it and updating it. Without this a lease renewal committed in
    -- between (the worker's heartbeat) made the update's ctid recheck fail and the finish
    -- vanish until the lease ran out.
    PERFORM (SELECT 1 FROM step_run s WHERE s.run_id = f.run_id AND s.step_key = f.step_key
             FOR NO KEY UPDATE)
      FROM jsonb_to_recordset(p_finishes) AS f(run_id bigint, step_key text);
    -- Every row below is reached from a key the batch names (a scalar subquery or a LATERAL
    -- subquery kept apart by OFFSET 0, so the planner cannot turn the join around) and updated
    -- through its ctid (a join on ctid has no plan but the TID lookup). A step whose lease
    -- another worker took over is not found by its owner and attempt, and is left alone.
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(p_finishes)
        AS x(run_id bigint, step_key text, attempt int, status text, output jsonb, wrote boolean)),
    target AS (
      SELECT i.*, (SELECT s.ctid FROM step_run s
                   WHERE s.run_id = i.run_id AND s.step_key = i.step_key
                     AND s.lease_owner = p_owner AND s.attempt = i.attempt
                     AND s.status = 'running') AS tid
      FROM input i),
    done AS (
      UPDATE step_run s SET status = t.status, output = t.output,
        finished_at = statement_timestamp(), lease_owner = NULL, wake = NULL, error = NULL
      FROM target t WHERE s.ctid = t.tid
      RETURNING s.run_id, s.step_key, s.status, s.attempt),
    released AS (
      SELECT q.tid, count(*) AS n
      FROM done CROSS JOIN LATERAL (
        SELECT p.ctid AS tid FROM step_run p
        WHERE p.run_id = done.run_id AND p.status = 'pending' AND p.needs ? done.step_key
        OFFSET 0) q
      GROUP BY q.tid),
    promoted AS (
      UPDATE step_run p SET pending_needs = p.pending_needs - r.n, run_at = now(),
        status = CASE WHEN p.pending_needs = r.n THEN 'ready' ELSE p.status END
      FROM released r WHERE p.ctid = r.tid
      RETURNING p.status),
    per_run AS (
      SELECT d.run_id, d.n, (SELECT w.ctid FROM workflow_run w WHERE w.id = d.run_id) AS tid
      FROM (SELECT run_id, count(*) AS n FROM done GROUP BY run_id) d),
    run AS (
      UPDATE workflow_run w SET remaining_steps = w.remaining_steps - pr.n,
        status = CASE WHEN w.remaining_steps = pr.n AND w.status IN ('running', 'waiting')
          THEN 'succeeded' WHEN w.status = 'waiting' THEN 'running' ELSE w.status END,
        finished_at = CASE WHEN w.remaining_steps = pr.n AND w.status IN ('running', 'waiting')
          THEN statement_timestamp() ELSE w.finished_at END
      FROM per_run pr WHERE w.ctid = pr.tid
      RETURNING w.id, w.workflow, w.status, w.remaining_steps),
    h1 AS (
      INSERT INTO run_history (run_id, type, step, attempt, worker)
      SELECT run_id, status, step_key, attempt, p_owner FROM done),
    h2 AS (
      INSERT INTO run_history (run_id, type, worker)
      SELECT id, 'succeeded', p_owner FROM run WHERE status = 'succeeded' AND remaining_steps = 0)
    SELECT (SELECT count(*) FROM promoted WHERE status = 'ready'),
      (SELECT coalesce(jsonb_agg(workflow), '[]') FROM run
        WHERE status = 'succeeded' AND remaining_steps = 0),
      (SELECT coalesce(jsonb_agg(id), '[]') FROM run
        WHERE status = 'succeeded' AND remaining_steps = 0),
      (SELECT count(*) FROM input i WHERE i.wrote AND NOT EXISTS (
        SELECT 1 FROM done d WHERE d.run_id = i.run_id AND d.step_key = i.step_key))
    INTO v_promoted, v_succeeded, v_succeeded_ids, v_lost;
    IF v_lost > 0 THEN
      RAISE EXCEPTION '% step(s) of this batch are no longer held by %', v_lost, p_owner
        USING ERRCODE = 'CFL01';
    END IF;
  END IF;
  IF cardinality(p_waiting) > 0 THEN
    -- The status test is in the SET list, not the WHERE clause, so that the primary key is the
    -- only way to these rows (the runs were locked above; one not running keeps its status).
    UPDATE workflow_run SET status = CASE WHEN status = 'running' THEN 'waiting' ELSE status END
      WHERE id = ANY (p_waiting);
  END IF;
  IF jsonb_array_length(p_logs) > 0 THEN
    INSERT INTO log_record (level, message, workflow, run_id, step, attempt, fields)
    SELECT level, message, workflow, run_id, step, attempt, coalesce(fields, '{}')
    FROM jsonb_to_recordset(p_logs) AS x(level smallint, message text, workflow text,
      run_id bigint, step text, attempt int, fields jsonb);
  END IF;
  IF p_claim > 0 THEN
    SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]') INTO v_claimed
    FROM step_claim(p_owner, p_lease_ms, p_claim, p_keyed, false) c;
  END IF;
  RETURN jsonb_build_object('promoted', v_promoted, 'succeeded', v_succeeded,
                            'succeeded_ids', v_succeeded_ids,
                            'claimed', v_claimed);
END
$$;

-- A step starting to wait, in one statement instead of four or five round trips (a review step
-- waits once per run). The step (held by p_owner at p_attempt) waits for signal p_signal and/or
-- until p_until_ms (epoch ms). A signal that arrived before the step started waiting is
-- consumed at once and the step is ready again. Returns 'lost' (the step is no longer this
-- owner's: nothing is written), 'signalled' or 'waiting'. The run row is not touched here: the
-- batch's step_commit marks the run waiting, after its other finishes and with the run rows
-- locked in id order (a run row locked here, mid-batch, could deadlock with another batch's
-- ordered locks).
CREATE FUNCTION step_wait(p_run_id bigint, p_step_key text, p_owner text,
                          p_attempt int, p_signal text, p_until_ms bigint)
RETURNS text
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_sort = off SET jit = off
AS $$
DECLARE
  v_payload jsonb;
BEGIN
  PERFORM 1 FROM step_run
    WHERE run_id = p_run_id AND step_key = p_step_key AND lease_owner = p_owner
      AND attempt = p_attempt AND status = 'running'
    FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'lost';
  END IF;
  IF p_signal IS NOT NULL THEN
    UPDATE run_signal SET consumed_by = p_step_key
      WHERE id = (SELECT id FROM run_signal
                  WHERE run_id = p_run_id AND name = p_signal AND consumed_by IS NULL
                  ORDER BY id LIMIT 1 FOR UPDATE)
      RETURNING payload INTO v_payload;
    IF FOUND THEN
      UPDATE step_run SET status = 'ready', run_at = now(), lease_owner = NULL,
        wake = jsonb_build_object('kind', 'signal', 'signal', p_signal, 'payload', v_payload)
        WHERE run_id = p_run_id AND step_key = p_step_key;
      INSERT INTO run_history (run_id, type, step, attempt, worker, detail)
        VALUES (p_run_id, 'signalled', p_step_key, p_attempt, p_owner,
                jsonb_build_object('signal', p_signal));
      RETURN 'signalled';
    END IF;
  END IF;
  -- The attempt is given back: waiting is not a try that can be used up.
  UPDATE step_run SET status = 'waiting', wait_signal = p_signal,
    wait_until = to_timestamp(p_until_ms / 1000.0), lease_owner = NULL, wake = NULL,
    attempt = attempt - 1
    WHERE run_id = p_run_id AND step_key = p_step_key;
  INSERT INTO run_history (run_id, type, step, attempt, worker, detail)
    VALUES (p_run_id, 'waiting', p_step_key, p_attempt, p_owner,
            jsonb_strip_nulls(jsonb_build_object('signal', p_signal, 'until_ms', p_until_ms)));
  RETURN 'waiting';
END
$$;

-- Signal p_name with p_payload to run p_run_id, in one statement: wakes the step waiting for
-- it, or is kept for the step that will. Returns 'not_found', 'ended:<status>' (the run is
-- over: nothing is written), 'delivered' or 'stored'. The run row is locked first, as every run
-- command does; the waiting step is then found by key in key order, and the run updated by key
-- alone.
CREATE FUNCTION run_signal_deliver(p_run_id bigint, p_name text, p_payload jsonb)
RETURNS text
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
SET enable_sort = off SET jit = off
AS $$
DECLARE
  v_status text;
  v_step text;
BEGIN
  -- NO KEY UPDATE: the foreign-key checks of history rows other transactions insert for this
  -- run do not hold it up.
  SELECT status INTO v_status FROM workflow_run WHERE id = p_run_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN 'not_found';
  END IF;
  IF v_status IN ('succeeded', 'failed', 'cancelled') THEN
    RETURN 'ended:' || v_status;
  END IF;
  SELECT step_key INTO v_step FROM step_run
    WHERE run_id = p_run_id AND status = 'waiting' AND wait_signal = p_name
    ORDER BY step_key LIMIT 1 FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO run_signal (run_id, name, payload) VALUES (p_run_id, p_name, p_payload);
    INSERT INTO run_history (run_id, type, detail)
      VALUES (p_run_id, 'signalled', jsonb_build_object('signal', p_name, 'stored', true));
    RETURN 'stored';
  END IF;
  UPDATE step_run SET status = 'ready', run_at = now(),
    wake = jsonb_build_object('kind', 'signal', 'signal', p_name, 'payload', p_payload),
    wait_signal = NULL, wait_until = NULL
    WHERE run_id = p_run_id AND step_key = v_step;
  IF v_status = 'waiting' THEN
    UPDATE workflow_run SET status = 'running' WHERE id = p_run_id;
  END IF;
  INSERT INTO run_history (run_id, type, step, detail)
    VALUES (p_run_id, 'signalled', v_step, jsonb_build_object('signal', p_name));
  PERFORM pg_notify('chartflow_wakeup_' || current_schema(), '');
  RETURN 'delivered';
END
$$;
