// Command line of the load generator (docs/architecture.md §4) and the parsing helpers behind it.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cmbench::loadgen {

// Printed by --version (the harness records it in meta.json).
inline constexpr std::string_view kVersion = "loadgen 1.0 (cmbench; HdrHistogram layout, wrk2 open loop)";

// A bad flag or URL: main prints the message on one line and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Target {
  std::string host;         // as written in the URL, without brackets
  std::uint16_t port = 80;
  std::string path = "/";   // request target, including any query
  std::string host_header;  // Host header value: host[:port], IPv6 in brackets
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

struct Config {
  std::string url;
  Target target;
  int connections = 10;
  int threads = 1;
  std::int64_t duration_ns = 10'000'000'000;
  std::int64_t warmup_ns = 0;
  std::int64_t timeout_ns = 2'000'000'000;
  double rate = 0;  // requests/s in total; 0 = closed loop
  int pipeline = 1;
  bool close = false;
  int idle = 0;
  std::string method = "GET";
  std::size_t body_size = 0;
  std::vector<std::string> headers;
  bool latency = false;
  std::string json_path;
  std::string hgrm_path;

  bool open_loop() const noexcept { return rate > 0; }
};

// "1.5s", "500ms", "2m", "250us", "1h"; a bare number means seconds. Throws UsageError.
std::int64_t parse_duration_ns(std::string_view text, std::string_view what);
// "100", "10k", "1.5M" (SI multipliers, as wrk accepts). Throws UsageError.
double parse_metric(std::string_view text, std::string_view what);
// http://HOST[:PORT][/path]; HOST is an IPv4 literal, [IPv6] literal or a resolvable name.
// Resolves the address. Throws UsageError.
Target parse_url(std::string_view url);
// Formats nanoseconds the way the summary shows durations ("5s", "1.5s", "500ms").
std::string format_duration(std::int64_t ns);

// Parses argv. Returns nullopt after printing --help or --version (exit 0). Throws UsageError.
std::optional<Config> parse_args(int argc, char** argv);

// The request bytes, serialised once: request line, Host, user headers, Content-Length and
// Connection: close when asked, then body_size bytes of 'x'.
std::string build_request(const Config& cfg);

}  // namespace cmbench::loadgen
