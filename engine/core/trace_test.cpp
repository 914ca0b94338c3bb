#include "core/trace.hpp"

#include <gtest/gtest.h>

namespace chartflow::core {
namespace {

constexpr const char* kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* kSpan = "00f067aa0ba902b7";

TEST(TraceparentTest, ParsesTheSpecExample) {
  const auto ctx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id, kTrace);
  EXPECT_EQ(ctx->parent_span_id, kSpan);
}

TEST(TraceparentTest, UppercaseAndNotSampledAreStillTheSameTrace) {
  // Upper case is invalid per the spec: ignored like any malformed value.
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"));
  const auto ctx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id, kTrace);
}

TEST(TraceparentTest, RejectsMalformedValues) {
  for (const char* bad : {
           "", "00", "garbage",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",           // no flags
           "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",         // short trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",         // short span id
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",        // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",        // zero span id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",        // forbidden version
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // 00 has no more
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",        // flags not hex
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",        // wrong separator
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",        // not hex
       })
    EXPECT_FALSE(parse_traceparent(bad).has_value()) << bad;
}

TEST(TraceparentTest, AFutureVersionMayCarryMoreFields) {
  const auto ctx =
      parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->parent_span_id, kSpan);
}

TEST(TraceparentTest, SurroundingBlanksAreTolerated) {
  EXPECT_TRUE(parse_traceparent(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "));
}

TEST(TraceparentTest, FormatsWhatItParses) {
  const std::string header = format_traceparent(kTrace, kSpan);
  EXPECT_EQ(header, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  const auto ctx = parse_traceparent(header);
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id, kTrace);
}

TEST(SpanIdTest, DerivedIdsAreValidStableAndDistinct) {
  const std::string root = run_span_id(kTrace, 42);
  EXPECT_TRUE(valid_span_id(root)) << root;
  EXPECT_EQ(root, run_span_id(kTrace, 42));
  EXPECT_NE(root, run_span_id(kTrace, 43));
  const std::string a1 = step_span_id(kTrace, 42, "scan", 1);
  const std::string a2 = step_span_id(kTrace, 42, "scan", 2);
  EXPECT_TRUE(valid_span_id(a1));
  EXPECT_EQ(a1, step_span_id(kTrace, 42, "scan", 1));
  EXPECT_NE(a1, a2);
  EXPECT_NE(a1, root);
  EXPECT_NE(a1, step_span_id(kTrace, 42, "scan2", 1));
  EXPECT_NE(a1, step_span_id(kTrace, 4, "2/scan", 1));
}

TEST(OtlpJsonTest, EncodesSpansAsTheOtlpHttpJsonMapping) {
  Span root;
  root.trace_id = kTrace;
  root.span_id = run_span_id(kTrace, 7);
  root.parent_span_id = kSpan;
  root.name = "run chart-update";
  root.start_ns = 1'700'000'000'123'456'789;
  root.end_ns = 1'700'000'001'000'000'000;
  root.string_attributes = {{"chartflow.workflow", "chart-update"}};
  root.int_attributes = {{"chartflow.run_id", 7}};
  Span step;
  step.trace_id = kTrace;
  step.span_id = step_span_id(kTrace, 7, "scan", 1);
  step.parent_span_id = root.span_id;
  step.name = "step scan";
  step.start_ns = root.start_ns;
  step.end_ns = root.end_ns;
  step.error = true;
  step.status_message = "retry";
  const auto body = otlp_trace_request({root, step}, "chartflow", "host:1");
  ASSERT_EQ(body.at("resourceSpans").size(), 1U);
  const auto& rs = body.at("resourceSpans")[0];
  const auto& resource_attrs = rs.at("resource").at("attributes");
  ASSERT_EQ(resource_attrs.size(), 2U);
  EXPECT_EQ(resource_attrs[0].at("key"), "service.name");
  EXPECT_EQ(resource_attrs[0].at("value").at("stringValue"), "chartflow");
  EXPECT_EQ(resource_attrs[1].at("key"), "service.instance.id");
  ASSERT_EQ(rs.at("scopeSpans").size(), 1U);
  EXPECT_EQ(rs.at("scopeSpans")[0].at("scope").at("name"), "chartflow");
  const auto& spans = rs.at("scopeSpans")[0].at("spans");
  ASSERT_EQ(spans.size(), 2U);
  EXPECT_EQ(spans[0].at("traceId"), kTrace);
  EXPECT_EQ(spans[0].at("spanId"), root.span_id);
  EXPECT_EQ(spans[0].at("parentSpanId"), kSpan);
  EXPECT_EQ(spans[0].at("name"), "run chart-update");
  EXPECT_EQ(spans[0].at("kind"), 1);  // SPAN_KIND_INTERNAL
  // 64-bit integers are decimal strings in OTLP/JSON.
  EXPECT_EQ(spans[0].at("startTimeUnixNano"), "1700000000123456789");
  EXPECT_EQ(spans[0].at("endTimeUnixNano"), "1700000001000000000");
  EXPECT_EQ(spans[0].at("status").at("code"), 1);  // STATUS_CODE_OK
  const auto& attrs = spans[0].at("attributes");
  ASSERT_EQ(attrs.size(), 2U);
  EXPECT_EQ(attrs[0].at("key"), "chartflow.workflow");
  EXPECT_EQ(attrs[0].at("value").at("stringValue"), "chart-update");
  EXPECT_EQ(attrs[1].at("key"), "chartflow.run_id");
  EXPECT_EQ(attrs[1].at("value").at("intValue"), "7");
  EXPECT_EQ(spans[1].at("parentSpanId"), root.span_id);
  EXPECT_EQ(spans[1].at("status").at("code"), 2);  // STATUS_CODE_ERROR
  EXPECT_EQ(spans[1].at("status").at("message"), "retry");
}

TEST(OtlpJsonTest, ARootWithoutCallerHasNoParentField) {
  Span root;
  root.trace_id = kTrace;
  root.span_id = run_span_id(kTrace, 1);
  root.name = "run x";
  const auto body = otlp_trace_request({root}, "chartflow", "i");
  const auto& span = body.at("resourceSpans")[0].at("scopeSpans")[0].at("spans")[0];
  EXPECT_FALSE(span.contains("parentSpanId"));
}

}  // namespace
}  // namespace chartflow::core
