#include "http_response.hpp"

#include <time.h>

#include <cerrno>
#include <array>
#include <charconv>
#include <optional>

namespace cmbench::http {
namespace {

constexpr std::string_view kTextPlain = "text/plain";
constexpr std::string_view kOctetStream = "application/octet-stream";

// Parses the decimal number after a route prefix; nullopt if empty, not all digits or > max.
std::optional<std::size_t> parse_number(std::string_view digits, std::size_t max) {
  if (digits.empty() || digits.size() > 12) return std::nullopt;
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc{} || end != digits.data() + digits.size() || value > max) return std::nullopt;
  return value;
}

// Stands in for a blocking third-party call: the serving thread sleeps, doing nothing else.
void sleep_micros(std::size_t us) {
  timespec left{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  while (nanosleep(&left, &left) == -1 && errno == EINTR) {
  }
}

// A CPU-bound handler: spins until this thread has used `us` microseconds of CPU time.
void spin_micros(std::size_t us) {
  const auto now_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
  };
  const long long until = now_ns() + static_cast<long long>(us) * 1000;
  while (now_ns() < until) {
  }
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

Response build_response(int status, std::string_view content_type, std::string body,
                        std::size_t filler, bool head_only, bool close_after,
                        bool http10_keep_alive) {
  Response r;
  r.status = status;
  r.close_after = close_after;
  const std::size_t length = body.size() + filler;
  r.head.reserve(128);
  r.head.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
  r.head.append(reason_phrase(status)).append("\r\n");
  r.head.append("Content-Type: ").append(content_type).append("\r\n");
  r.head.append("Content-Length: ").append(std::to_string(length)).append("\r\n");
  if (status == 405) r.head.append("Allow: GET, HEAD, POST\r\n");
  if (close_after) {
    r.head.append("Connection: close\r\n");
  } else if (http10_keep_alive) {
    r.head.append("Connection: keep-alive\r\n");  // HTTP/1.0 clients wait for a close otherwise
  }
  r.head.append("\r\n");
  if (!head_only) {
    r.body = std::move(body);
    r.filler = filler;
  }
  return r;
}

Response respond_error(int status) {
  return build_response(status, kTextPlain, std::string(reason_phrase(status)), 0, false, true,
                        false);
}

Response respond(const Request& req) {
  const bool head_only = req.method == Method::Head;
  const bool close = !req.keep_alive;
  const bool http10_keep_alive = req.version_minor == 0 && req.keep_alive;
  const auto reply = [&](int status, std::string_view type, std::string body, std::size_t filler) {
    return build_response(status, type, std::move(body), filler, head_only, close,
                          http10_keep_alive);
  };
  const auto text = [&](int status) {
    return reply(status, kTextPlain, std::string(reason_phrase(status)), 0);
  };
  // A bad number in the path is malformed input: 400 and close (no body for HEAD, as always).
  const auto bad_number = [&] {
    return build_response(400, kTextPlain, std::string(reason_phrase(400)), 0, head_only, true,
                          false);
  };

  if (req.method == Method::Other) return text(405);
  const auto path = req.target.substr(0, req.target.find('?'));
  const bool get = req.method == Method::Get || req.method == Method::Head;

  if (get && path == "/") return reply(200, kTextPlain, "Hello, World!", 0);
  if (req.method == Method::Post && path == "/echo")
    return reply(200, kOctetStream, std::string(req.body), 0);

  if (get && starts_with(path, "/bytes/")) {
    const auto n = parse_number(path.substr(7), kMaxBytesBody);
    if (!n) return bad_number();
    return reply(200, kOctetStream, {}, *n);
  }
  if (get && starts_with(path, "/sleep/")) {
    const auto us = parse_number(path.substr(7), kMaxHandlerMicros);
    if (!us) return bad_number();
    sleep_micros(*us);
    return reply(200, kTextPlain, "ok", 0);
  }
  if (get && starts_with(path, "/cpu/")) {
    const auto us = parse_number(path.substr(5), kMaxHandlerMicros);
    if (!us) return bad_number();
    spin_micros(*us);
    return reply(200, kTextPlain, "ok", 0);
  }
  return text(404);
}

namespace {
// Built at compile time, so it lives in the read-only data of the binary: shared by every
// forked child (never copied on write) and never destroyed while threads still send from it.
constexpr auto kFillerBlock = [] {
  std::array<char, 64 * 1024> block{};
  block.fill('x');
  return block;
}();
}  // namespace

std::string_view filler_block() noexcept { return {kFillerBlock.data(), kFillerBlock.size()}; }

}  // namespace cmbench::http
