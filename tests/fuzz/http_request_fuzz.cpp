// libFuzzer target: raw bytes as an HTTP/1.1 request through what the server does with them:
// Beast's parser under the server's header and body limits, the conversion into a Request with
// its control-character checks, the JSON body limits, then Router::handle over the API's route
// patterns with handlers that use the same parameter and body parsing as the real ones.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "handlers/chart_intake/chart_intake.hpp"
#include "http/request_intake.hpp"
#include "http/router.hpp"

namespace {

namespace bhttp = boost::beast::http;
using chartflow::Json;
using namespace chartflow::http;

Response ok(const Json& body = Json::object()) { return Response::json(200, body); }

// The API's route patterns (engine/http/api_routes.cpp, chart_routes.cpp), answered without a
// database by the same parsing the real handlers do before they reach it.
Router make_router() {
  Router r;
  const Access open = Access::open();
  r.add("GET", "/healthz", "healthz", open, [](Request&) { return ok(); });
  r.add("POST", "/v1/events/{type}", "events", open, [](Request& req) {
    Json body = parse_json_body(req);
    return ok({{"type", req.param("type")}, {"body", body}});
  });
  r.add("GET", "/v1/runs", "runs", open, [](Request& req) {
    if (auto after = req.q("after")) parse_id(*after, "after");
    return ok({{"workflow", req.q("workflow").value_or("")}});
  });
  for (const char* command : {"retry", "cancel"})
    r.add("POST", std::string("/v1/runs/{id}/") + command, command, open, [](Request& req) {
      return ok({{"id", parse_id(req.param("id"), "run id")}});
    });
  r.add("POST", "/v1/runs/{id}/signal/{name}", "signal", open, [](Request& req) {
    return ok({{"id", parse_id(req.param("id"), "run id")},
               {"name", req.param("name")},
               {"payload", parse_json_body(req)}});
  });
  r.add("PUT", "/v1/charts/{chart_id}", "chart_upload", open, [](Request& req) {
    if (!chartflow::handlers::valid_chart_id(req.param("chart_id")))
      throw HttpError{400, "chart id"};
    Json bundle = parse_json_body(req);
    if (auto problem = chartflow::handlers::validate_chart(bundle)) throw HttpError{422, *problem};
    return ok(chartflow::handlers::chart_event_body(bundle, req.param("chart_id"), 1));
  });
  r.add("GET", "/v1/charts/{chart_id}/revisions/{n}", "chart_revision", open, [](Request& req) {
    return ok({{"n", parse_id(req.param("n"), "revision")}});
  });
  r.add("POST", "/v1/reviews/{id}/decision", "review_decision", open, [](Request& req) {
    Json body = parse_json_body(req);
    if (!body.is_object() || !body.contains("decision")) throw HttpError{400, "decision"};
    return ok({{"id", parse_id(req.param("id"), "review id")}});
  });
  r.add("GET", "/ui/{*path}", "dashboard", open, [](Request& req) {
    return ok({{"path", req.param("path")}});
  });
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Router router = make_router();
  static const InputLimits limits = [] {
    InputLimits l;
    l.body_bytes = 64 * 1024;
    l.upload_body_bytes = 256 * 1024;
    return l;
  }();
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(limits.header_bytes);
  parser.body_limit(limits.upload_body_bytes);
  parser.eager(true);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < size && !parser.is_done()) {
    const std::size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec || n == 0) break;
    used += n;
  }
  // As Beast's read loop does at end of stream: only a parser that got some input takes an EOF.
  if (!parser.is_done() && parser.got_some() && (!ec || ec == bhttp::error::need_more)) {
    ec = {};
    parser.put_eof(ec);
  }
  if (!parser.is_done()) return 0;
  const auto target = parser.get().target();
  const std::size_t limit = limits.body_limit_for(std::string_view(target.data(), target.size()));
  if (parser.get().body().size() > limit) return 0;
  Request req;
  try {
    req = to_request(parser.release(), "127.0.0.1");
  } catch (const HttpError&) {
    return 0;
  }
  if (check_body(req, limits)) return 0;
  Response resp = router.handle(req);
  // These handlers only parse: any 500 is an exception the parsing let escape.
  if (resp.status < 200 || resp.status > 599 || resp.status == 500) __builtin_trap();
  return 0;
}
