// Helpers shared by the unit tests: expected bytes are spelled out from docs/architecture.md §2 here, never
// produced by the code under test, so a wrong header order or phrase fails the comparison.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "http_parser.hpp"
#include "http_response.hpp"

namespace cmbench::test {

// The response bytes a client must see: status line, Content-Type, Content-Length, then any
// extra header lines (each ending in CRLF), the blank line and the body.
inline std::string wire(std::string_view status_line, std::string_view content_type,
                        std::string_view body, std::string_view extra_headers = "",
                        bool head_only = false) {
  std::string out = "HTTP/1.1 ";
  out.append(status_line).append("\r\n");
  out.append("Content-Type: ").append(content_type).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append(extra_headers).append("\r\n");
  if (!head_only) out.append(body);
  return out;
}

// Error responses: text/plain, reason phrase as body, then close.
inline std::string error_wire(std::string_view status_line, std::string_view reason) {
  return wire(status_line, "text/plain", reason, "Connection: close\r\n");
}

// All bytes of a response, with its filler spelled out (only for small responses).
inline std::string flatten(const http::Response& r) {
  return r.head + r.body + std::string(r.filler, 'x');
}

struct Answer {
  http::ParseStatus status = http::ParseStatus::NeedMore;
  std::size_t consumed = 0;
  http::Response response;
};

// One request through the parser and, if complete, the handler; an error goes to respond_error.
// This is exactly what a session does per request.
inline Answer answer(std::string_view request) {
  http::RequestParser parser;
  const auto result = parser.parse(request);
  Answer a;
  a.status = result.status;
  a.consumed = result.consumed;
  if (result.status == http::ParseStatus::Complete) a.response = http::respond(result.request);
  if (result.status == http::ParseStatus::Error) a.response = http::respond_error(result.error_status);
  return a;
}

// Bytes of the response to a single request given whole.
inline std::string answer_bytes(std::string_view request) {
  const auto a = answer(request);
  EXPECT_NE(a.status, http::ParseStatus::NeedMore) << "request incomplete: " << request;
  return flatten(a.response);
}

}  // namespace cmbench::test
