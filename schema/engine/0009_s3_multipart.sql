-- Multipart uploads of the S3-compatible API (issue #16): the AWS CLI sends files over 8 MB,
-- s3cmd over 15 MB, in parts. The parts wait here until CompleteMultipartUpload puts them
-- together into one object (held to the upload limit) in the transaction that stores it and its
-- event, and deletes them; AbortMultipartUpload deletes them; uploads left unfinished for a day
-- are deleted when the next one starts.
--
-- Released migrations are append-only: once a file here has been released, never edit it;
-- change the schema with a new NNNN_*.sql file instead. schema/snapshot.sql shows the result.
CREATE TABLE s3_multipart_upload (
  upload_id     text PRIMARY KEY,
  bucket        text NOT NULL,
  key           text NOT NULL,
  content_type  text NOT NULL,
  owner         text NOT NULL,  -- the access key that started it: only it may add or finish
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE s3_multipart_part (
  upload_id    text NOT NULL REFERENCES s3_multipart_upload ON DELETE CASCADE,
  part_number  int NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
  size         bigint NOT NULL,
  etag         text NOT NULL,  -- MD5 hex of the part
  content      bytea NOT NULL,
  PRIMARY KEY (upload_id, part_number)
);
