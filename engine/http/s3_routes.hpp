// A minimal S3-compatible API on the engine's listener, path-style
// (http://host:port/BUCKET/KEY), enough for `aws s3 cp/ls` and `s3cmd put/get/ls/info`:
// PutObject, GetObject, HeadObject, DeleteObject, multipart uploads (Create, UploadPart,
// Complete, Abort), ListObjectsV2 (and V1), HeadBucket, GetBucketLocation and ListBuckets. Every
// request is authenticated with Signature V4 against the configured access keys; errors are S3 XML.
// A put to a chart bucket is a chart upload (same validation, stored as a revision,
// chart.uploaded); to any other bucket it emits object.created {bucket, key, size, sha256}. Objects
// live in PostgreSQL (s3_object).
#pragma once

#include <cstdint>
#include <memory>

#include "core/input_limits.hpp"
#include "http/module_services.hpp"
#include "http/router.hpp"
#include "http/s3_config.hpp"
#include "runtime/engine.hpp"

namespace chartflow::http {

// Registers /{bucket}/{*key}; call after every other route (it matches what they leave).
// Chart buckets hand their objects to `chart_intake.intake` (none: such puts are refused) and let
// `chart_intake.may_read` decide who reads them back. Every request is audited (s3.put, s3.get,
// s3.head, s3.list; refusals and bad signatures as denied).
using S3Intake = BoundIntake;
// `object_limit`: the largest object, however it arrives (one PUT is held to it by the server's
// upload limit; a multipart upload's parts together here). `chart_limits`: the server's JSON
// limits, which a chart bucket's objects meet as every other door's charts do.
void add_s3_routes(Router& router, runtime::Engine& engine, std::shared_ptr<const S3Config> s3,
                   const S3Intake& chart_intake = {},
                   std::uint64_t object_limit = core::kDefaultUploadBytes,
                   core::JsonLimits chart_limits = {});
// ListBuckets lives at "/", which the dashboard also serves: this answers it for requests
// carrying an AWS signature, and returns nullopt for all others.
std::optional<Response> s3_root(Request& req, const S3Config& s3);

}  // namespace chartflow::http
