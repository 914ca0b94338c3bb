-- Every large value compressed with lz4, not only chart bodies and S3 objects (0008): insurer
-- notifications, invoices, review tasks and the like are a few kilobytes each, past TOAST's
-- threshold, and pglz compressing them was the largest single cost left in a chart's database
-- time. Applies to rows written from now on; a server built without lz4 keeps pglz.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT a.attrelid::regclass AS tbl, a.attname AS col
    FROM pg_attribute a
    JOIN pg_class t ON t.oid = a.attrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND t.relkind = 'r'
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype, 'text'::regtype, 'bytea'::regtype)
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION lz4', c.tbl, c.col);
  END LOOP;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; values stay pglz-compressed';
END
$$;
