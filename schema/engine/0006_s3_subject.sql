-- What an S3 object became: the subject of the event its put stored (a chart bucket's object
-- becomes a chart revision; subject = the chart id). Reads of a chart object are then decided
-- as reads of that chart are (issue #14, item 3): by admin, or a reviewer assigned to it.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
ALTER TABLE s3_object ADD COLUMN subject text;
