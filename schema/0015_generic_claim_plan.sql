-- step_claim_rows' UPDATE takes its steps as arrays. With the arrays' lengths known, every
-- custom plan looks cheaper than the generic one, so PostgreSQL re-planned the statement on
-- every call: half a millisecond of planning per claim, more than the claim itself
-- (pg_stat_statements: plans = calls). The plan is the same nested loop over the primary key
-- whatever the arrays hold (the planner settings of step_claim rule out the rest), so it is
-- built once per connection.
ALTER FUNCTION step_claim_rows(text, bigint, bigint[], text[], boolean)
  SET plan_cache_mode = force_generic_plan;
