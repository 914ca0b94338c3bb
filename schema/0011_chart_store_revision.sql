-- A chart revision stored in one statement instead of five (make sure the chart row exists, lock
-- it, look for identical content, insert the revision, bump the chart): each upload and each
-- write-back paid those round trips and their parsing inside its transaction.
--
-- The chart row lock serialises everything that takes a revision number for this chart. NO KEY
-- UPDATE (not plain UPDATE) so foreign-key checks of other tables' inserts are not blocked by it.
-- The statements after it see revisions committed by whoever held the lock before: a volatile
-- function takes a new snapshot per statement under READ COMMITTED.
--
-- The body is kept as json, not jsonb: the text exactly as uploaded (or written back), checked
-- for syntax but not taken apart and rebuilt. Nothing queries inside a chart body, and building
-- jsonb of every 50 KB upload and write-back, then text again for every read, was a good part
-- of an upload's database time. Existing rows keep their (normalised) text.
ALTER TABLE chart_revision ALTER COLUMN body TYPE json USING body::json;
DO $$
BEGIN
  ALTER TABLE chart_revision ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; documents stay pglz-compressed';
END
$$;

-- Identical content is a duplicate: for an upload, any earlier upload of the chart with that
-- hash; for a write-back, one on the same base revision. Then nothing is written.
CREATE OR REPLACE FUNCTION chart_store_revision(p_chart_id text, p_patient_ref text,
                                                p_content_hash text, p_body json, p_source text,
                                                p_by text, p_based_on int)
RETURNS TABLE (stored_revision int, duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
  latest int;
  earlier int;
BEGIN
  INSERT INTO chart (chart_id, patient_ref) VALUES (p_chart_id, p_patient_ref)
    ON CONFLICT (chart_id) DO NOTHING;
  SELECT c.latest_revision INTO latest FROM chart c WHERE c.chart_id = p_chart_id
    FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'chart row % vanished after insert', p_chart_id;
  END IF;
  SELECT r.revision INTO earlier FROM chart_revision r
    WHERE r.chart_id = p_chart_id AND r.content_hash = p_content_hash AND r.source = p_source
      AND (p_source = 'upload' OR r.based_on_revision = p_based_on)
    ORDER BY r.revision LIMIT 1;
  IF FOUND THEN
    RETURN QUERY SELECT earlier, true;
    RETURN;
  END IF;
  latest := coalesce(latest, 0) + 1;
  INSERT INTO chart_revision (chart_id, revision, content_hash, body, source, uploaded_by,
                              based_on_revision)
    VALUES (p_chart_id, latest, p_content_hash, p_body, p_source, p_by, p_based_on);
  UPDATE chart SET latest_revision = latest, patient_ref = coalesce(p_patient_ref, patient_ref),
    updated_at = now() WHERE chart_id = p_chart_id;
  RETURN QUERY SELECT latest, false;
END
$$;
