// The one response builder every server uses, and the request handlers of docs/architecture.md §2.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http_parser.hpp"

namespace cmbench::http {

inline constexpr std::size_t kMaxBytesBody = 16777216;   // GET /bytes/N
inline constexpr long kMaxHandlerMicros = 10000000;      // /sleep/US and /cpu/US

// A response ready to send: the head, an owned body, then `filler` bytes of 'x' that are never
// materialised per response (writers point at one shared block, see filler_block()).
struct Response {
  int status = 200;
  std::string head;
  std::string body;
  std::size_t filler = 0;
  bool close_after = false;   // the server closes the connection once this is sent

  std::size_t size() const noexcept { return head.size() + body.size() + filler; }
};

// The single builder: status line, exactly Content-Type and Content-Length, Allow on 405,
// Connection when needed. `head_only` answers HEAD: same headers, no body bytes.
Response build_response(int status, std::string_view content_type, std::string body,
                        std::size_t filler, bool head_only, bool close_after,
                        bool http10_keep_alive);

// Runs the handler for a complete request (it may sleep or spin: that is the point) and
// returns its response. 400 for a bad number in the path; 404/405 keep the connection.
Response respond(const Request& request);

// The response to a request the parser rejected (400, 413, 431, 501) or to a connection the
// server cannot take (503). Always followed by a close.
Response respond_error(int status);

// Standard reason phrase ("OK", "Not Found", ...).
std::string_view reason_phrase(int status) noexcept;

// A read-only block of 'x' bytes that writers reuse for a response's filler.
std::string_view filler_block() noexcept;

}  // namespace cmbench::http
