-- Chart revisions and S3 objects are large and stored compressed (TOAST): lz4 compresses them
-- several times faster than the default pglz for a similar size, and that compression ran in
-- every upload's transaction. Applies to rows written from now on; a server built without
-- lz4 keeps pglz.
DO $$
BEGIN
  ALTER TABLE chart_revision ALTER COLUMN body SET COMPRESSION lz4;
  ALTER TABLE s3_object ALTER COLUMN content SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'lz4 is not available in this PostgreSQL build; documents stay pglz-compressed';
END
$$;
